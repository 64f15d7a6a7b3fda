"""Named size presets for the five MEMO networks.

- ``official``: the published ``memoavatar/memo`` configuration (docs/CHECKPOINT.md §2, the reference manifest
  ``memo_official_state_dicts.json``): SD 1.5 UNets at 512², 768-d face and audio tokens, 9 emotions.
- ``memo-tiny`` / ``memo-tiny-v2``: the bundled models' sizes (64 px, 4-channel latents / 128 px, 8-channel latents).
- ``tiny``: the same architecture with small channels, two UNet levels, narrow tokens and a short audio window;
  the test suite builds it in milliseconds.

Each preset maps a component name — the subfolder of the official layout — to its class and constructor kwargs.
"""

from typing import Literal

import torch
from diffusers.models.modeling_utils import ModelMixin

from memo_model.models.diffusion_net import OFFICIAL_MOTION_MODULE_KWARGS, DiffusionNet
from memo_model.models.emotion_classifier import AudioEmotionClassifier
from memo_model.models.projections import AudioProjection, ImageProjection
from memo_model.models.reference_net import ReferenceNet

PresetName = Literal["official", "tiny", "memo-tiny", "memo-tiny-v2"]

COMPONENT_CLASSES: dict[str, type[ModelMixin]] = {
    "reference_net": ReferenceNet,
    "diffusion_net": DiffusionNet,
    "image_proj": ImageProjection,
    "audio_proj": AudioProjection,
    "misc/audio_emotion_classifier": AudioEmotionClassifier,
}

_OFFICIAL: dict[str, dict] = {
    "reference_net": {},
    "diffusion_net": {"motion_module_kwargs": dict(OFFICIAL_MOTION_MODULE_KWARGS)},
    "image_proj": {},
    "audio_proj": {},
    "misc/audio_emotion_classifier": {},
}

_TINY_UNET = {
    "sample_size": 8,
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "cross_attention_dim": 32,
    "attention_head_dim": 2,  # heads; head dim 16 at 32 channels keeps attention cheap on a CPU
}
_TINY: dict[str, dict] = {
    "reference_net": {
        **_TINY_UNET,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    },
    "diffusion_net": {
        **_TINY_UNET,
        "down_block_types": ("CrossAttnDownBlock3D", "DownBlock3D"),
        "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D"),
        "motion_module_resolutions": (1, 2),
        "motion_module_kwargs": {**OFFICIAL_MOTION_MODULE_KWARGS, "num_attention_heads": 2},
        "audio_attention_dim": 32,
    },
    "image_proj": {"cross_attention_dim": 32, "clip_embeddings_dim": 16, "clip_extra_context_tokens": 2},
    "audio_proj": {
        "seq_len": 5,
        "blocks": 2,
        "channels": 8,
        "intermediate_dim": 32,
        "output_dim": 32,
        "context_tokens": 4,
    },
    "misc/audio_emotion_classifier": {"num_classifier_layers": 3, "num_classifier_channels": 32, "input_dim": 16},
}

# MEMO-Tiny, the bundled model: 64 px frames, a VAE with a factor-4 latent (16 x 16 x 4), log-mel audio
# (1 "layer" x 40 bands), a 4 x 4 grey face thumbnail as identity, and the 5-layer emotion head of appendix E.
_MEMO_TINY_UNET = {
    "sample_size": 16,
    "block_out_channels": (32, 64),  # (64, 128): 2.4x slower per denoiser step and a higher loss in the same time
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "cross_attention_dim": 64,
    "attention_head_dim": 2,  # heads: head dim 16 and 32 at the two levels
}
_MEMO_TINY: dict[str, dict] = {
    "reference_net": {**_TINY["reference_net"], **_MEMO_TINY_UNET},
    "diffusion_net": {
        **_TINY["diffusion_net"],
        **_MEMO_TINY_UNET,
        "motion_module_kwargs": {**OFFICIAL_MOTION_MODULE_KWARGS, "num_attention_heads": 2},
        "audio_attention_dim": 64,
    },
    "image_proj": {"cross_attention_dim": 64, "clip_embeddings_dim": 16, "clip_extra_context_tokens": 4},
    "audio_proj": {
        "seq_len": 5,
        "blocks": 1,
        "channels": 40,
        "intermediate_dim": 128,
        "output_dim": 64,
        "context_tokens": 8,
    },
    "misc/audio_emotion_classifier": {"num_classifier_layers": 5, "num_classifier_channels": 128, "input_dim": 80},
}

# MEMO-Tiny v2: 128 px frames through a factor-8 VAE with 8 latent channels (16 x 16 x 8), so the UNets keep v1's
# sizes and cost; the temporal modules normalise with the official 32 groups (v1 was trained with 8).
_MEMO_TINY_V2: dict[str, dict] = {
    **_MEMO_TINY,
    "reference_net": {**_MEMO_TINY["reference_net"], "in_channels": 8},
    "diffusion_net": {**_MEMO_TINY["diffusion_net"], "in_channels": 8, "out_channels": 8},
}

PRESETS: dict[str, dict[str, dict]] = {
    "official": _OFFICIAL,
    "tiny": _TINY,
    "memo-tiny": _MEMO_TINY,
    "memo-tiny-v2": _MEMO_TINY_V2,
}


def preset_config(preset: PresetName, component: str) -> dict:
    """The constructor kwargs of one component in a preset."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    if component not in COMPONENT_CLASSES:
        raise ValueError(f"Unknown component {component!r}; choose one of {sorted(COMPONENT_CLASSES)}.")
    return dict(PRESETS[preset][component])


def build_component(preset: PresetName, component: str, device: str | torch.device | None = None) -> ModelMixin:
    """Instantiate one component; ``device="meta"`` builds the full official size without allocating memory."""
    cls = COMPONENT_CLASSES[component]
    kwargs = preset_config(preset, component)
    if device is None:
        return cls(**kwargs)
    with torch.device(device):
        return cls(**kwargs)


def build_components(preset: PresetName, device: str | torch.device | None = None) -> dict[str, ModelMixin]:
    """All five components of a preset, keyed like ``load_components``: ``misc/x`` -> ``x``."""
    return {name.rsplit("/", 1)[-1]: build_component(preset, name, device) for name in COMPONENT_CLASSES}
