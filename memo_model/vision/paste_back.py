"""Paste-back: the animated crop blended into the whole portrait it was cut from.

The model draws a square crop around the head (``face.prepare_portrait``). Pasting every generated frame back
over the crop box of the original picture, with a feathered, head-shaped mask, gives a video of the whole portrait in
which only the head moves — what LivePortrait does with its blending mask. The mask is the product of two smooth
ramps: over the inner ``FEATHER`` of the crop on each side that lies inside the picture (a side on the picture's own
border needs no seam and is drawn to the edge), and an ellipse in the box that fades out towards its corners, so a
crop whose tones differ a little from the picture never shows as a square.

Shapes: N frames, r the model resolution, H × W the output picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from memo_model.vision.face import Box, PreparedPortrait

MAX_SIDE = 1920  # long side of a pasted-back video: Full HD; larger portraits are reduced to it first
FEATHER = 0.12  # share of the crop side over which the generated frame fades into the picture
# The head-shaped part: 1 within 0.75 of the box's half-sides from its centre (face, jaw, chin, the hair above the
# brows), fading to 0 at 1.05 (the corners, ~1.41, are the picture's own pixels).
ELLIPSE_INNER, ELLIPSE_OUTER = 0.75, 1.05


def output_size(portrait_size: tuple[int, int], max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(width, height) of the pasted-back video for a picture of ``portrait_size``: at most ``max_side`` on the long
    side, both even (H.264 stores colour at half resolution)."""
    width, height = portrait_size
    scale = min(1.0, max_side / max(width, height))
    return _even(width * scale), _even(height * scale)


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def feather_mask(box: Box, picture_size: tuple[int, int], feather: float = FEATHER) -> np.ndarray:
    """(h, w, 1) float32 in [0, 1] over ``box``: 1 over the head, smoothstep ramps to 0 at each side of the box that
    is not on the picture's border and towards the box's corners."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    ramp = max(1.0, feather * min(width, height))
    x = np.arange(width, dtype=np.float32) + 0.5
    y = np.arange(height, dtype=np.float32) + 0.5
    inf = np.float32(np.inf)
    from_left = x if left > 0 else np.full_like(x, inf)
    from_right = width - x if right < picture_size[0] else np.full_like(x, inf)
    from_top = y if top > 0 else np.full_like(y, inf)
    from_bottom = height - y if bottom < picture_size[1] else np.full_like(y, inf)
    distance = np.minimum(np.minimum(from_top, from_bottom)[:, None], np.minimum(from_left, from_right)[None, :])
    u, v = x / width * 2 - 1, y / height * 2 - 1  # -1 .. 1 across the box
    # towards a side on the picture's border the ellipse extends to the edge, as the ramp does
    u[(u < 0) & (left == 0) | (u > 0) & (right >= picture_size[0])] = 0
    v[(v < 0) & (top == 0) | (v > 0) & (bottom >= picture_size[1])] = 0
    radius = np.hypot(u[None, :], v[:, None])  # 1 at the side midpoints
    head = (ELLIPSE_OUTER - radius) / (ELLIPSE_OUTER - ELLIPSE_INNER)
    return (_smoothstep(distance / ramp) * _smoothstep(head))[..., None]


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class PasteBack:
    """Blends generated crops (N, r, r, 3) uint8 into the portrait; returns (N, H, W, 3) uint8.

    background: the portrait at output size (H, W, 3) uint8; box: the crop box at output size; mask: its feather.
    """

    background: np.ndarray
    box: Box
    mask: np.ndarray

    @classmethod
    def from_portrait(cls, portrait: PreparedPortrait, max_side: int = MAX_SIDE) -> PasteBack:
        """For the picture ``portrait`` was prepared from, reduced to at most ``max_side`` on the long side.

        The size follows the picture as it was given (``original_size``, upright), so it is known from the picture
        alone, before any face is found; ``full_image`` (smaller when the picture was huge) supplies the pixels."""
        size = output_size(portrait.original_size, max_side)
        scale_x = size[0] / portrait.full_image.width
        scale_y = size[1] / portrait.full_image.height
        left, top, right, bottom = portrait.crop_box
        box = (
            round(left * scale_x),
            round(top * scale_y),
            min(size[0], round(right * scale_x)),
            min(size[1], round(bottom * scale_y)),
        )
        background = np.asarray(portrait.full_image.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)
        return cls(background, box, feather_mask(box, size))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the pasted-back frames."""
        return self.background.shape[1], self.background.shape[0]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        left, top, right, bottom = self.box
        out = np.repeat(self.background[None], len(frames), axis=0)
        under = self.background[top:bottom, left:right].astype(np.float32)
        for i, frame in enumerate(frames):
            crop = cv2.resize(frame, (right - left, bottom - top), interpolation=cv2.INTER_CUBIC)
            blended = under + self.mask * (crop.astype(np.float32) - under)
            out[i, top:bottom, left:right] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out


def wanted(portrait: PreparedPortrait) -> bool:
    """Whether paste-back adds anything: the picture holds more than the crop the model animates."""
    left, top, right, bottom = portrait.crop_box
    return (right - left, bottom - top) != portrait.full_image.size
