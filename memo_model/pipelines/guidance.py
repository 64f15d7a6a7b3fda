"""Classifier-free guidance with separate reference, audio and emotion scales (paper Eq. 6, generalised).

The conditions nest: reference (face tokens + reference attention) ⊂ + audio ⊂ + emotion. With one denoiser
pass per level,

    ε = ε∅ + s_ref (ε_ref − ε∅) + s_audio (ε_ref,audio − ε_ref) + s_emo (ε_ref,audio,emo − ε_ref,audio)
      = (1 − s_ref) ε∅ + (s_ref − s_audio) ε_ref + (s_audio − s_emo) ε_ref,audio + s_emo ε_ref,audio,emo.

A pass whose coefficient is zero is skipped, so equal scales s need two passes and give exactly the official
single-scale CFG ``ε∅ + s (ε_cond − ε∅)`` (3.5 in configs/inference.yaml). What the official unconditional pass
drops (docs/CHECKPOINT.md §1.6): the face tokens (→ ``image_proj(0)``), the reference image in spatial attention,
the audio tokens (→ zeros after projection) and the emotion (→ the "no emotion" row). Past frames and the memory
are kept in every pass.
"""

from dataclasses import dataclass

import torch

from memo_model.models.reference_net import ReferenceFeatures


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


# --- the guidance batch's layout ---------------------------------------------------------------------------------
#
# "per-sample" (our default): every pass of the guidance batch sees its own sample's reference image and face
# tokens, which is what the weights saw in training (batch 1, no guidance batch).
# "official": what the official inference computes. Its reference net runs on the passes' stacks one after the
# other, [pass 0's reference + past frames, pass 1's ...], with the passes' face tokens tiled over the stacked
# frames (frame i gets pass i mod b's); its spatial attention tiles the b reference images over the (b f) rows
# (row r sees pass r mod b's). With 2 passes and 16 past frames each pass's reference image keeps its own face
# tokens, while the past frames alternate between the two, and the conditional pass attends to the unconditional
# pass's reference image on every other frame. docs/CHECKPOINT.md §1.6.1.
GUIDANCE_LAYOUTS = ("per-sample", "official")


def official_stack_passes(num_passes: int, stack_frames: int) -> torch.Tensor:
    """(passes, stack_frames) long: whose face tokens each frame of each pass's reference stack was computed with."""
    return torch.arange(num_passes * stack_frames).view(num_passes, stack_frames) % num_passes


def official_reference_rows(num_passes: int, num_frames: int) -> torch.Tensor:
    """((passes f),) long: the pass whose reference image each row of the denoiser batch attends to."""
    return torch.arange(num_passes * num_frames) % num_passes


def pass_references(stacks: ReferenceFeatures, condition_index: torch.Tensor, layout: str) -> ReferenceFeatures:
    """Each pass's reference stack from the stacks computed once per face condition.

    stacks: (conditions, 1 + p, ...) features of [reference, past frames] under each face condition;
    condition_index: (passes,) the face condition of each pass. Returns (passes, 1 + p, ...) features."""
    if layout == "per-sample":
        return stacks.select(condition_index)
    if layout != "official":
        raise ValueError(f"Unknown guidance layout {layout!r}; choose one of {', '.join(GUIDANCE_LAYOUTS)}.")
    stack_frames = stacks.layers[0].shape[1]
    device = stacks.layers[0].device
    condition = condition_index.cpu()[official_stack_passes(len(condition_index), stack_frames)].to(device)
    frame = torch.arange(stack_frames, device=device).expand_as(condition)
    return ReferenceFeatures(tuple(layer[condition, frame] for layer in stacks.layers))
