"""The unit of work of the data pipeline (paper appendix F): a ``Clip`` and the ``Step`` interface.

A source video is cut into clips (``scenes.py``); each clip then passes through a list of steps (faces, quality,
lip-sync, review). A step returns the clip (possibly changed: the face step replaces the frames by the head crop)
or ``None`` after calling ``reject``, which records why and logs it.

Dimension legend: f frames, h/w source height/width, r training resolution, n audio samples (16 kHz).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

logger = logging.getLogger("memo_model.preprocess")


@dataclass(frozen=True)
class Rejection:
    """Why a clip (or a whole source video, ``clip_id`` None) was left out."""

    source: str
    clip_id: str | None
    step: str
    reason: str
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "clip": self.clip_id,
            "step": self.step,
            "reason": self.reason,
            "scores": self.scores,
        }


@dataclass
class Clip:
    """One scene of a source video, < 30 s.

    frames: (f, h, w, 3) uint8 — after the face step (f, r, r, 3), the head crop at training resolution.
    audio: (n,) float32 mono at 16 kHz, the same time span as the frames.
    source: the video's path relative to the input folder; start_frame / end_frame: the span in that video,
        counted at ``fps`` (the pipeline's frame rate, not necessarily the file's).
    first_frame: the uncropped first frame, kept for identity embedders that read the whole picture.
    face_boxes: (f, 4) the smoothed face track (left, top, right, bottom) in source pixels, once detected.
    scores: every measurement a step made (written to the metadata row and the review list).
    """

    id: str
    source: str
    start_frame: int
    end_frame: int
    fps: float
    frames: np.ndarray
    audio: np.ndarray
    first_frame: np.ndarray | None = None
    face_boxes: np.ndarray | None = None
    scores: dict[str, float] = field(default_factory=dict)
    rejection: Rejection | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


class Step(Protocol):
    """One filter or transform of the pipeline: the clip to pass on, or None after ``reject(clip, ...)``."""

    name: str

    def __call__(self, clip: Clip) -> Clip | None: ...


def reject(clip: Clip, step: str, reason: str) -> None:
    """Mark ``clip`` as rejected by ``step`` (a sentence a person can act on) and log it; returns None for steps."""
    clip.rejection = Rejection(clip.source, clip.id, step, reason, dict(clip.scores))
    logger.info("rejected %s (%s): %s", clip.id, step, reason)
    return None
