"""Reading frames with the face analyzer, the same way for every frame set the evaluation compares.

Generated frames, the portrait and the real renders are all brought to the model's resolution first
(``at_resolution``) and then to the analyzer's input size (``to_analyzer_input``), so the numbers measure the model,
not the resolution gap. ``read_frames`` does both and returns the analyzer's readings; ``lip_sync_of`` and
``expression_of`` score a reading against ground truth; ``frechet_distance_between`` compares two sets of videos
(content and texture Fréchet distances, the FID / FVD analogue).
"""

from pathlib import Path

import cv2
import numpy as np

from memo_model.data.synthetic.analyzer import FaceAnalyzer, analyze_frames, load_analyzer, video_frames
from memo_model.metrics import expression_accuracy, frame_labels, frechet_distance, lip_sync


def at_resolution(frames: np.ndarray, size: int | None) -> np.ndarray:
    """(f, h, w, 3) uint8 -> (f, size, size, 3), area-averaged like the training data; ``None`` keeps them."""
    if size is None or frames.shape[1:3] == (size, size):
        return frames
    return np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA) for frame in frames])


def to_analyzer_input(frames: np.ndarray, image_size: int) -> np.ndarray:
    """(f, h, w, 3) uint8 at any size -> (f, s, s, 3) at the analyzer's input size ``s``.

    Small generated frames (16-64 px) are upsampled bilinearly; the analyzer was trained on 96-128 px renders.
    """
    if frames.shape[1:3] == (image_size, image_size):
        return frames
    interpolation = cv2.INTER_AREA if frames.shape[1] > image_size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(frame, (image_size, image_size), interpolation=interpolation) for frame in frames])


def read_frames(frames: np.ndarray, analyzer: FaceAnalyzer, resolution: int | None) -> dict[str, np.ndarray]:
    """Analyzer readings of frames brought to ``resolution`` and then to the analyzer's input size."""
    prepared = to_analyzer_input(at_resolution(frames, resolution), analyzer.config.image_size)
    return analyze_frames(analyzer, prepared)


def lip_sync_of(readings: dict[str, np.ndarray], mouth_open: list[float] | np.ndarray) -> dict:
    """Lip-sync of the measured mouth track against the ground truth, over their common length."""
    target = np.asarray(mouth_open, dtype=np.float32)
    length = min(len(target), len(readings["mouth_open"]))
    return lip_sync(readings["mouth_open"][:length], target[:length]).to_dict()


def expression_of(readings: dict[str, np.ndarray], segments: list[dict]) -> float:
    """Share of frames whose read expression is the requested one (segments in frames, as in the labels)."""
    return expression_accuracy(readings["expression"], frame_labels(segments, len(readings["expression"])))


def video_features(
    videos: list[str | Path | np.ndarray], analyzer: FaceAnalyzer | None = None, frame_stride: int = 1
) -> dict[str, np.ndarray]:
    """Analyzer "features" (n, d) and "texture" (n, t) of every ``frame_stride``-th frame of each video."""
    analyzer = analyzer or load_analyzer()
    readings = [analyze_frames(analyzer, video_frames(v)[::frame_stride]) for v in videos]
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
