"""Step 2 of the data pipeline (paper appendix F): face detection, one-face filtering and the head crop.

The paper detects faces with Grounding DINO, drops videos with no face, partial faces or several heads, and crops
the bounding box enlarged by a factor 1.1. Here faces are detected on every ``detect_every``-th frame by any
``FaceDetector`` (offline default: dlib's CNN face detector through ``memo_model.vision.face.detect_faces``); the
clip is rejected when too few sampled frames show a face, too many show several, or the face touches the frame's
edge too often — detection stops as soon as the sampled frames left cannot change that verdict. The boxes are
interpolated to every frame and their centres smoothed over ``smooth_seconds``; one square of side ``crop_scale`` ×
the median face side follows that track and is resized to the training resolution.

Detector-box conventions: the paper's ×1.1 is relative to a Grounding DINO *head* box (hair to chin). The default
detector's box runs from the brows to the chin, so ×1.1 of it cuts off the hair and the chin — with it use about
1.8 (as ``memo_model.vision.face`` does for portraits). ``crop_scale`` is a parameter for that reason; its default is
the paper's value, right for head detectors.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from memo_model.data.preprocess.clip import Clip, reject
from memo_model.vision.face import Box, detect_faces

PAPER_CROP_SCALE = 1.1  # paper, appendix F (relative to a head box)
BROWS_TO_CHIN_CROP_SCALE = 1.8  # the same head framing from the default detector's brows-to-chin box (docstring)
# One detection size for video frames, 0.6 s per sampled frame on one core (portraits also try 640 for faces down to
# 1/10 of the long side): a face under ~1/6 of the long side of a 1080p video is too small for a 512 px crop anyway.
# Small frames are enlarged at most 2x: enlarging adds no detail, and the CNN's cost grows with the pixels.
VIDEO_DETECTION_SIDE = 400
MAX_ENLARGEMENT = 2.0
DETECT_EVERY = 5  # frames between detections: faces move little in 1/6 s, and detection is the slow part
MIN_FACE_SHARE = 0.6  # share of sampled frames that must show a face (a frontal detector misses turned heads)
MAX_SEVERAL_SHARE = 0.2  # share of sampled frames allowed to show several faces (detector false positives)
MAX_PARTIAL_SHARE = 0.2  # share of detections allowed to touch the frame's edge
BORDER_MARGIN = 0.01  # a face box closer than this fraction of the frame side to an edge is cut by the frame
SMOOTH_SECONDS = 0.5  # moving average of the crop centre: follows the head, not the detector's jitter


class FaceDetector(Protocol):
    """(h, w, 3) uint8 RGB frame → face boxes (left, top, right, bottom) in its pixels."""

    def __call__(self, frame: np.ndarray) -> list[Box]: ...


class VideoFaceDetector:
    """The offline default: dlib's CNN face detector (``vision.face.detect_faces``) with the frame's long side at
    ``VIDEO_DETECTION_SIDE``, or at twice its own for frames under half that."""

    def __call__(self, frame: np.ndarray) -> list[Box]:
        side = min(VIDEO_DETECTION_SIDE, round(MAX_ENLARGEMENT * max(frame.shape[:2])))
        return detect_faces(Image.fromarray(frame), sides=(side,))


def touches_border(box: Box, width: int, height: int) -> bool:
    """Whether a face box reaches the frame's edge: the face is probably cut by it."""
    margin = BORDER_MARGIN * min(width, height)
    left, top, right, bottom = box
    return left <= margin or top <= margin or right >= width - margin or bottom >= height - margin


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of a (f,) track, the ends padded with their edge values."""
    if window <= 1 or len(values) < 2:
        return values.astype(np.float64)
    half = window // 2
    padded = np.pad(values.astype(np.float64), half, mode="edge")
    return np.convolve(padded, np.ones(2 * half + 1) / (2 * half + 1), mode="valid")


def crop_square(frame: np.ndarray, centre_x: float, centre_y: float, side: int) -> np.ndarray:
    """The side × side square around a centre, moved inside the frame (real pixels on every side, no padding)."""
    height, width = frame.shape[:2]
    side = min(side, width, height)
    left = int(np.clip(round(centre_x - side / 2), 0, width - side))
    top = int(np.clip(round(centre_y - side / 2), 0, height - side))
    return frame[top : top + side, left : left + side]


class FaceCrop:
    """Step: keep clips with exactly one whole face; replace the frames by the head crop (f, r, r, 3)."""

    name = "faces"

    def __init__(
        self,
        resolution: int = 512,
        crop_scale: float = PAPER_CROP_SCALE,
        detector: FaceDetector | None = None,
        detect_every: int = DETECT_EVERY,
        min_face_share: float = MIN_FACE_SHARE,
        max_several_share: float = MAX_SEVERAL_SHARE,
        max_partial_share: float = MAX_PARTIAL_SHARE,
        smooth_seconds: float = SMOOTH_SECONDS,
    ):
        self.resolution = resolution
        self.crop_scale = crop_scale
        self.detector = detector or VideoFaceDetector()
        self.detect_every = detect_every
        self.min_face_share = min_face_share
        self.max_several_share = max_several_share
        self.max_partial_share = max_partial_share
        self.smooth_seconds = smooth_seconds

    def __call__(self, clip: Clip) -> Clip | None:
        # 1. Detect on a subsample of frames, until the frames left cannot save the clip.
        sampled = list(range(0, clip.num_frames, self.detect_every))
        found = []
        for i in sampled:
            found.append(self.detector(clip.frames[i]))
            if self._hopeless([len(boxes) for boxes in found], len(sampled)):
                break
        counts = np.array([len(boxes) for boxes in found])
        height, width = clip.frames.shape[1:3]
        clip.scores["face_share"] = float(np.mean(counts >= 1))
        clip.scores["several_faces_share"] = float(np.mean(counts >= 2))

        # 2. One-face filtering: no face, several faces, a face cut by the frame.
        if clip.scores["face_share"] < self.min_face_share:
            return reject(clip, self.name, f"no face in {1 - clip.scores['face_share']:.0%} of the sampled frames")
        if clip.scores["several_faces_share"] > self.max_several_share:
            return reject(clip, self.name, f"several faces in {clip.scores['several_faces_share']:.0%} of frames")
        detected = [
            (i, max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])))
            for i, boxes in zip(sampled, found, strict=True)
            if boxes
        ]
        partial = np.mean([touches_border(box, width, height) for _, box in detected])
        clip.scores["partial_face_share"] = float(partial)
        if partial > self.max_partial_share:
            return reject(clip, self.name, f"the face touches the frame's edge in {partial:.0%} of detections")

        # 3. The face track on every frame: interpolate between detections, smooth the centre.
        frames_at = np.array([i for i, _ in detected])
        boxes = np.array([box for _, box in detected], dtype=np.float64)  # (d, 4)
        every = np.arange(clip.num_frames)
        track = np.stack([np.interp(every, frames_at, boxes[:, k]) for k in range(4)], axis=1)  # (f, 4)
        window = max(1, round(self.smooth_seconds * clip.fps))
        centre_x = smooth((track[:, 0] + track[:, 2]) / 2, window)
        centre_y = smooth((track[:, 1] + track[:, 3]) / 2, window)
        face_side = float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
        side = min(round(face_side * self.crop_scale), width, height)  # one size per clip: no zoom jitter
        clip.scores["face_side"] = face_side
        clip.scores["crop_side"] = float(side)

        # 4. Crop and resize to the training resolution.
        interpolation = cv2.INTER_AREA if side >= self.resolution else cv2.INTER_CUBIC
        clip.first_frame = clip.frames[0]
        clip.face_boxes = track
        clip.frames = np.stack(
            [
                cv2.resize(
                    crop_square(frame, cx, cy, side), (self.resolution, self.resolution), interpolation=interpolation
                )
                for frame, cx, cy in zip(clip.frames, centre_x, centre_y, strict=True)
            ]
        )  # (f, r, r, 3)
        return clip

    def _hopeless(self, counts: list[int], num_sampled: int) -> bool:
        """Whether the clip fails the face or several-faces share whatever the sampled frames not yet seen show."""
        misses = sum(count == 0 for count in counts)
        several = sum(count >= 2 for count in counts)
        return misses > (1 - self.min_face_share) * num_sampled or several > self.max_several_share * num_sampled
