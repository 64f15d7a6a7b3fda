"""audio.features: the official frame arithmetic, windows, the mel path and wav2vec2 on a tiny real model."""

import math

import numpy as np
import pytest
import torch

from memo_model.audio.features import (
    MelFeatures,
    Wav2Vec2Features,
    _windowed,
    frame_windows,
    normalise_waveform,
    pad_to_clips,
    padded_frame_count,
    video_frame_count,
    window_indices,
)
from memo_model.errors import SetupError

SR = 16_000


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonics with a syllable-rate loudness envelope and a little noise: (n,) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * voice * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


# --- frame arithmetic -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_samples", [1, 533, 11_200, 16_000, 16_001, 48_000, 123_457])
@pytest.mark.parametrize("fps", [25, 30])
def test_frame_counts_and_padding_follow_the_official_formula(num_samples, fps):
    frames = math.ceil(num_samples / 16000 * fps)  # audio_utils.py:110
    assert video_frame_count(num_samples, fps) == frames
    padded, total = pad_to_clips(np.ones(num_samples, np.float32), fps)
    expected_total = frames if frames % 16 == 0 else frames + 16 - frames % 16
    assert total == expected_total == padded_frame_count(num_samples, fps)
    assert len(padded) == num_samples + (total - frames) * (16000 // fps)
    assert (padded[num_samples:] == 0).all()


def test_windows_clamp_at_both_ends():
    features = torch.arange(7.0)[:, None, None]  # (T, L=1, C=1) holding the frame number
    windows = frame_windows(features)[..., 0, 0]
    assert windows.shape == (7, 5)
    assert windows[0].tolist() == [0, 0, 0, 1, 2]
    assert windows[3].tolist() == [1, 2, 3, 4, 5]
    assert windows[-1].tolist() == [4, 5, 6, 6, 6]
    assert window_indices(0, 2, 2).tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]


@pytest.mark.parametrize("sizes", [[7], [1, 1, 1, 1, 1, 1, 1], [2, 5], [3, 1, 3], [6, 1]])
def test_streamed_windows_equal_windows_of_the_whole(sizes):
    features = torch.randn(7, 2, 3)
    chunks = iter(torch.split(features, sizes))
    np.testing.assert_array_equal(torch.cat(list(_windowed(chunks, 7, 5))), frame_windows(features))


def test_normalisation_matches_wav2vec2_feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    waveform = speech_like(0.5) + 0.05
    official = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, do_normalize=True)
    expected = official(waveform, sampling_rate=SR, return_tensors="np").input_values[0]
    np.testing.assert_allclose(normalise_waveform(waveform), expected, atol=1e-6)


# --- mel ------------------------------------------------------------------------------------------------------


def test_mel_layout_determinism_and_clips():
    mel = MelFeatures(n_mels=40)
    waveform = speech_like(1.0)
    features = mel(waveform, fps=30)
    assert features.shape == (32, 5, 1, 40) == (mel.frames_for(len(waveform), 30), 5, mel.num_layers, mel.channels)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    assert torch.equal(features, mel(waveform, fps=30))
    clips = list(mel.iter_clips(waveform, fps=30))
    assert [tuple(c.shape) for c in clips] == [(16, 5, 1, 40)] * 2
    assert torch.equal(torch.cat(clips), features)
    np.testing.assert_array_equal(features[5, 2], features[4, 3])  # the window's centre is the frame itself


def test_mel_chunked_equals_whole_exactly():
    waveform = speech_like(3.3)
    whole = MelFeatures(chunk_seconds=None)(waveform, fps=25)
    chunked = MelFeatures(chunk_seconds=0.37)(waveform, fps=25)
    assert torch.equal(whole, chunked)


def test_mel_frames_line_up_with_the_sound():
    waveform = np.zeros(2 * SR, np.float32)
    burst = slice(int(1.0 * SR), int(1.0 * SR + SR // 30))  # one video frame of noise starting at 1.0 s
    waveform[burst] = np.random.default_rng(0).standard_normal(burst.stop - burst.start)
    loudness = MelFeatures()(waveform, fps=30)[:, 2, 0].mean(dim=1)  # (T,) centre of each window
    assert int(loudness.argmax()) == 30


def test_mel_is_fast():
    import time

    mel = MelFeatures()
    mel(speech_like(1.0), fps=30)  # filters built once
    start = time.perf_counter()
    mel(speech_like(60.0), fps=30)
    assert time.perf_counter() - start < 2.0


# --- wav2vec2 on a tiny random model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 2, 2),  # 20 samples per CNN frame (base: 320)
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="group",  # as wav2vec2-base: GroupNorm over time in the first conv layer
        do_stable_layer_norm=False,
    )
    folder = tmp_path_factory.mktemp("wav2vec2-tiny")
    Wav2Vec2Model(config).eval().save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("seconds", "fps"), [(0.3, 30), (1.0, 30), (1.7, 25)])
def test_wav2vec2_shapes_for_any_length(tiny_wav2vec2, seconds, fps):
    extractor = Wav2Vec2Features(tiny_wav2vec2)
    waveform = speech_like(seconds)
    features = extractor(waveform, fps=fps)
    frames = extractor.frames_for(len(waveform), fps)
    assert frames % 16 == 0 and frames >= seconds * fps
    assert features.shape == (frames, 5, 2, 32)
    assert features.dtype == torch.float32 and features.device.type == "cpu"
    assert torch.isfinite(features).all()


def test_wav2vec2_without_resampling_equals_the_transformers_forward(tiny_wav2vec2):
    """Interpolating to the CNN's own length is the identity, so the layers must be hidden_states[1:]."""
    extractor = Wav2Vec2Features(tiny_wav2vec2)
    samples = torch.from_numpy(normalise_waveform(speech_like(0.5)))
    with torch.no_grad():
        reference = extractor.model(samples[None], output_hidden_states=True).hidden_states[1:]
    native = reference[0].shape[1]
    ours = extractor.frame_hidden_states(samples, native)  # (N, L, hidden)
    torch.testing.assert_close(ours, torch.stack([h[0] for h in reference], dim=1), atol=1e-5, rtol=1e-5)


def test_wav2vec2_interpolates_before_the_transformer(tiny_wav2vec2):
    extractor = Wav2Vec2Features(tiny_wav2vec2)
    samples = torch.from_numpy(normalise_waveform(speech_like(0.5)))
    native = len(extractor.cnn_features(samples))
    for frames in (7, 15, native, 3 * native):
        assert extractor.frame_hidden_states(samples, frames).shape == (frames, 2, 32)


def test_wav2vec2_cnn_in_chunks_is_exact(tiny_wav2vec2, monkeypatch):
    extractor = Wav2Vec2Features(tiny_wav2vec2)
    samples = torch.from_numpy(normalise_waveform(speech_like(2.0)))
    with torch.no_grad():
        reference = extractor.model.feature_extractor(samples[None])[0].T  # (N, C_conv)
    monkeypatch.setattr(Wav2Vec2Features, "CNN_CHUNK_SECONDS", 0.13)  # many chunks, GroupNorm stats from pass 1
    torch.testing.assert_close(extractor.cnn_features(samples), reference, atol=1e-5, rtol=1e-4)


def test_wav2vec2_long_audio_in_windows_is_close_to_one_pass(tiny_wav2vec2):
    waveform = speech_like(4.0)
    whole = Wav2Vec2Features(tiny_wav2vec2, chunk_seconds=None)(waveform, fps=30)
    windowed = Wav2Vec2Features(tiny_wav2vec2, chunk_seconds=1.0, context_seconds=0.5)(waveform, fps=30)
    assert windowed.shape == whole.shape
    relative = (windowed - whole).norm() / whole.norm()
    assert relative < 0.05, float(relative)
    exact = Wav2Vec2Features(tiny_wav2vec2, chunk_seconds=1.0, context_seconds=10.0)(waveform, fps=30)
    torch.testing.assert_close(exact, whole, atol=1e-5, rtol=1e-4)  # context covering everything = one pass


def test_wav2vec2_clips_stream_the_same_windows(tiny_wav2vec2):
    extractor = Wav2Vec2Features(tiny_wav2vec2, chunk_seconds=0.5, context_seconds=0.25)
    waveform = speech_like(1.2)
    clips = list(extractor.iter_clips(waveform, fps=30))
    assert all(clip.shape == (16, 5, 2, 32) for clip in clips)
    torch.testing.assert_close(torch.cat(clips), extractor(waveform, fps=30))


def test_wav2vec2_missing_model_says_how_to_get_it(tmp_path):
    extractor = Wav2Vec2Features(tmp_path / "not-a-model")
    with pytest.raises(SetupError, match="facebook/wav2vec2-base-960h") as error:
        extractor(speech_like(0.5), fps=30)
    assert "hf download" in str(error.value)
