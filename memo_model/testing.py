"""Random tiny weights in the official layout, for tests and benchmarks only.

These networks are untrained: their videos are noise-like. They exist so the whole system — loading, the clip
loop, guidance, streaming — can be exercised in seconds on a CPU. Never use them as a model.
"""

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from memo_model.audio.emotion import LOG_MEL_STATISTICS_DIM
from memo_model.models.presets import COMPONENT_CLASSES, preset_config
from memo_model.weights import MANIFEST_NAME, save_components

TINY_RESOLUTION = 16  # pixels; the 2-level tiny VAE makes 8x8 latents
TINY_MELS = 8
TINY_THUMBNAIL = 4  # identity = a 4x4 grey thumbnail of the face crop: 16 values


def wake_zero_init(model: torch.nn.Module, std: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Give zero-initialised output projections small random weights, so new modules act (as after training)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "proj_out" in name and torch.count_nonzero(parameter) == 0:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=TINY_RESOLUTION,
    )


def write_random_tiny_weights(folder: str | Path, seed: int = 0, wake_new_modules: bool = True) -> Path:
    """Write a complete random tiny model (all components, a VAE, a manifest) into ``folder``.

    ``wake_new_modules`` gives the zero-initialised temporal and audio output projections small random values,
    so that memory, audio and emotion actually change the output (as in a trained model).
    """
    folder = Path(folder)
    torch.manual_seed(seed)
    overrides = {
        "audio_proj": {"blocks": 1, "channels": TINY_MELS},  # log-mel features have one "layer"
        "image_proj": {"clip_embeddings_dim": TINY_THUMBNAIL**2},
        "misc/audio_emotion_classifier": {"input_dim": LOG_MEL_STATISTICS_DIM},
    }
    components = {}
    for name, cls in COMPONENT_CLASSES.items():
        components[name.rsplit("/", 1)[-1]] = cls(**{**preset_config("tiny", name), **overrides.get(name, {})})
    if wake_new_modules:
        wake_zero_init(components["diffusion_net"], seed=seed)
    save_components(components, folder)
    tiny_vae().save_pretrained(folder / "vae", safe_serialization=True)
    manifest = {
        "name": "tiny-random (tests only, untrained)",
        "resolution": TINY_RESOLUTION,
        "fps": 30,
        "vae": "vae",
        "audio_features": {"kind": "mel", "n_mels": TINY_MELS, "n_fft": 512},
        "identity": {"kind": "thumbnail", "size": TINY_THUMBNAIL},
        "emotion": {"kind": "classifier_head", "n_mels": LOG_MEL_STATISTICS_DIM // 2},
        "notes": "Random weights for tests and benchmarks.",
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return folder
