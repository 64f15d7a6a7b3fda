"""Scoring videos with the face analyzer: the synthetic SyncNet / expression / ArcFace / FID measurements.

``score_video`` takes a video (file or frames) plus its audio and returns every per-video metric;
``frechet_distance_between`` compares two sets of videos (content and texture Fréchet distances). The
lip-sync reference track is the sample's ground-truth mouth opening when its labels are known (synthetic
samples), else an estimate from the audio alone (``mouth_open_from_audio``).
"""

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from memo_model.data.synthetic.analyzer import FaceAnalyzer, analyze_frames, load_analyzer
from memo_model.data.synthetic.dataset_writer import read_video
from memo_model.data.synthetic.speech import SAMPLE_RATE, mouth_open_from_audio
from memo_model.evaluation.metrics import (
    expression_accuracy,
    frame_labels,
    frechet_distance,
    identity_drift,
    identity_similarity,
    lip_sync,
)


def _frames(video: str | Path | np.ndarray) -> np.ndarray:
    return video if isinstance(video, np.ndarray) else read_video(video)


def _audio(audio: str | Path | np.ndarray) -> np.ndarray:
    if isinstance(audio, np.ndarray):
        return audio
    data, rate = sf.read(str(audio), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{audio} is sampled at {rate} Hz; resample it to {SAMPLE_RATE} Hz mono first.")
    return data.mean(axis=1)


def score_video(
    video: str | Path | np.ndarray,
    audio: str | Path | np.ndarray | None = None,
    labels: dict | str | Path | None = None,
    reference: str | Path | np.ndarray | None = None,
    requested_segments: list[dict] | None = None,
    analyzer: FaceAnalyzer | None = None,
) -> dict:
    """All per-video metrics that the given inputs allow.

    video: mp4 path or (f, h, w, 3) uint8. audio: wav path or (n,) float at 16 kHz. labels: a labels JSON
    (dict or path) with the ground-truth "mouth_open" track and "segments". reference: the reference image
    (path or (h, w, 3) uint8). requested_segments: emotion segments the video was asked to show (defaults to
    the labels' segments; pass another track to test an emotion override).
    """
    analyzer = analyzer or load_analyzer()
    frames = _frames(video)
    readings = analyze_frames(analyzer, frames)
    num_frames = frames.shape[0]
    if isinstance(labels, str | Path):
        labels = json.loads(Path(labels).read_text())
    scores: dict = {"num_frames": num_frames}

    # 1. Lip-sync against the audio-driven mouth track.
    if labels is not None and "mouth_open" in labels:
        target = np.asarray(labels["mouth_open"], dtype=np.float32)[:num_frames]
        scores["lip_sync_reference"] = "labels"
    elif audio is not None:
        target = mouth_open_from_audio(_audio(audio), num_frames)
        scores["lip_sync_reference"] = "audio"
    else:
        target = None
    if target is not None:
        scores["lip_sync"] = lip_sync(readings["mouth_open"][: len(target)], target).to_dict()

    # 2. Expression accuracy against the requested labels.
    segments = requested_segments if requested_segments is not None else (labels or {}).get("segments")
    if segments:
        scores["expression_accuracy"] = expression_accuracy(readings["expression"], frame_labels(segments, num_frames))

    # 3. Identity similarity to the reference image over time.
    if reference is not None:
        image = np.asarray(Image.open(reference).convert("RGB")) if isinstance(reference, str | Path) else reference
        reference_embedding = analyze_frames(analyzer, image[None])["identity"][0]
        scores["identity"] = identity_drift(identity_similarity(readings["identity"], reference_embedding))
    return scores


def video_features(
    videos: list[str | Path | np.ndarray], analyzer: FaceAnalyzer | None = None, frame_stride: int = 1
) -> dict[str, np.ndarray]:
    """Analyzer "features" (n, d) and "texture" (n, t) of every ``frame_stride``-th frame of each video."""
    analyzer = analyzer or load_analyzer()
    readings = [analyze_frames(analyzer, _frames(v)[::frame_stride]) for v in videos]
    return {key: np.concatenate([r[key] for r in readings]) for key in ("features", "texture")}


def frechet_distance_between(
    generated: list[str | Path | np.ndarray],
    real: list[str | Path | np.ndarray],
    analyzer: FaceAnalyzer | None = None,
    frame_stride: int = 1,
) -> dict[str, float]:
    """The FID analogue, twice: "content" on the analyzer's final features (who, which expression, how the
    mouth moves) and "texture" on its first blocks' activation statistics (blur, noise, artefacts)."""
    analyzer = analyzer or load_analyzer()
    a = video_features(generated, analyzer, frame_stride)
    b = video_features(real, analyzer, frame_stride)
    return {
        "content": frechet_distance(a["features"], b["features"]),
        "texture": frechet_distance(a["texture"], b["texture"]),
    }
