"""Classifier-free guidance with separate reference, audio and emotion scales (paper Eq. 6, generalised).

The conditions nest: reference (face tokens + reference attention) ⊂ + audio ⊂ + emotion. With one denoiser
pass per level,

    ε = ε∅ + s_ref (ε_ref − ε∅) + s_audio (ε_ref,audio − ε_ref) + s_emo (ε_ref,audio,emo − ε_ref,audio)
      = (1 − s_ref) ε∅ + (s_ref − s_audio) ε_ref + (s_audio − s_emo) ε_ref,audio + s_emo ε_ref,audio,emo.

A pass whose coefficient is zero is skipped, so equal scales s need two passes and give exactly the official
single-scale CFG ``ε∅ + s (ε_cond − ε∅)`` (3.5 in configs/inference.yaml). What the official unconditional pass
drops (checkpoint_spec.md §1.6): the face tokens (→ ``image_proj(0)``), the reference image in spatial attention,
the audio tokens (→ zeros after projection) and the emotion (→ the "no emotion" row). Past frames and the memory
are kept in every pass.
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GuidancePass:
    """Which conditions one denoiser pass sees."""

    name: str
    reference: bool  # face tokens and the reference image
    audio: bool
    emotion: bool


PASSES: tuple[GuidancePass, ...] = (
    GuidancePass("unconditional", reference=False, audio=False, emotion=False),
    GuidancePass("reference", reference=True, audio=False, emotion=False),
    GuidancePass("reference+audio", reference=True, audio=True, emotion=False),
    GuidancePass("full", reference=True, audio=True, emotion=True),
)


def guidance_plan(
    reference_scale: float, audio_scale: float, emotion_scale: float
) -> list[tuple[GuidancePass, float]]:
    """The passes to run and their coefficients; zero-coefficient passes are left out (they sum to 1)."""
    coefficients = (
        1.0 - reference_scale,
        reference_scale - audio_scale,
        audio_scale - emotion_scale,
        emotion_scale,
    )
    return [(p, c) for p, c in zip(PASSES, coefficients, strict=True) if c != 0.0]


def combine(predictions: torch.Tensor, coefficients: list[float]) -> torch.Tensor:
    """predictions: (passes, ...) batched in plan order -> the guided prediction (...)."""
    weights = torch.tensor(coefficients, dtype=predictions.dtype, device=predictions.device)
    return torch.einsum("p,p...->...", weights, predictions)
