"""What a dropped condition becomes, once for both of its users: the unconditional guidance passes at inference
(paper Eq. 6, ``guidance.py``) and the condition dropout of training (appendix D, ``training/train.py``).

The denoiser is conditioned on the reference (the portrait's face tokens and its image in spatial attention), the
audio and the emotion. A row of a denoiser batch that drops one sees what the official unconditional pass sees
(docs/CHECKPOINT.md §1.6):

    reference   face tokens of a zero face embedding (``image_proj(0)``) and no reference image in spatial
                attention (``use_reference`` False); the reference net and the memory still read that row's tokens
    audio       zero audio tokens, after the audio projection
    emotion     the "no emotion" row of the emotion embedding (``NO_EMOTION``)

Past frames and the memory are never dropped: every guidance pass keeps them. (Training's past-frame dropout is
another thing: it replaces the past frames by the reference image, as the first clip at inference sees them.)

Legend: b rows of one denoiser batch (training samples, or guidance passes at inference), d face embedding size,
f frames, m tokens, c channels.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from memo_model.audio.emotion import NO_EMOTION


@dataclass(frozen=True)
class Kept:
    """Which conditions each row of a denoiser batch keeps: (b,) bool masks."""

    reference: torch.Tensor  # face tokens and the reference image
    audio: torch.Tensor
    emotion: torch.Tensor

    @classmethod
    def of_passes(cls, passes: Sequence, device: torch.device | str | None = None) -> "Kept":
        """The masks of guidance passes (``guidance.GuidancePass``: ``reference``, ``audio``, ``emotion`` flags)."""

        def mask(name: str) -> torch.Tensor:
            return torch.tensor([getattr(p, name) for p in passes], device=device)

        return cls(reference=mask("reference"), audio=mask("audio"), emotion=mask("emotion"))


def face_embeddings(embedding: torch.Tensor, keep_reference: torch.Tensor) -> torch.Tensor:
    """(b, d) face embeddings, the image projection's input -> the zero embedding in rows that drop the reference."""
    return torch.where(keep_reference[:, None], embedding, 0)


def audio_tokens(tokens: torch.Tensor, keep_audio: torch.Tensor) -> torch.Tensor:
    """(b or 1, f, m, c) projected audio tokens -> (b, f, m, c), zeros in rows that drop the audio."""
    return torch.where(keep_audio[:, None, None, None], tokens, 0)


def emotions(labels: torch.Tensor, keep_emotion: torch.Tensor) -> torch.Tensor:
    """(b or 1,) emotion ids -> (b,), the "no emotion" row in rows that drop the emotion."""
    return torch.where(keep_emotion, labels, NO_EMOTION)
