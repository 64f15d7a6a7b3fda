"""Step 4 of the data pipeline (paper appendix F): the lip-sync filter.

The paper removes videos whose SyncNet confidence (Sync-C) is under 5. A ``LipSyncScorer`` maps a clip (head crop
frames + audio) to a ``SyncScore``: a confidence (higher = surer the lips follow the audio) and the best
audio-video offset in frames. ``LipSyncFilter`` rejects clips under a confidence threshold or with a large offset.

Scorers:
  * ``MouthDarknessScorer`` (offline default): the mouth region of the crop gets darker as the mouth opens (the
    mouth cavity shows), so its mean darkness per frame is a mouth-opening track; it is correlated with the audio's
    mouth-opening estimate (first-formant energy, ``mouth_open_from_audio``) over offsets of ±15 frames with the
    evaluation metric ``memo_model.metrics.lip_sync``. Confidence = best correlation minus the median
    over offsets, the Sync-C analogue. Crude (beards, teeth and lighting also change darkness), but offline.
  * ``AnalyzerLipSyncScorer``: the same correlation with the mouth opening read by the synthetic world's face
    analyzer (``memo_model.data.synthetic.analyzer``), for synthetic-looking faces; needs its trained weights.
  * ``SyncNetScorer``: SyncNet (Chung & Zisserman 2016) as the paper. This project ships neither SyncNet's
    architecture nor its weights: pass the weights path and a loader returning a ``SyncEmbedder``; Sync-C is then
    computed the SyncNet way (``sync_confidence``). Its confidences are on SyncNet's scale (paper threshold 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from memo_model.data.preprocess.clip import Clip, reject
from memo_model.data.synthetic.speech import FPS as ENVELOPE_FPS
from memo_model.data.synthetic.speech import mouth_open_from_audio
from memo_model.errors import SetupError
from memo_model.metrics import DEFAULT_MAX_OFFSET, lip_sync

# The mouth inside a face box, as fractions of the box (x from the left, y from the top). Set for brows-to-chin
# boxes (the default detector's, vision/face.py): the lips sit at 65-95 % of the box height, the middle 40 % of its
# width.
MOUTH_REGION = {"x": (0.3, 0.7), "y": (0.65, 0.95)}
OFFLINE_MIN_CONFIDENCE = 0.7  # MouthDarknessScorer on 3-s synthetic clips: matched 0.83-1.11, dubbed 0.12-0.61
PAPER_SYNC_C_THRESHOLD = 5.0  # paper, appendix F (SyncNet confidence on CelebV-HQ)
MAX_OFFSET_FRAMES = 5  # a best offset beyond this (1/6 s) means audio and video are shifted: reject too


@dataclass(frozen=True)
class SyncScore:
    confidence: float  # higher = lips follow the audio more surely (scale depends on the scorer)
    offset: int  # frames at which video and audio match best; positive = the video lags
    correlation: float  # at the best offset (or minus SyncNet's embedding distance there)


class LipSyncScorer(Protocol):
    """A clip (frames = head crop, audio 16 kHz) → how well its lips follow its audio."""

    def __call__(self, clip: Clip) -> SyncScore: ...


def audio_mouth_track(audio: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Mouth opening expected from the audio, (num_frames,) at ``fps`` (the estimate is defined at 30 fps)."""
    at_envelope_rate = max(2, round(num_frames * ENVELOPE_FPS / fps))
    track = mouth_open_from_audio(audio, at_envelope_rate)
    if at_envelope_rate == num_frames:
        return track
    return np.interp(np.arange(num_frames) * ENVELOPE_FPS / fps, np.arange(at_envelope_rate), track)


def mouth_box(crop_side: int, face_fraction: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the mouth in a crop whose centred face box spans ``face_fraction`` of it."""

    def span(low: float, high: float) -> tuple[int, int]:
        return round(crop_side * (0.5 + (low - 0.5) * face_fraction)), round(
            crop_side * (0.5 + (high - 0.5) * face_fraction)
        )

    left, right = span(*MOUTH_REGION["x"])
    top, bottom = span(*MOUTH_REGION["y"])
    return left, top, max(right, left + 1), max(bottom, top + 1)


class MouthDarknessScorer:
    """Offline scorer: darkness of the mouth region vs the audio's first-formant envelope (see module docstring)."""

    def __init__(self, max_offset: int = DEFAULT_MAX_OFFSET):
        self.max_offset = max_offset

    def mouth_track(self, clip: Clip) -> np.ndarray:
        """(f,) darkness of the mouth region of each crop frame."""
        side = clip.frames.shape[1]
        face_fraction = clip.scores.get("face_side", side) / clip.scores.get("crop_side", side)
        left, top, right, bottom = mouth_box(side, face_fraction)
        mouths = np.stack([cv2.cvtColor(f[top:bottom, left:right], cv2.COLOR_RGB2GRAY) for f in clip.frames])
        return 255.0 - mouths.reshape(len(mouths), -1).mean(axis=1)

    def __call__(self, clip: Clip) -> SyncScore:
        result = lip_sync(
            self.mouth_track(clip), audio_mouth_track(clip.audio, clip.num_frames, clip.fps), self.max_offset
        )
        return SyncScore(result.confidence, result.best_offset, result.best_correlation)


class AnalyzerLipSyncScorer:
    """The synthetic world's analyzer reads the mouth opening; correlated with the audio like the offline scorer."""

    def __init__(self, analyzer_dir: str | Path | None = None, max_offset: int = DEFAULT_MAX_OFFSET):
        from memo_model.data.synthetic.analyzer import load_analyzer

        try:
            self.analyzer = load_analyzer(analyzer_dir)
        except FileNotFoundError as error:
            raise SetupError(f"{error} Or use the offline lip-sync scorer (--lip-sync offline).") from None
        self.max_offset = max_offset

    def __call__(self, clip: Clip) -> SyncScore:
        from memo_model.data.synthetic.analyzer import analyze_frames

        measured = analyze_frames(self.analyzer, clip.frames)["mouth_open"]
        result = lip_sync(measured, audio_mouth_track(clip.audio, clip.num_frames, clip.fps), self.max_offset)
        return SyncScore(result.confidence, result.best_offset, result.best_correlation)


class SyncEmbedder(Protocol):
    """SyncNet's two streams: per-frame lip embeddings and audio embeddings, both (f, d), aligned frame by frame."""

    def embed_video(self, frames: np.ndarray, fps: float) -> np.ndarray: ...

    def embed_audio(self, audio: np.ndarray, num_frames: int, fps: float) -> np.ndarray: ...


def sync_confidence(video: np.ndarray, audio: np.ndarray, max_offset: int = DEFAULT_MAX_OFFSET) -> SyncScore:
    """Sync-C the SyncNet way from (f, d) embeddings: mean distance per offset; confidence = median − minimum."""
    if video.shape != audio.shape:
        raise ValueError(f"Video and audio embeddings must have the same shape; got {video.shape}, {audio.shape}.")
    distances = {}
    for k in range(-max_offset, max_offset + 1):
        a, b = (video[k:], audio[: len(audio) - k]) if k >= 0 else (video[:k], audio[-k:])
        distances[k] = float(np.linalg.norm(a - b, axis=1).mean()) if len(a) else np.inf
    best = min(distances, key=lambda k: (distances[k], abs(k)))
    confidence = float(np.median(list(distances.values())) - distances[best])
    return SyncScore(confidence, int(best), -distances[best])


class SyncNetScorer:
    """SyncNet with user-supplied weights and architecture loader (``loader(weights_path) -> SyncEmbedder``)."""

    def __init__(
        self,
        weights: str | Path | None,
        loader: Callable[[Path], SyncEmbedder] | None = None,
        max_offset: int = DEFAULT_MAX_OFFSET,
    ):
        if weights is None or not Path(weights).is_file():
            raise SetupError(
                f"No SyncNet weights at {str(weights)!r}. Download the SyncNet v2 weights (syncnet_v2.model, from the "
                "authors' syncnet_python release) and pass their path with --syncnet-weights; or use the offline "
                "lip-sync scorer (--lip-sync offline)."
            )
        if loader is None:
            raise SetupError(
                "This project does not bundle SyncNet's network: pass a loader that builds it from the weights "
                "(a SyncEmbedder with embed_video / embed_audio), see docs/DATA_PIPELINE.md."
            )
        self.model = loader(Path(weights))
        self.max_offset = max_offset

    def __call__(self, clip: Clip) -> SyncScore:
        video = self.model.embed_video(clip.frames, clip.fps)
        audio = self.model.embed_audio(clip.audio, clip.num_frames, clip.fps)
        return sync_confidence(np.asarray(video), np.asarray(audio), self.max_offset)


class LipSyncFilter:
    """Step: reject clips whose lips do not follow their audio (low confidence or shifted)."""

    name = "lip_sync"

    def __init__(
        self,
        scorer: LipSyncScorer | None = None,
        min_confidence: float = OFFLINE_MIN_CONFIDENCE,
        max_offset: int = MAX_OFFSET_FRAMES,
    ):
        self.scorer = scorer or MouthDarknessScorer()
        self.min_confidence = min_confidence
        self.max_offset = max_offset

    def __call__(self, clip: Clip) -> Clip | None:
        score = self.scorer(clip)
        clip.scores.update(
            lip_sync_confidence=score.confidence, lip_sync_offset=score.offset, lip_sync_correlation=score.correlation
        )
        if score.confidence < self.min_confidence:
            return reject(
                clip,
                self.name,
                f"lips do not follow the audio: confidence {score.confidence:.2f} < {self.min_confidence}",
            )
        if abs(score.offset) > self.max_offset:
            return reject(
                clip, self.name, f"audio and video are shifted by {score.offset} frames (more than {self.max_offset})"
            )
        return clip
