"""How long a request will take on this pipeline's device, calibrated by a short probe (shown before a run).

A run costs ``overhead + clips x (per_clip + calls x per_call)``: ``per_call`` is one batched denoiser call (all
guidance passes; ``calls`` per clip is the steps, less the reused last one: speed.py), ``per_clip`` the reference
net, memory write, VAE decode/encode and audio projection of a clip, ``overhead`` the portrait, audio features,
emotion detection and the video writer. Three tiny runs of the real pipeline — (1 clip, 1 step), (1 clip, 3 steps),
(2 clips, 1 step) — give the three numbers, so the estimate measures exactly the code that will run. Probes are
cached per (number of guidance passes, resolution).
"""

import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from memo_model.audio.io import SAMPLE_RATE
from memo_model.pipelines.guidance import guidance_plan
from memo_model.pipelines.request import CLIP_FRAMES, GenerationRequest
from memo_model.pipelines.speed import denoiser_calls


@dataclass(frozen=True)
class Calibration:
    """Seconds measured by the probe on one device for one number of guidance passes."""

    overhead: float
    per_clip: float
    per_call: float  # one denoiser call
    passes: int
    resolution: int

    def seconds(self, clips: int, calls: int) -> float:
        return self.overhead + clips * (self.per_clip + calls * self.per_call)


@dataclass(frozen=True)
class TimeEstimate:
    seconds: float
    clips: int
    steps: int
    passes: int
    calibration: Calibration

    @property
    def spent(self) -> str:
        """The seconds as a person reads them: "45 s", "3 min 07 s"."""
        minutes, seconds = divmod(round(self.seconds), 60)
        return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"

    def describe(self) -> str:
        return f"about {self.spent} ({self.clips} clips x {self.steps} steps, {self.passes} guidance passes)"


def clips_for(audio_seconds: float, fps: int) -> int:
    """Clips of 16 frames needed for ``audio_seconds`` of audio."""
    return max(1, math.ceil(math.ceil(audio_seconds * fps) / CLIP_FRAMES))


def estimate_time(pipeline, request: GenerationRequest, audio_seconds: float) -> TimeEstimate:
    """Seconds ``pipeline(request)`` should take for ``audio_seconds`` of audio (after the preview cut)."""
    if request.is_preview:
        audio_seconds = min(audio_seconds, request.preview_length)
    passes = len(guidance_plan(*request.guidance_scales(pipeline.model_info.default_guidance)))
    resolution = request.resolution or pipeline.model_info.resolution
    calibration = calibrate(pipeline, request, passes, resolution)
    clips, steps = clips_for(audio_seconds, request.fps), pipeline.model_info.steps_for(request)
    seconds = calibration.seconds(clips, denoiser_calls(steps, pipeline.options))
    return TimeEstimate(seconds, clips, steps, passes, calibration)


def calibrate(pipeline, request: GenerationRequest, passes: int, resolution: int) -> Calibration:
    """Run (or reuse) the probe for this pipeline, number of guidance passes and resolution."""
    cache = pipeline.__dict__.setdefault("_time_calibrations", {})
    key = (passes, resolution)
    if key not in cache:
        cache[key] = _probe(pipeline, request, passes, resolution)
    return cache[key]


def _probe(pipeline, request: GenerationRequest, passes: int, resolution: int) -> Calibration:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        portrait = folder / "portrait.png"
        Image.fromarray(np.full((max(resolution, 64),) * 2 + (3,), 128, np.uint8)).save(portrait)
        clip_seconds = CLIP_FRAMES / request.fps
        rng = np.random.default_rng(0)
        for clips in (1, 2):
            noise = 0.1 * rng.standard_normal(int(clips * clip_seconds * SAMPLE_RATE))
            sf.write(folder / f"probe_{clips}.wav", noise.astype(np.float32), SAMPLE_RATE)

        def seconds(clips: int, steps: int) -> float:
            probe = replace(
                request,
                image=portrait,
                audio=folder / f"probe_{clips}.wav",
                output=folder / f"probe_{clips}_{steps}.mp4",
                steps=steps,
                preview_seconds=None,
                crop_to_face=False,
                resolution=resolution,
            )
            started = time.perf_counter()
            pipeline(probe)
            return time.perf_counter() - started

        seconds(1, 1)  # warm-up: first calls allocate and pick kernels
        one = seconds(1, 1)
        extra_calls = denoiser_calls(3, pipeline.options) - 1
        per_call = max(0.0, (seconds(1, 3) - one) / extra_calls)
        per_clip = max(0.0, seconds(2, 1) - one - per_call)
        overhead = max(0.0, one - per_clip - per_call)
    return Calibration(overhead, per_clip, per_call, passes, resolution)
