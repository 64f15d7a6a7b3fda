"""How long a request will take on this pipeline's device: its parts timed directly, scaled by how fast the machine
runs the model *now*, corrected by the runs that finished (shown before a run, refreshed on every change of the
settings).

A run costs

    portrait + audio_seconds x per_audio_second + clips x (per_clip + writing + calls x per_call)

``per_call`` is one batched denoiser call (all guidance passes; ``calls`` per clip is the steps, less the reused
last one: speed.py); ``per_clip`` the clip's audio features, reference net on the past frames, memory write, VAE
decode and re-encode; ``writing`` the clip's frames pasted back and encoded at the output size; ``portrait`` the
picture's face detection and identity; ``per_audio_second`` the emotion detection (and vocal separation) over the
audio. Each part is timed on its own in wall seconds with the pipeline's named steps (``MemoPipeline.prepare_clip``,
``predict_velocity``, ...) — never as the difference of two noisy whole runs — and kept per pipeline, resolution
and number of guidance passes; the portrait part per picture, the writing per output size.

**The speed probe.** On a shared machine the same work takes a different time from one minute to the next, and
with several threads far more than the share of the CPU lost (a thread waiting at a barrier for a sibling the
scheduler has put aside): CPU seconds do not stay the same either. So every part is stored together with the wall
time of a probe run at the same moment, and an estimate runs the probe again: the parts scale by probe now / probe
then. The probe is the model's own work where that is cheap — a denoiser call of the first calibrated clip, the op
mix and thread use of the run itself — else (a large model on a CPU) a fixed series of matrix products. ``learn``
compares a finished run with what was predicted for it, and the median ratio of the last runs (drawn towards 1 while
there are few) corrects the next estimates.
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
from memo_model.pipelines.speed import cpu_threads, denoiser_calls
from memo_model.vision.face import MIN_IMAGE_SIDE, prepare_portrait
from memo_model.vision.paste_back import PasteBack
from memo_model.vision.video_io import VideoWriter, frames_to_uint8

PROBE_CALL_LIMIT = 0.5  # s: a denoiser call at most this long (at calibration) is the speed probe itself
PROBE_REPEATS = 3  # probe runs per reading (median): one may fall in a burst of a neighbour's work
MATMUL_SIDE, MATMUL_COUNT = 192, 200  # the fallback probe: 200 products (192 x 192) @ (192 x 192) on torch's threads
AUDIO_PROBE_SECONDS = 2.0  # audio timed for the per-second part
LEARNED_RUNS = 5  # finished runs whose ratio corrects the estimate (median)
CORRECTION_RANGE = (0.5, 2.0)  # a correction outside this says more about that run than about the next


@dataclass(frozen=True)
class Calibration:
    """Wall seconds of each part for one number of guidance passes at one resolution, and of the speed probe run at
    the same moment (``probe``)."""

    per_call: float  # one denoiser call, all guidance passes batched
    per_clip: float  # a clip's conditions, decode and re-encode (no denoiser, no writing)
    per_audio_second: float  # emotion detection (and vocal separation) per second of audio
    passes: int
    resolution: int
    probe: float

    def seconds(self, clips: int, calls: int, audio_seconds: float = 0.0) -> float:
        """Wall seconds of the model's work at the calibration's speed, without the portrait and the writing."""
        return audio_seconds * self.per_audio_second + clips * (self.per_clip + calls * self.per_call)


@dataclass(frozen=True)
class TimeEstimate:
    seconds: float
    clips: int
    steps: int
    passes: int
    calibration: Calibration
    slowdown: float = 1.0  # probe now / probe at calibration: > 1 when neighbours are busier than then
    correction: float = 1.0  # from the finished runs (``learn``)
    threads: int = 1  # torch's CPU threads a run started now would use (speed.cpu_threads)

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
    with cpu_threads(pipeline.options, pipeline.device) as threads:  # as many as a run started now would use
        key = (passes, resolution, request.guidance_layout, request.past_frames, threads)
        if key not in parts.calibrations:
            parts.calibrations[key] = _calibrate(pipeline, parts, request, passes, resolution)
        calibration = parts.calibrations[key]
        probe = parts.probe()
        portrait_seconds, writing_seconds = _portrait_and_writing(
            pipeline, parts, request, resolution, portrait, probe
        )

    clips, steps = clips_for(audio_seconds, request.fps), pipeline.model_info.steps_for(request)
    calls = denoiser_calls(steps, pipeline.options)
    slowdown = probe / calibration.probe
    seconds = calibration.seconds(clips, calls, audio_seconds) * slowdown + portrait_seconds + clips * writing_seconds
    correction = parts.correction()
    return TimeEstimate(seconds * correction, clips, steps, passes, calibration, slowdown, correction, threads)


def learn(pipeline, estimate: TimeEstimate, actual_seconds: float) -> None:
    """Remember how long a finished run took against its estimate; the next estimates are corrected by the median
    ratio of the last ``LEARNED_RUNS``. Cancelled runs should not be learned from (they stop early)."""
    uncorrected = estimate.seconds / estimate.correction
    if uncorrected > 0 and actual_seconds > 0:
        _parts(pipeline).ratios.append(actual_seconds / uncorrected)


def matmul_probe() -> float:
    """Wall seconds of a fixed series of small matrix products on torch's threads (the fallback speed probe)."""
    a = torch.ones(MATMUL_SIDE, MATMUL_SIDE) / MATMUL_SIDE
    a @ a  # the first product allocates
    started = time.perf_counter()
    for _ in range(MATMUL_COUNT):
        a @ a
    return time.perf_counter() - started


# --- the parts, timed -------------------------------------------------------------------------------------------


class _Parts:
    """What this pipeline's estimates know: calibrations, portrait and writing times (each as (wall seconds, probe
    seconds then)), the speed probe, ratios of finished runs."""

    def __init__(self):
        self.calibrations: dict[tuple, Calibration] = {}
        self.portraits: dict[tuple, tuple[float, float, tuple[int, int]]] = {}  # seconds, probe then, output size
        self.writing: dict[tuple[int, int], tuple[float, float]] = {}  # output size -> seconds per clip, probe then
        self.ratios: deque[float] = deque(maxlen=LEARNED_RUNS)
        self.probe_function = matmul_probe  # replaced by a denoiser call when the first calibration finds one cheap

    def probe(self) -> float:
        """The speed probe's wall seconds now (median of ``PROBE_REPEATS`` after a warm-up run). Calibrations are kept
        per thread count, so a probe is only compared with one made on as many threads."""
        return _timed(self.probe_function, repeats=PROBE_REPEATS)[0]

    def correction(self) -> float:
        """The median ratio of the finished runs, drawn towards 1 while there are few: n runs count n / (n + 1) of
        their log ratio (one run may have met a burst of other work that the next will not)."""
        if not self.ratios:
            return 1.0
        weight = len(self.ratios) / (len(self.ratios) + 1)
        learned = math.exp(weight * statistics.median(math.log(ratio) for ratio in self.ratios))
        return float(np.clip(learned, *CORRECTION_RANGE))


def _parts(pipeline) -> _Parts:
    return pipeline.__dict__.setdefault("_estimate_parts", _Parts())


def _timed(function, repeats: int = 1) -> tuple[float, object]:
    """(median wall seconds of ``repeats`` calls after one warm-up call, the last result)."""
    result = function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


@torch.no_grad()
def _calibrate(pipeline, parts: _Parts, request: GenerationRequest, passes: int, resolution: int) -> Calibration:
    """Time one clip's parts with the pipeline's own steps on a grey portrait and noise for audio, and the probe
    before and after them (the first calibration makes a cheap denoiser call the probe)."""
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

    def denoiser_call():
        return pipeline.predict_velocity(clip, latents, t)

    per_call, _ = _timed(denoiser_call, repeats=5)
    if not parts.calibrations and per_call <= PROBE_CALL_LIMIT:
        parts.probe_function = denoiser_call
    probe_before = parts.probe()
    decode_seconds, frames = _timed(lambda: pipeline.decode_clip(latents))
    encode_seconds, later = _timed(lambda: pipeline.next_past_frames(past, frames))
    to_uint8 = _timed(lambda: frames_to_uint8(rearrange(frames, "f c H W -> f H W c").cpu().numpy()))[0]
    prepare_seconds, _ = _timed(
        lambda: pipeline.prepare_clip(batch, reference, later, audio, 0, memory, memory_decay=request.memory_decay)
    )  # a later clip: the reference net runs on past frames that are not the portrait
    per_clip = features_seconds + prepare_seconds + decode_seconds + encode_seconds + to_uint8

    waveform = (0.1 * rng.standard_normal(round(AUDIO_PROBE_SECONDS * SAMPLE_RATE))).astype(np.float32)

    def audio_preparation():
        plan_emotions(waveform, pipeline.emotion_detector, request)
        if pipeline.vocal_separator is not None:
            pipeline.vocal_separator(waveform)

    per_audio_second = _timed(audio_preparation)[0] / AUDIO_PROBE_SECONDS
    probe = (probe_before + parts.probe()) / 2
    return Calibration(per_call, per_clip, per_audio_second, passes, resolution, probe)


def _portrait_and_writing(pipeline, parts: _Parts, request, resolution: int, portrait, probe: float):
    """Wall seconds, at the speed the probe reads now (``probe``), to prepare this request's portrait and to write
    one clip at its output size; each timed once."""
    key = (_file_stamp(request.image), resolution, request.crop_scale, request.crop_to_face, request.paste_back)
    if key not in parts.portraits:
        started = time.perf_counter()
        if portrait is None:
            portrait = prepare_portrait(request.image, resolution, request.crop_scale, request.crop_to_face)
        pipeline.identity_embedding(portrait)
        seconds = time.perf_counter() - started
        size = pipeline.output_resolution(request, portrait)
        parts.portraits[key] = (seconds, probe, size)
        if size not in parts.writing:
            pasted = PasteBack.from_portrait(portrait) if size != (resolution, resolution) else None
            parts.writing[size] = (_writing_seconds(portrait, pasted, request.fps), probe)
    seconds, probe_then, size = parts.portraits[key]
    writing, writing_probe = parts.writing[size]
    return seconds * probe / probe_then, writing * probe / writing_probe


def _writing_seconds(portrait, pasted: PasteBack | None, fps: int) -> float:
    """Wall seconds to write one clip: the crop's frames encoded, and with paste-back also pasted and encoded at the
    picture's size."""
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
