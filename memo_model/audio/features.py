"""Audio features per video frame, windowed: the audio condition of MEMO (paper §3.3, docs/CHECKPOINT.md §1.3).

Dimension legend: n samples (16 kHz), N wav2vec2 CNN frames (50 Hz), T video frames, W window (5), L layers,
C channels.

Both extractors follow the official layout (audio_utils.py:108-140):
  1. normalise the waveform to zero mean / unit variance (``Wav2Vec2FeatureExtractor``);
  2. T = ceil(n / 16000 · fps), rounded up to a whole number of 16-frame clips by appending zeros of
     (16 − T % 16) · (16000 // fps) samples;
  3. per-frame features (T, L, C);
  4. for each frame i the frames i−2 … i+2, clamped at the ends → (T, W=5, L, C).

``Wav2Vec2Features`` is the official path: wav2vec2 CNN features are linearly interpolated (align_corners=True) to
T frames *before* the feature projection and the transformer, and the L=12 transformer layer outputs are kept.
``MelFeatures`` is the light path of the bundled tiny model: a log-mel spectrum centred on each video frame, L=1.

Long audio is computed in bounded chunks and streamed (``iter_clips``), so activations do not grow with length:
  * mel: every frame depends only on the samples around it, so chunks are exact;
  * wav2vec2 CNN: convolutions are local, and the one global operation, the GroupNorm of the first conv layer,
    gets its per-channel statistics from a first pass over the whole audio → chunks are exact;
  * wav2vec2 transformer: attention is global; audio up to ``chunk_seconds`` (60 s) is done in one pass, exactly
    as the official code; longer audio in windows of ``chunk_seconds`` with ``context_seconds`` (10 s) of
    interpolated features on each side, of which only the centre is kept → close to, not equal to, one pass.
Kept whole are the waveform and the CNN / projected features (≈ 0.25 MB per second of audio for wav2vec2-base).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from memo_model.audio.io import SAMPLE_RATE
from memo_model.errors import SetupError

CLIP_LENGTH = 16  # num_generated_frames_per_clip (configs/inference.yaml)
WINDOW = 5  # frames i-2 … i+2 around each frame (audio_utils.py:136-140)
OFFICIAL_WAV2VEC2 = "facebook/wav2vec2-base-960h"
NORMALISE_EPS = 1e-7  # Wav2Vec2FeatureExtractor's variance floor


# --- frame arithmetic (pure) ----------------------------------------------------------------------------------


def video_frame_count(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Video frames covering the audio: ceil(n / sr · fps), in the official code's float arithmetic."""
    return math.ceil(num_samples / sample_rate * fps)


def padded_frame_count(num_samples: int, fps: float, clip_length: int = CLIP_LENGTH) -> int:
    """``video_frame_count`` rounded up to a multiple of ``clip_length``."""
    frames = video_frame_count(num_samples, fps)
    return frames + (-frames % clip_length)


def pad_to_clips(waveform: np.ndarray, fps: float, clip_length: int = CLIP_LENGTH) -> tuple[np.ndarray, int]:
    """Append the official padding of (clip_length − T % clip_length) · (sr // fps) zero samples.

    Returns the padded waveform (n',) and the padded frame count T. Note sr // fps = 533 at 30 fps, a third of a
    sample short of a frame: the padded audio is slightly shorter than T frames, as in the official code.
    """
    frames = video_frame_count(len(waveform), fps)
    missing = -frames % clip_length
    if missing == 0:
        return waveform, frames
    padding = np.zeros(missing * int(SAMPLE_RATE // fps), dtype=waveform.dtype)
    return np.concatenate([waveform, padding]), frames + missing


def normalise_waveform(waveform: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole utterance: what ``Wav2Vec2FeatureExtractor(do_normalize=True)`` does
    (tested against it), without importing transformers on the light path."""
    waveform = np.asarray(waveform, dtype=np.float32)
    return (waveform - waveform.mean()) / np.sqrt(waveform.var() + NORMALISE_EPS)


def window_indices(start: int, stop: int, total: int, window: int = WINDOW) -> torch.Tensor:
    """Frame indices of the windows of frames [start, stop): (stop − start, window), clamped to [0, total − 1]."""
    half = window // 2
    offsets = torch.arange(-half, window - half)
    return (torch.arange(start, stop)[:, None] + offsets).clamp(0, total - 1)


def frame_windows(features: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """(T, L, C) → (T, window, L, C): frame i gets frames i−2 … i+2, clamped at both ends."""
    return features[window_indices(0, len(features), len(features), window)]


def chunk_bounds(total: int, chunk: int | None) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most ``chunk`` items covering ``range(total)``; one range when chunk is None."""
    step = total if chunk is None or chunk <= 0 else chunk
    return [(start, min(start + step, total)) for start in range(0, total, max(step, 1))]


def _windowed(chunks: Iterator[torch.Tensor], total: int, window: int) -> Iterator[torch.Tensor]:
    """Stream consecutive frame chunks (n_i, L, C) covering ``total`` frames → window chunks (m_i, W, L, C).

    Keeps only the ``window // 2`` frames a later window still needs, so memory stays one chunk.
    """
    half = window // 2
    buffer: torch.Tensor | None = None
    buffer_start = next_frame = 0
    for chunk in chunks:
        buffer = chunk if buffer is None else torch.cat([buffer, chunk])
        available = buffer_start + len(buffer)
        ready = total if available >= total else available - half  # frames whose whole window has arrived
        if ready > next_frame:
            yield buffer[window_indices(next_frame, ready, total, window) - buffer_start]
            next_frame = ready
            keep_from = max(next_frame - half, 0)
            buffer, buffer_start = buffer[keep_from - buffer_start :], keep_from


def _regroup(chunks: Iterator[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """Re-cut a stream of (n_i, ...) tensors into pieces of exactly ``size`` rows (the last may be shorter)."""
    pending: list[torch.Tensor] = []
    count = 0
    for chunk in chunks:
        pending.append(chunk)
        count += len(chunk)
        while count >= size:
            joined = torch.cat(pending)
            yield joined[:size]
            pending, count = [joined[size:]], count - size
    if count:
        yield torch.cat(pending)


# --- the interface --------------------------------------------------------------------------------------------


class AudioFeatureExtractor(ABC):
    """Waveform (16 kHz mono) → per-video-frame windows (T, W, L, C), T a multiple of the clip length."""

    num_layers: int
    channels: int
    window: int = WINDOW
    clip_length: int = CLIP_LENGTH

    def frames_for(self, num_samples: int, fps: float) -> int:
        """T of ``__call__`` for audio of ``num_samples``: the padded frame count."""
        return padded_frame_count(num_samples, fps, self.clip_length)

    def __call__(self, waveform: np.ndarray, fps: float) -> torch.Tensor:
        """All windows at once: (T, W, L, C) float32 on the CPU."""
        return torch.cat(list(self._windows(waveform, fps)))

    def iter_clips(self, waveform: np.ndarray, fps: float) -> Iterator[torch.Tensor]:
        """The same windows one clip at a time, (clip_length, W, L, C): memory stays bounded for long audio."""
        return _regroup(self._windows(waveform, fps), self.clip_length)

    def _windows(self, waveform: np.ndarray, fps: float) -> Iterator[torch.Tensor]:
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1 or len(waveform) == 0:
            raise ValueError(f"Expected a non-empty mono waveform (n,), got shape {waveform.shape}.")
        samples, total = pad_to_clips(normalise_waveform(waveform), fps, self.clip_length)
        return _windowed(self._frame_features(samples, total, fps), total, self.window)

    @abstractmethod
    def _frame_features(self, samples: np.ndarray, num_frames: int, fps: float) -> Iterator[torch.Tensor]:
        """Normalised, padded samples (n',) → consecutive chunks (n_i, L, C) of the ``num_frames`` frame features."""


# --- light path: log-mel --------------------------------------------------------------------------------------


class MelFeatures(AudioFeatureExtractor):
    """Log-mel spectrum of a window centred on each video frame: (T, 5, 1, n_mels). Deterministic, fast.

    Frame i shows the time [i / fps, (i + 1) / fps); its spectrum is taken from ``n_fft`` samples centred on the
    middle of that interval (64 ms at the defaults: the frame and half of each neighbour), zeros beyond the ends.
    """

    num_layers = 1
    LOG_FLOOR = 1e-6  # keeps log finite in digital silence (the padding)

    def __init__(self, n_mels: int = 80, n_fft: int = 1024, fmin: float = 0.0, fmax: float = SAMPLE_RATE / 2,
                 chunk_seconds: float | None = 60.0):  # fmt: skip
        self.channels = n_mels
        self.n_fft = n_fft
        self.fmin, self.fmax = fmin, fmax
        self.chunk_seconds = chunk_seconds

    def _frame_features(self, samples: np.ndarray, num_frames: int, fps: float) -> Iterator[torch.Tensor]:
        filters = _mel_filters(self.n_fft, self.channels, self.fmin, self.fmax)  # (n_mels, n_fft // 2 + 1)
        taper = np.hanning(self.n_fft + 1)[:-1]  # periodic Hann
        chunk = None if self.chunk_seconds is None else max(1, round(self.chunk_seconds * fps))
        for start, stop in chunk_bounds(num_frames, chunk):
            frames = _centred_frames(samples, start, stop, fps, self.n_fft)  # (stop − start, n_fft)
            # float64 until the end: BLAS sums rows differently for different chunk sizes, and those last-bit
            # differences must not survive the cast, so that chunked features equal whole ones exactly.
            power = np.abs(np.fft.rfft(frames * taper, axis=1)) ** 2 / self.n_fft  # (t, n_fft // 2 + 1)
            log_mel = np.log(power @ filters.T + self.LOG_FLOOR)  # (t, n_mels)
            yield torch.from_numpy(log_mel.astype(np.float32))[:, None, :]  # (t, L=1, C)


def _centred_frames(samples: np.ndarray, start: int, stop: int, fps: float, n_fft: int) -> np.ndarray:
    """Rows of ``n_fft`` samples centred on the middle of video frames [start, stop), zero outside the audio."""
    centres = np.floor((np.arange(start, stop) + 0.5) * SAMPLE_RATE / fps).astype(np.int64)
    index = centres[:, None] + np.arange(n_fft) - n_fft // 2  # (t, n_fft)
    inside = (index >= 0) & (index < len(samples))
    return np.where(inside, samples[index.clip(0, len(samples) - 1)], 0.0).astype(np.float64)


@lru_cache(maxsize=8)
def _mel_filters(n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float64)


# --- official path: wav2vec2 ----------------------------------------------------------------------------------


class Wav2Vec2Features(AudioFeatureExtractor):
    """The official audio features: wav2vec2 hidden states of all transformer layers, (T, 5, 12, 768).

    ``model`` is a local folder or a hub id of a ``Wav2Vec2Model`` (the official one is
    facebook/wav2vec2-base-960h); it is loaded on first use. Computation runs on ``device`` in fp32 (as the
    official code) and the features are returned on the CPU, where the official audio projection runs.
    """

    CNN_CHUNK_SECONDS = 5.0  # audio per CNN pass: wav2vec2-base's first conv layer makes ~13 MB per second

    def __init__(self, model: str | Path = OFFICIAL_WAV2VEC2, device: str | torch.device = "cpu",
                 chunk_seconds: float | None = 60.0, context_seconds: float = 10.0):  # fmt: skip
        self.source = model
        self.device = torch.device(device)
        self.chunk_seconds = chunk_seconds
        self.context_seconds = context_seconds
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = _load_wav2vec2(self.source).to(self.device).eval()
        return self._model

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def channels(self) -> int:
        return self.model.config.hidden_size

    def _frame_features(self, samples: np.ndarray, num_frames: int, fps: float) -> Iterator[torch.Tensor]:
        with torch.inference_mode():
            projected = self.projected_features(torch.from_numpy(samples), num_frames)  # (T, hidden)
            chunk = None if self.chunk_seconds is None else max(1, round(self.chunk_seconds * fps))
            context = round(self.context_seconds * fps)
            for start, stop in chunk_bounds(num_frames, chunk):
                first, last = max(start - context, 0), min(stop + context, num_frames)
                hidden = self.transformer_layers(projected[first:last])  # (last − first, L, hidden)
                yield hidden[start - first : stop - first].float().cpu()

    def frame_hidden_states(self, samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The official ``Wav2VecModel`` forward with ``seq_len=num_frames`` in one pass: (n,) → (T, L, hidden)."""
        with torch.inference_mode():
            return self.transformer_layers(self.projected_features(samples, num_frames)).float().cpu()

    def projected_features(self, samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        """CNN features (N, C_conv), interpolated to T frames, then ``feature_projection``: (n,) → (T, hidden)."""
        model = self.model
        cnn = self.cnn_features(samples)  # (N, C_conv)
        # The official step: interpolate at the CNN level, before the transformer (memo/models/wav2vec.py).
        cnn = F.interpolate(cnn.T[None], size=num_frames, mode="linear", align_corners=True)[0].T  # (T, C_conv)
        hidden, _ = model.feature_projection(cnn[None])  # (1, T, hidden)
        return model._mask_hidden_states(hidden)[0]  # identity at inference, kept as the official forward has it

    def transformer_layers(self, hidden: torch.Tensor) -> torch.Tensor:
        """Encoder on (t, hidden) → every transformer layer's output stacked, (t, L, hidden) (= hidden_states[1:])."""
        encoder = self.model.encoder
        hidden = hidden[None]  # (1, t, hidden)
        hidden = hidden + encoder.pos_conv_embed(hidden)
        if not self.model.config.do_stable_layer_norm:  # the base model normalises before the layers, "stable" after
            hidden = encoder.layer_norm(hidden)
        hidden = encoder.dropout(hidden)
        outputs = []
        for layer in encoder.layers:
            hidden = layer(hidden, attention_mask=None)
            outputs.append(hidden[0])
        return torch.stack(outputs, dim=1)  # (t, L, hidden)

    def cnn_features(self, samples: torch.Tensor) -> torch.Tensor:
        """``model.feature_extractor`` on (n,) → (N, C_conv), computed in bounded chunks with identical results."""
        config = self.model.config
        layers = self.model.feature_extractor.conv_layers
        stride = math.prod(config.conv_stride)
        field = 1 + sum((k - 1) * math.prod(config.conv_stride[:i]) for i, k in enumerate(config.conv_kernel))
        total = _conv_output_length(len(samples), config.conv_kernel, config.conv_stride)
        if total <= 0:
            raise ValueError(f"{len(samples)} samples are too short for wav2vec2 (at least {field} needed).")
        samples = samples.to(self.device, torch.float32)
        first_norm = _first_layer_statistics(layers[0], samples, self.CNN_CHUNK_SECONDS)
        chunk = max(1, round(self.CNN_CHUNK_SECONDS * SAMPLE_RATE / stride))
        pieces = []
        for start, stop in chunk_bounds(total, chunk):
            hidden = samples[start * stride : (stop - 1) * stride + field][None, None]  # (1, 1, n_chunk)
            for index, layer in enumerate(layers):
                hidden = _group_norm_layer(layer, hidden, *first_norm) if index == 0 and first_norm else layer(hidden)
            pieces.append(hidden[0].T)  # (stop − start, C_conv)
        return torch.cat(pieces)


def _conv_output_length(length: int, kernels, strides) -> int:
    for kernel, stride in zip(kernels, strides, strict=True):
        length = (length - kernel) // stride + 1
    return length


def _first_layer_statistics(layer, samples: torch.Tensor, chunk_seconds: float) -> tuple | None:
    """Per-channel mean and variance of the first conv's output over the whole audio, for its GroupNorm.

    wav2vec2-base normalises each channel of the first conv layer over all time steps (GroupNorm with one
    channel per group), the only non-local step of the CNN; a first pass over chunks gathers those statistics.
    Returns None when the first layer has no such norm ("layer" norm models are local everywhere).
    """
    if not isinstance(getattr(layer, "layer_norm", None), torch.nn.GroupNorm):
        return None
    conv = layer.conv
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    total = (len(samples) - kernel) // stride + 1
    chunk = max(1, round(chunk_seconds * SAMPLE_RATE / stride))
    sums = torch.zeros(conv.out_channels, dtype=torch.float64, device=samples.device)
    squares = torch.zeros_like(sums)
    for start, stop in chunk_bounds(total, chunk):
        out = conv(samples[start * stride : (stop - 1) * stride + kernel][None, None])[0]  # (C, t)
        sums += out.sum(dim=1, dtype=torch.float64)
        squares += out.square().sum(dim=1, dtype=torch.float64)
    mean = sums / total
    variance = (squares / total - mean * mean).clamp_min(0)  # biased, as GroupNorm
    return mean.float(), variance.float()


def _group_norm_layer(layer, hidden: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """The first conv layer (conv → GroupNorm → activation) with GroupNorm statistics of the whole audio."""
    norm = layer.layer_norm
    hidden = layer.conv(hidden)  # (1, C, t)
    scale = norm.weight / torch.sqrt(variance + norm.eps)  # (C,): the affine folded in, one pass over hidden
    hidden = hidden.sub_(mean[:, None]).mul_(scale[:, None]).add_(norm.bias[:, None])
    return layer.activation(hidden)


def _load_wav2vec2(source: str | Path):
    from transformers import Wav2Vec2Model

    try:
        return Wav2Vec2Model.from_pretrained(str(source))
    except (OSError, ValueError) as error:
        raise SetupError(
            f"Could not load the wav2vec2 audio model from {str(source)!r} ({type(error).__name__}). The official "
            f"features need {OFFICIAL_WAV2VEC2}: on a machine with internet run "
            f"`hf download {OFFICIAL_WAV2VEC2} --local-dir checkpoints/wav2vec2-base-960h` and pass that folder."
        ) from error
