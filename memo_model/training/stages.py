"""Which parameters each training stage updates (paper §4.3, appendix D) — stages are data, not if-chains.

- ``stage1`` (face-domain adaptation): the reference net, the diffusion net's spatial modules (resnets, spatial
  transformers with reference attention and the face cross-attention) and the image projection.
- ``stage2_warmup``: only the new modules — the memory-guided temporal modules, the emotion-aware audio modules
  and the audio projection — with everything from stage 1 frozen.
- ``stage2`` (emotion-decoupled robust training): all of the above jointly.

(The official release only contains a fine-tuning stage that trains the temporal and audio modules —
``stage2_warmup`` here.)
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

NEW_MODULE_MARKERS = ("motion_modules", "audio_modules")  # the official finetune's substring match


def everything(name: str) -> bool:
    return True


def spatial_only(name: str) -> bool:
    return not any(marker in name for marker in NEW_MODULE_MARKERS)


def new_modules_only(name: str) -> bool:
    return any(marker in name for marker in NEW_MODULE_MARKERS)


@dataclass(frozen=True)
class Stage:
    """For each component, a predicate over its parameter names; components not listed are frozen."""

    name: str
    trainable: dict[str, Callable[[str], bool]]
    uses_audio: bool  # stage 1 learns faces, not speech: audio tokens are zeros and emotions "none"


STAGES: dict[str, Stage] = {
    "stage1": Stage(
        "stage1",
        {"reference_net": everything, "diffusion_net": spatial_only, "image_proj": everything},
        uses_audio=False,
    ),
    "stage2_warmup": Stage(
        "stage2_warmup", {"diffusion_net": new_modules_only, "audio_proj": everything}, uses_audio=True
    ),
    "stage2": Stage(
        "stage2",
        {"reference_net": everything, "diffusion_net": everything, "image_proj": everything, "audio_proj": everything},
        uses_audio=True,
    ),
}


def apply_stage(stage: Stage, components: dict[str, torch.nn.Module]) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` on every parameter of every component; return the trainable ones."""
    if stage.name not in STAGES:
        raise ValueError(f"Unknown stage {stage.name!r}; choose one of {', '.join(STAGES)}.")
    trainable = []
    for component, module in components.items():
        rule = stage.trainable.get(component)
        for name, parameter in module.named_parameters():
            parameter.requires_grad_(rule is not None and rule(name))
            if parameter.requires_grad:
                trainable.append(parameter)
    return trainable
