"""How long a request will take on this pipeline's device: its parts timed directly, scaled to the CPU the process
gets now, corrected by the runs that finished (shown before a run, and refreshed on every change of the settings).

A run costs

    portrait + audio_seconds x per_audio_second + clips x (per_clip + writing + calls x per_call)

``per_call`` is one batched denoiser call (all guidance passes; ``calls`` per clip is the steps, less the reused
last one: speed.py); ``per_clip`` the clip's audio features, reference net on the past frames, memory write, VAE
decode and re-encode; ``writing`` the clip's frames pasted back and encoded at the output size; ``portrait`` the
picture's face detection and identity; ``per_audio_second`` the emotion detection (and vocal separation) over the
audio. Each part is timed on its own with the pipeline's named steps (``MemoPipeline.prepare_clip``,
``predict_velocity``, ...) — never as the difference of two noisy whole runs — and kept per pipeline, resolution
and number of guidance passes; the portrait part per picture, the writing per output size.

Parts are timed in CPU seconds of this process (all its threads), which stay the same when other work shares the
cores; wall seconds follow from the CPU rate the process gets *now* — CPU seconds per wall second over ~0.1 s of
matrix products on its threads (2 on a quiet 2-core machine, less when neighbours are busy), measured at every
estimate. The video encoder runs in its own process: its part is timed in wall seconds and kept as CPU seconds at
the rate of that moment. ``learn`` compares a finished run with what was predicted for it, and the median ratio of
the last runs corrects the next estimates.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from memo_model.audio.io import SAMPLE_RATE
from memo_model.pipelines.emotions import plan_emotions
from memo_model.pipelines.guidance import guidance_plan
from memo_model.pipelines.request import CLIP_FRAMES, GenerationRequest
from memo_model.pipelines.speed import denoiser_calls
from memo_model.vision.face import MIN_IMAGE_SIDE, prepare_portrait
from memo_model.vision.paste_back import PasteBack
from memo_model.vision.video_io import VideoWriter, frames_to_uint8

RATE_SIDE = 192  # the probe's matrix product: (192 x 192) @ (192 x 192), float32, on torch's threads
RATE_SECONDS = 0.1  # how long the CPU rate is measured for: some tens of the scheduler's time slices
PROBE_SECONDS = 2.0  # audio timed for the per-second part
LEARNED_RUNS = 5  # finished runs whose ratio corrects the estimate (median)
CORRECTION_RANGE = (0.5, 3.0)  # a correction outside this says more about that run than about the next


@dataclass(frozen=True)
class Calibration:
    """CPU seconds of each part for one number of guidance passes at one resolution (``cpu_rate``: the CPU seconds
    per wall second the process got while they were timed, for reference)."""

    per_call: float  # one denoiser call, all guidance passes batched
    per_clip: float  # a clip's conditions, decode and re-encode (no denoiser, no writing)
    per_audio_second: float  # emotion detection (and vocal separation) per second of audio
    passes: int
    resolution: int
    cpu_rate: float

    def seconds(self, clips: int, calls: int, audio_seconds: float = 0.0) -> float:
        """CPU seconds of the model's work, without the portrait and the writing."""
        return audio_seconds * self.per_audio_second + clips * (self.per_clip + calls * self.per_call)


@dataclass(frozen=True)
class TimeEstimate:
    seconds: float
    clips: int
    steps: int
    passes: int
    calibration: Calibration
    slowdown: float = 1.0  # a quiet machine's CPU rate (torch's threads) / the rate now: > 1 when neighbours are busy
    correction: float = 1.0  # from the finished runs (``learn``)

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


def estimate_time(pipeline, request: GenerationRequest, audio_seconds: float, portrait=None) -> TimeEstimate:
    """Seconds ``pipeline(request)`` should take for ``audio_seconds`` of audio (before the preview cut).

    ``portrait``: the request's ``prepare_portrait`` if the caller has it (the app does), to skip preparing it again.
    """
    if request.is_preview:
        audio_seconds = min(audio_seconds, request.preview_length)
    parts = _parts(pipeline)
    passes = len(guidance_plan(*request.guidance_scales(pipeline.model_info.default_guidance)))
    resolution = pipeline.model_info.resolution_for(request)
    key = (passes, resolution, request.guidance_layout, request.past_frames)
    if key not in parts.calibrations:
        parts.calibrations[key] = _calibrate(pipeline, request, passes, resolution)
    calibration = parts.calibrations[key]
    portrait_seconds, writing_seconds = _portrait_and_writing(pipeline, parts, request, resolution, portrait)

    clips, steps = clips_for(audio_seconds, request.fps), pipeline.model_info.steps_for(request)
    calls = denoiser_calls(steps, pipeline.options)
    cpu_seconds = calibration.seconds(clips, calls, audio_seconds) + portrait_seconds + clips * writing_seconds
    rate = cpu_rate()
    correction = parts.correction()
    slowdown = torch.get_num_threads() / rate
    return TimeEstimate(cpu_seconds / rate * correction, clips, steps, passes, calibration, slowdown, correction)


def learn(pipeline, estimate: TimeEstimate, actual_seconds: float) -> None:
    """Remember how long a finished run took against its estimate; the next estimates are corrected by the median
    ratio of the last ``LEARNED_RUNS``. Cancelled runs should not be learned from (they stop early)."""
    uncorrected = estimate.seconds / estimate.correction
    if uncorrected > 0 and actual_seconds > 0:
        _parts(pipeline).ratios.append(actual_seconds / uncorrected)


def cpu_rate(seconds: float = RATE_SECONDS) -> float:
    """CPU seconds this process gets per wall second right now, running matrix products on torch's threads: about the
    number of threads on a quiet machine, less when other processes share the cores."""
    a = torch.ones(RATE_SIDE, RATE_SIDE) / RATE_SIDE
    a @ a  # the first product allocates
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        a @ a
    return max(time.process_time() - cpu, 1e-3) / (time.perf_counter() - wall)


# --- the parts, timed -------------------------------------------------------------------------------------------


class _Parts:
    """What this pipeline's estimates know: calibrations, portrait and writing times, ratios of finished runs."""

    def __init__(self):
        self.calibrations: dict[tuple, Calibration] = {}
        self.portraits: dict[tuple, tuple[float, tuple[int, int]]] = {}  # CPU seconds, output size
        self.writing: dict[tuple[int, int], float] = {}  # output size -> CPU seconds per clip
        self.ratios: deque[float] = deque(maxlen=LEARNED_RUNS)

    def correction(self) -> float:
        if not self.ratios:
            return 1.0
        return float(np.clip(statistics.median(self.ratios), *CORRECTION_RANGE))


def _parts(pipeline) -> _Parts:
    return pipeline.__dict__.setdefault("_estimate_parts", _Parts())


def _timed(function, repeats: int = 1) -> tuple[float, object]:
    """(median CPU seconds of ``repeats`` calls after one warm-up call, the last result)."""
    result = function()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        result = function()
        times.append(time.process_time() - started)
    return statistics.median(times), result


@torch.no_grad()
def _calibrate(pipeline, request: GenerationRequest, passes: int, resolution: int) -> Calibration:
    """Time one clip's parts with the pipeline's own steps on a grey portrait and noise for audio."""
    rate = cpu_rate()
    rng = np.random.default_rng(0)
    grey = np.full((max(resolution, MIN_IMAGE_SIDE),) * 2 + (3,), 128, np.uint8)
    portrait = prepare_portrait(grey, resolution, crop_to_face=False)
    face_embedding, _ = pipeline.identity_embedding(portrait)
    pixels = np.asarray(portrait.image, dtype=np.float32) / 127.5 - 1
    reference_image = rearrange(torch.from_numpy(pixels), "H W c -> 1 c H W")
    guidance = request.guidance_scales(pipeline.model_info.default_guidance)
    batch = pipeline.prepare_guidance(face_embedding, guidance, request.guidance_layout)
    reference, past = pipeline.prepare_reference(reference_image, batch, request.past_frames)
    clip_audio = (0.1 * rng.standard_normal(round(CLIP_FRAMES / request.fps * SAMPLE_RATE))).astype(np.float32)

    def features():
        return next(iter(pipeline.audio_features.iter_clips(clip_audio, request.fps)))

    features_seconds, audio = _timed(features)
    clip, memory = pipeline.prepare_clip(batch, reference, past, audio, 0, None, memory_decay=request.memory_decay)
    latents = pipeline.prepare_latents(resolution, resolution, torch.Generator().manual_seed(0))
    latents = latents.to(pipeline.device, pipeline.dtype)
    t = torch.tensor(500.0, device=pipeline.device)
    per_call, _ = _timed(lambda: pipeline.predict_velocity(clip, latents, t), repeats=5)
    decode_seconds, frames = _timed(lambda: pipeline.decode_clip(latents))
    encode_seconds, later = _timed(lambda: pipeline.next_past_frames(past, frames))
    to_uint8 = _timed(lambda: frames_to_uint8(rearrange(frames, "f c H W -> f H W c").cpu().numpy()))[0]
    prepare_seconds, _ = _timed(
        lambda: pipeline.prepare_clip(batch, reference, later, audio, 0, memory, memory_decay=request.memory_decay)
    )  # a later clip: the reference net runs on past frames that are not the portrait
    per_clip = features_seconds + prepare_seconds + decode_seconds + encode_seconds + to_uint8

    waveform = (0.1 * rng.standard_normal(round(PROBE_SECONDS * SAMPLE_RATE))).astype(np.float32)

    def audio_preparation():
        plan_emotions(waveform, pipeline.emotion_detector, request)
        if pipeline.vocal_separator is not None:
            pipeline.vocal_separator(waveform)

    per_audio_second = _timed(audio_preparation)[0] / PROBE_SECONDS
    return Calibration(per_call, per_clip, per_audio_second, passes, resolution, rate)


def _portrait_and_writing(pipeline, parts: _Parts, request, resolution: int, portrait) -> tuple[float, float]:
    """CPU seconds to prepare this request's portrait, and to write one clip at its output size; each timed once."""
    key = (_file_stamp(request.image), resolution, request.crop_scale, request.crop_to_face, request.paste_back)
    if key not in parts.portraits:
        started = time.process_time()
        if portrait is None:
            portrait = prepare_portrait(request.image, resolution, request.crop_scale, request.crop_to_face)
        pipeline.identity_embedding(portrait)
        seconds = time.process_time() - started
        size = pipeline.output_resolution(request, portrait)
        parts.portraits[key] = (seconds, size)
        if size not in parts.writing:
            pasted = PasteBack.from_portrait(portrait) if size != (resolution, resolution) else None
            parts.writing[size] = _writing_seconds(portrait, pasted, request.fps) * cpu_rate()
    seconds, size = parts.portraits[key]
    return seconds, parts.writing[size]


def _writing_seconds(portrait, pasted: PasteBack | None, fps: int) -> float:
    """Wall seconds to write one clip: the crop's frames encoded, and with paste-back also pasted and encoded at size
    (the encoder is another process: its CPU time is not this one's)."""
    crop = np.asarray(portrait.image, dtype=np.uint8)
    frames = np.repeat(crop[None], CLIP_FRAMES, axis=0)
    frames[:, ::2] //= 2  # some detail, as generated frames have: a flat picture encodes faster than any real one
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        with VideoWriter(Path(folder) / "crop.mp4", fps=fps, audio=None) as writer:
            writer.write(frames)
        if pasted is not None:
            with VideoWriter(Path(folder) / "pasted.mp4", fps=fps, audio=None) as writer:
                writer.write(pasted(frames))
        return time.perf_counter() - started


def _file_stamp(source) -> tuple:
    """A key for a picture that changes when the file does; arrays and images key by identity."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        stat = path.stat() if path.is_file() else None
        return (str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)
    return (id(source),)
