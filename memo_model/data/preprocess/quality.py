"""Step 3 of the data pipeline (paper appendix F): the image-quality filter.

The paper scores the first frame of each video with HyperIQA and keeps videos scoring over 40 (of 100), and drops
low-resolution videos. The offline default measures, on a few frames of the head crop at training resolution:
sharpness (variance of the Laplacian: blur removes the high frequencies it responds to), brightness (mean grey
level) and contrast (grey standard deviation); and the resolution of the source crop (a crop enlarged more than
``MAX_UPSCALE`` times to reach the training resolution is soft). Any ``ImageQualityModel`` (an IQA network, e.g.
HyperIQA through ``pyiqa``) adds its score of the first frame, with its own threshold.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from memo_model.data.preprocess.clip import Clip, reject
from memo_model.errors import SetupError

MIN_SHARPNESS = 50.0  # variance of the Laplacian of the grey crop; blurred or heavily compressed faces fall below
BRIGHTNESS_RANGE = (40.0, 215.0)  # mean grey level: outside, the face is under- or over-exposed
MIN_CONTRAST = 20.0  # grey standard deviation: below, the picture is washed out or fogged
MAX_UPSCALE = 2.0  # source crop side × this must reach the training resolution (same rule as portrait inputs)
QUALITY_FRAMES = 8  # frames measured per clip, evenly spread
PAPER_IQA_THRESHOLD = 40.0  # paper, appendix F: HyperIQA score of the first frame, 0-100 scale


class ImageQualityModel(Protocol):
    """An IQA network: (h, w, 3) uint8 RGB → a score where higher is better (on the scale of its threshold)."""

    def __call__(self, image: np.ndarray) -> float: ...


class PyIQAModel:
    """Any ``pyiqa`` metric (``pip install pyiqa``; weights are fetched by pyiqa on first use), default HyperIQA.

    pyiqa's HyperIQA returns [0, 1]; ``scale`` 100 puts it on the paper's 0-100 scale so the threshold 40 applies.
    """

    def __init__(self, metric: str = "hyperiqa", scale: float = 100.0, device: str = "cpu"):
        self.metric, self.scale, self.device = metric, scale, device
        self._model = None

    def __call__(self, image: np.ndarray) -> float:
        if self._model is None:
            try:
                import pyiqa
            except ImportError:
                raise SetupError(
                    f"The {self.metric} quality model needs the package pyiqa (`pip install pyiqa`) and its weights; "
                    "or use the offline quality filter (no --iqa)."
                ) from None
            self._model = pyiqa.create_metric(self.metric, device=self.device)
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255  # (1, 3, h, w)
        return float(self._model(tensor).item()) * self.scale


def image_statistics(frames: np.ndarray) -> dict[str, float]:
    """Median sharpness, brightness and contrast over (f, h, w, 3) uint8 frames."""
    greys = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    return {
        "sharpness": float(np.median([cv2.Laplacian(g, cv2.CV_64F).var() for g in greys])),
        "brightness": float(np.median([g.mean() for g in greys])),
        "contrast": float(np.median([g.std() for g in greys])),
    }


class QualityFilter:
    """Step: reject blurred, badly exposed, washed-out and low-resolution clips; optionally an IQA threshold."""

    name = "quality"

    def __init__(
        self,
        resolution: int = 512,
        min_sharpness: float = MIN_SHARPNESS,
        brightness_range: tuple[float, float] = BRIGHTNESS_RANGE,
        min_contrast: float = MIN_CONTRAST,
        max_upscale: float = MAX_UPSCALE,
        iqa: ImageQualityModel | None = None,
        iqa_threshold: float = PAPER_IQA_THRESHOLD,
    ):
        self.resolution = resolution
        self.min_sharpness = min_sharpness
        self.brightness_range = brightness_range
        self.min_contrast = min_contrast
        self.max_upscale = max_upscale
        self.iqa = iqa
        self.iqa_threshold = iqa_threshold

    def __call__(self, clip: Clip) -> Clip | None:
        picked = np.linspace(0, clip.num_frames - 1, min(QUALITY_FRAMES, clip.num_frames)).round().astype(int)
        clip.scores.update(image_statistics(clip.frames[picked]))
        crop_side = clip.scores.get("crop_side", float(min(clip.frames.shape[1:3])))
        if crop_side * self.max_upscale < self.resolution:
            return reject(
                clip,
                self.name,
                f"low resolution: the face crop is {crop_side:.0f} px, "
                f"under {self.resolution / self.max_upscale:.0f} px for {self.resolution} px training",
            )
        if clip.scores["sharpness"] < self.min_sharpness:
            return reject(clip, self.name, f"blurred: sharpness {clip.scores['sharpness']:.1f} < {self.min_sharpness}")
        low, high = self.brightness_range
        if not low <= clip.scores["brightness"] <= high:
            return reject(
                clip,
                self.name,
                f"badly exposed: brightness {clip.scores['brightness']:.0f} outside [{low:.0f}, {high:.0f}]",
            )
        if clip.scores["contrast"] < self.min_contrast:
            return reject(clip, self.name, f"washed out: contrast {clip.scores['contrast']:.1f} < {self.min_contrast}")
        if self.iqa is not None:
            clip.scores["iqa"] = self.iqa(clip.frames[0])  # the paper scores the first frame only
            if clip.scores["iqa"] < self.iqa_threshold:
                return reject(clip, self.name, f"IQA score {clip.scores['iqa']:.1f} < {self.iqa_threshold}")
        return clip
