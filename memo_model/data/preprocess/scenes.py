"""Step 1 of the data pipeline (paper §4.4, appendix F): scene-cut detection and trimming to clips under 30 s.

The paper detects scene transitions with TransNet V2. The offline default here, ``HistogramCutDetector``, compares
consecutive frames of a 64-pixel thumbnail stream: a cut is a frame whose colour histogram (HSV) AND grey pixels
both change far more than in the recent past. Any detector with ``find_cuts(path, fps) -> list[int]`` plugs in;
``PySceneDetectCutDetector`` uses PySceneDetect's content detector when that package is installed.

``split_scenes`` turns cut positions into clip spans: each scene is cut into equal parts shorter than
``max_seconds`` (30 s), and scenes shorter than ``min_seconds`` are dropped (too short to train on).
Frames are always decoded at the pipeline's frame rate (ffmpeg ``fps`` filter), so frame numbers mean the same
in every step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import cv2
import imageio_ffmpeg
import numpy as np

from memo_model.errors import InputError, SetupError

MAX_CLIP_SECONDS = 30.0  # paper, appendix F: "trim video clips to a length of less than 30 seconds"
MIN_CLIP_SECONDS = 2.0  # a training sample needs 16 frames plus past frames; shorter scenes are mostly cut-aways
THUMBNAIL_SIDE = 64  # cut detection looks at colours and coarse shapes only
HUE_BINS, SATURATION_BINS, VALUE_BINS = 16, 8, 8
HISTOGRAM_THRESHOLD = 0.35  # Bhattacharyya distance between consecutive frames' HSV histograms at a cut
PIXEL_THRESHOLD = 20.0  # mean absolute grey difference (0-255) between consecutive thumbnails at a cut
ADAPTIVE_RATIO = 3.0  # ... and the change must exceed this many times the recent median change (camera motion)
ADAPTIVE_WINDOW = 15  # frames of "recent past" for that median (0.5 s at 30 fps)
MIN_SCENE_FRAMES = 8  # two cuts closer than this are one transition (a flash or a fade), keep the first


def iter_frames(path: str | Path, fps: float, thumbnail: int | None = None) -> Iterator[np.ndarray]:
    """Frames of a video resampled to ``fps``, (h, w, 3) uint8 RGB; (thumbnail, thumbnail, 3) when given."""
    filters = f"fps={fps}" + (f",scale={thumbnail}:{thumbnail}" if thumbnail else "")
    size_warning = _DropMessage("is different from the source frame size")  # scaling is what we asked for
    logging.getLogger("imageio_ffmpeg").addFilter(size_warning)
    try:
        reader = imageio_ffmpeg.read_frames(str(path), output_params=["-vf", filters])
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as error:
        raise InputError(f"Cannot decode the video {Path(path).name!r} ({error}) — is it a video file?") from None
    finally:
        logging.getLogger("imageio_ffmpeg").removeFilter(size_warning)
    width, height = meta["size"]
    for chunk in reader:
        yield np.frombuffer(chunk, dtype=np.uint8).reshape(height, width, 3)


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


class CutDetector(Protocol):
    """Scene transitions of a video: the frame indices (at ``fps``) where a new scene starts, ascending."""

    def find_cuts(self, path: str | Path, fps: float) -> tuple[list[int], int]:
        """(cuts, total number of frames at ``fps``)."""
        ...


class HistogramCutDetector:
    """Offline cut detector: colour-histogram and pixel change between consecutive thumbnails, adaptively gated."""

    def __init__(
        self,
        histogram_threshold: float = HISTOGRAM_THRESHOLD,
        pixel_threshold: float = PIXEL_THRESHOLD,
        adaptive_ratio: float = ADAPTIVE_RATIO,
    ):
        self.histogram_threshold = histogram_threshold
        self.pixel_threshold = pixel_threshold
        self.adaptive_ratio = adaptive_ratio

    def changes(self, frames: Iterator[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per frame t ≥ 1: (histogram distance, mean grey difference) to frame t − 1; both (f − 1,)."""
        histogram_changes, pixel_changes = [], []
        previous_histogram = previous_grey = None
        for frame in frames:
            hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
            histogram = cv2.calcHist(
                [hsv], [0, 1, 2], None, [HUE_BINS, SATURATION_BINS, VALUE_BINS], [0, 180, 0, 256, 0, 256]
            )
            cv2.normalize(histogram, histogram)
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
            if previous_histogram is not None:
                histogram_changes.append(cv2.compareHist(previous_histogram, histogram, cv2.HISTCMP_BHATTACHARYYA))
                pixel_changes.append(float(np.abs(grey - previous_grey).mean()))
            previous_histogram, previous_grey = histogram, grey
        return np.asarray(histogram_changes), np.asarray(pixel_changes)

    def cuts_from_changes(self, histogram_changes: np.ndarray, pixel_changes: np.ndarray) -> list[int]:
        cuts: list[int] = []
        for t in range(len(histogram_changes)):
            recent = pixel_changes[max(0, t - ADAPTIVE_WINDOW) : t]
            baseline = float(np.median(recent)) if len(recent) else 0.0
            is_cut = (
                histogram_changes[t] > self.histogram_threshold
                and pixel_changes[t] > self.pixel_threshold
                and pixel_changes[t] > self.adaptive_ratio * baseline
            )
            frame = t + 1  # change t is between frames t and t + 1: the new scene starts at t + 1
            if is_cut and (not cuts or frame - cuts[-1] >= MIN_SCENE_FRAMES):
                cuts.append(frame)
        return cuts

    def find_cuts(self, path: str | Path, fps: float) -> tuple[list[int], int]:
        histogram_changes, pixel_changes = self.changes(iter_frames(path, fps, THUMBNAIL_SIDE))
        return self.cuts_from_changes(histogram_changes, pixel_changes), len(pixel_changes) + 1


class PySceneDetectCutDetector:
    """PySceneDetect's ``ContentDetector`` (``pip install scenedetect``); cut times are converted to ``fps`` frames."""

    def __init__(self, threshold: float = 27.0):  # PySceneDetect's own default
        self.threshold = threshold

    def find_cuts(self, path: str | Path, fps: float) -> tuple[list[int], int]:
        try:
            from scenedetect import ContentDetector, detect
        except ImportError:
            raise SetupError(
                "The PySceneDetect cut detector needs the package scenedetect (`pip install scenedetect`); "
                "or use the offline default (--cut-detector histogram)."
            ) from None
        scenes = detect(str(path), ContentDetector(threshold=self.threshold))
        total = sum(1 for _ in iter_frames(path, fps, THUMBNAIL_SIDE))
        cuts = [round(start.get_seconds() * fps) for start, _ in scenes[1:]]
        return [c for c in cuts if 0 < c < total], total


def split_scenes(
    cuts: list[int],
    num_frames: int,
    fps: float,
    max_seconds: float = MAX_CLIP_SECONDS,
    min_seconds: float = MIN_CLIP_SECONDS,
) -> list[tuple[int, int]]:
    """Clip spans [start, end) in frames: scenes between cuts, each split into equal parts under ``max_seconds``."""
    max_frames = math.ceil(max_seconds * fps) - 1  # strictly shorter than max_seconds
    min_frames = math.ceil(min_seconds * fps)
    bounds = [0, *sorted(c for c in cuts if 0 < c < num_frames), num_frames]
    spans = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end - start < min_frames:
            continue
        parts = math.ceil((end - start) / max_frames)
        edges = np.linspace(start, end, parts + 1).round().astype(int)
        spans.extend((int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True))
    return spans
