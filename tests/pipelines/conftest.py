"""A tiny random pipeline in the official layout, shared by the pipeline tests (built once per session)."""

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from memo_model.loading import load_pipeline
from memo_model.testing import write_random_tiny_weights

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


def speech_like(seconds: float, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """A voiced, syllable-modulated tone with a little noise: not silent, not constant."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(seed)
    pitch = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    voice = np.sin(2 * np.pi * np.cumsum(pitch) / sample_rate) + 0.3 * np.sin(
        4 * np.pi * np.cumsum(pitch) / sample_rate
    )
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * voice * syllables + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    return write_random_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny")


@pytest.fixture(scope="session")
def pipeline(weights):
    return load_pipeline(weights, device="cpu")


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """A real portrait and speech-like audio files of a few lengths."""
    folder = tmp_path_factory.mktemp("media")
    Image.open(FIXTURES / "astronaut_256.jpg").convert("RGB").save(folder / "portrait.png")
    for seconds in (0.5, 1.0, 2.0):
        sf.write(folder / f"speech_{seconds:g}s.wav", speech_like(seconds), 16000)
    return folder
