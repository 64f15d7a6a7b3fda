"""Shared test helpers: the real MEMO classes at tiny size (no mocks)."""

import pytest
import torch

from memo_model.models.presets import build_components
from memo_model.testing import wake_zero_init  # noqa: F401  (re-exported for the tests)


@pytest.fixture
def tiny():
    """Fresh tiny components (seeded), keyed like ``load_components``."""
    torch.manual_seed(0)
    return {name: model.eval() for name, model in build_components("tiny").items()}


def tiny_inputs(components, batch=2, frames=4, past=3, size=8, seed=0):
    """Random but valid inputs for one clip of the components' sizes (latent channels from the diffusion net)."""
    generator = torch.Generator().manual_seed(seed)
    audio_cfg = components["audio_proj"].config
    image_cfg = components["image_proj"].config
    channels = components["diffusion_net"].config.in_channels
    return {
        "reference_latents": torch.randn(batch, channels, 1 + past, size, size, generator=generator),
        "face_embedding": torch.randn(batch, image_cfg.clip_embeddings_dim, generator=generator),
        "audio_features": torch.randn(
            batch, frames, audio_cfg.seq_len, audio_cfg.blocks, audio_cfg.channels, generator=generator
        ),
        "sample": torch.randn(batch, channels, frames, size, size, generator=generator),
        "emotion": torch.arange(batch) % 9,
    }


def run_clip(components, inputs, timestep=500.0, memory=None, use_reference=None):
    """Reference net -> memory (``None``: a new one from the past frames) -> diffusion net, returning the velocity."""
    face = components["image_proj"](inputs["face_embedding"])
    reference = components["reference_net"](inputs["reference_latents"], face)
    audio = components["audio_proj"](inputs["audio_features"])
    if memory is None:
        memory = components["diffusion_net"].write_memory(reference)
    return components["diffusion_net"](
        inputs["sample"],
        timestep,
        reference,
        face,
        audio,
        inputs["emotion"],
        memory=memory,
        use_reference=use_reference,
    )
