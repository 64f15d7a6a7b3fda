"""Evaluating a MEMO model on held-out synthetic people (paper §5.2 measures, §5.4 / Table 2 memory ablation).

``evaluate`` is the driver: it writes the held-out takes, asks the chosen parts (parts.py, one per measure:
lip-sync, expression, identity, Fréchet distance, the memory ablation) which videos they read, generates each of
those once, hands them to the parts and assembles their scores into the JSON-ready result that report.py writes.

Generated videos are at the model's resolution (64 px for MEMO-Tiny); every frame set that is compared is read by
the analyzer the same way (scoring.py), so the numbers measure the model, not the resolution gap.

Reproduce (writes evaluation.json and evaluation.md into the output folder)::

    python -m memo_model evaluate --output runs/evaluation                       # bundled MEMO-Tiny, all parts
    python -m memo_model evaluate --weights W --samples 8 --steps 20 --long-seconds 60 --output runs/evaluation
    python -m memo_model evaluate --parts ablation --long-seconds 30 --output runs/ablation
"""

import math
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

from memo_model.data.synthetic.analyzer import load_analyzer
from memo_model.data.synthetic.dataset_writer import DatasetSpec, read_metadata, read_video, write_dataset
from memo_model.data.synthetic.sample import make_sample
from memo_model.data.synthetic.speech import FPS, SAMPLE_RATE
from memo_model.errors import InputError
from memo_model.evaluation.parts import (
    ABLATION_ORDER,
    TAKE_VIDEOS,
    Expression,
    Frechet,
    IdentityOverTime,
    LipSync,
    MemoryAblation,
    Part,
    PortraitIdentity,
    Run,
    Take,
    Video,
    take_video_changes,
    vae_round_trip,
    video_name,
)
from memo_model.pipelines.pipeline_memo import GenerationResult
from memo_model.pipelines.request import GenerationRequest

PARTS = ("lipsync", "expression", "identity", "frechet", "ablation")
LONG_AUDIO_SEED = 7_000_000  # a take of its own, so the long audio never repeats a short sample's speech
# evaluation.json's blocks in their order (the takes' identity to the portrait has always come first)
RESULT_BLOCKS = ("identity", "lipsync", "expression", "frechet", "ablation")


@dataclass(frozen=True)
class EvaluationConfig:
    """One evaluation run. ``seconds``: length of each held-out take; ``long_seconds``: identity is compared
    between the first ``window_seconds`` and the ``window_seconds`` after this point of one long video."""

    output: str | Path
    samples: int = 4
    seconds: float = 4.0
    long_seconds: float = 60.0
    window_seconds: float = 2.0
    steps: int = 20
    seed: int = 0
    parts: tuple[str, ...] = PARTS
    # The synthetic renders are already face-centred squares and training resized whole frames
    # (data/dataset.py), so the portrait must not be re-cropped around the face here.
    crop_to_face: bool = False
    weights: str | None = None  # recorded for the reproduce command; worker processes load it
    device: str | None = None  # worker processes load the model here (None: the best available)
    # Videos generated at once, each in its own process with cpu_count // workers torch threads. Small models on
    # CPU use cores better this way than with threads; the results are the same as with one worker (same seeds).
    workers: int = 1
    # None: the model's defaults (MEMO-Tiny: 1.5 each); else (reference, audio, emotion) guidance for every video
    guidance: tuple[float, float, float] | None = None

    def validate(self) -> "EvaluationConfig":
        problems = []
        unknown = [part for part in self.parts if part not in PARTS]
        if unknown:
            problems.append(f"Unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}.")
        if not self.parts:
            problems.append(f"Choose at least one part of {', '.join(PARTS)}.")
        if self.guidance is not None and (len(self.guidance) != 3 or min(self.guidance) < 0):
            problems.append(f"--guidance takes three scales >= 0 (reference, audio, emotion); got {self.guidance}.")
        if self.workers < 1:
            problems.append(f"--workers must be at least 1; got {self.workers}.")
        if self.samples < 1:
            problems.append(f"--samples must be at least 1; got {self.samples}.")
        if self.seconds * FPS < 8:
            problems.append(f"--seconds must give at least 8 frames for a lip-sync correlation; got {self.seconds}.")
        if self.window_seconds <= 0 or self.long_seconds < self.window_seconds:
            problems.append(
                f"--long-seconds ({self.long_seconds:g}) must be at least the window ({self.window_seconds:g} s), "
                "so the late window starts after the first one."
            )
        if problems:
            raise InputError("\n".join(problems))
        return self

    def to_dict(self) -> dict:
        data = asdict(self)
        data["output"] = str(self.output)
        data["parts"] = list(self.parts)
        data["guidance"] = None if self.guidance is None else list(self.guidance)
        return data


def reproduce_command(config: EvaluationConfig) -> str:
    """The exact command line that reruns this evaluation."""
    words = ["python", "-m", "memo_model", "evaluate"]
    if config.weights:
        words += ["--weights", str(config.weights)]
    words += ["--samples", str(config.samples), "--seconds", f"{config.seconds:g}", "--steps", str(config.steps)]
    words += ["--long-seconds", f"{config.long_seconds:g}", "--window-seconds", f"{config.window_seconds:g}"]
    words += ["--seed", str(config.seed), "--parts", ",".join(config.parts), "--output", str(config.output)]
    if config.workers > 1:
        words += ["--workers", str(config.workers)]
    if config.guidance is not None:
        words += ["--guidance", *(f"{scale:g}" for scale in config.guidance)]
    return shlex.join(words)


# --- planning -------------------------------------------------------------------------------------------------


def choose_parts(config: EvaluationConfig) -> list[Part]:
    """The parts ``config.parts`` asks for, in the order they are scored.

    Every held-out take's row carries the lip-sync and the identity to the portrait of the take's detected-emotion
    video, so these two come with any part that reads the takes (the lip-sync block only when it was chosen).
    """
    window, late = config.window_seconds, config.long_seconds
    ablation_alone = EvaluationConfig(**{**asdict(config), "parts": ("ablation",), "samples": 1})
    by_name = {
        "lipsync": LipSync(),
        "expression": Expression(),
        "frechet": Frechet(),
        "identity": IdentityOverTime(window, late),
        "ablation": MemoryAblation(window, late, reproduce_command(ablation_alone)),
    }
    parts = [part for name, part in by_name.items() if name in config.parts]
    if any(part.take_videos for part in parts):
        if "lipsync" not in config.parts:
            parts.insert(0, LipSync(reported=False))
        parts.insert(1, PortraitIdentity())
    return parts


def held_out_samples(root: Path, count: int, seconds: float, seed: int) -> list[dict]:
    """Write ``count`` held-out takes of ``seconds`` each under ``root`` (identities never trained on)."""
    spec = DatasetSpec.held_out(num_samples=count, seconds=(seconds, seconds), seed=seed)
    return list(read_metadata(write_dataset(root, spec)))


def long_take(root: Path, row: dict, seconds: float, seed: int) -> Take:
    """A long audio of the same held-out person as ``row`` (its own speech), with labels; the portrait is reused.

    Only the audio and the labels are needed, so the frames are not rendered.
    """
    num_frames = math.ceil(seconds * FPS)
    sample = make_sample(row["identity_seed"], LONG_AUDIO_SEED + seed, num_frames, render=False)
    root.mkdir(parents=True, exist_ok=True)
    audio = root / f"long_{row['id']}.wav"
    sf.write(audio, sample.audio, SAMPLE_RATE, subtype="PCM_16")
    return Take(f"long_{row['id']}", row["identity_seed"], num_frames, row["reference"], str(audio), sample.labels)


def planned_videos(parts: list[Part], takes: list[Take], long: Take | None) -> dict[str, tuple[Take, dict]]:
    """Every video the parts read, each once: name -> (its take, its ``GenerationRequest`` changes).

    Take by take in ``TAKE_VIDEOS`` order, then the long take's memory modes in ``ABLATION_ORDER``.
    """
    take_videos = [video for video in TAKE_VIDEOS if any(video in part.take_videos for part in parts)]
    long_videos = [mode for mode in ABLATION_ORDER if any(mode in part.long_videos for part in parts)]
    plan = {}
    for take in takes:
        for video in take_videos:
            plan[video_name(take, video)] = (take, take_video_changes(video, take.truth))
    for mode in long_videos if long is not None else []:
        plan[video_name(long, mode)] = (long, {"memory_mode": mode})
    return plan


def generation_request(config: EvaluationConfig, take: Take, output: Path, changes: dict) -> GenerationRequest:
    """The request for one video of ``take``: the config's seed, steps and guidance, and ``changes``."""
    names = ("reference_guidance", "audio_guidance", "emotion_guidance")
    guidance = {} if config.guidance is None else dict(zip(names, config.guidance, strict=True))
    return GenerationRequest(
        image=take.reference,
        audio=take.audio,
        output=output,
        seed=config.seed,
        steps=config.steps,
        crop_to_face=config.crop_to_face,
        max_audio_seconds=max(600.0, config.long_seconds + config.window_seconds + 1),
        **guidance,
        **changes,
    )


# --- the run ---------------------------------------------------------------------------------------------------


def evaluate(pipeline, config: EvaluationConfig, log: Callable[[str], None] = print) -> dict:
    """Run the chosen parts of the evaluation with ``pipeline`` (a ``MemoPipeline``); returns the JSON-ready result.

    Videos go to ``<output>/videos``, the held-out data to ``<output>/data``. Values that cannot apply are
    ``None`` with the reason under ``result["null_reasons"][dotted.path]``.
    """
    started = time.perf_counter()
    # 1. Check inputs
    config = config.validate()
    output = Path(config.output)
    (output / "videos").mkdir(parents=True, exist_ok=True)
    parts = choose_parts(config)

    # 2. Held-out data and the analyzer
    analyzer = load_analyzer()
    rows = held_out_samples(output / "data", config.samples, config.seconds, config.seed)
    log(f"{len(rows)} held-out take(s) of {config.seconds:g} s in {output / 'data'}")
    takes = [Take.from_row(row) for row in rows] if any(part.take_videos for part in parts) else []
    long = None
    if any(part.long_videos for part in parts):
        long = long_take(output / "data", rows[0], config.long_seconds + config.window_seconds, config.seed)
        log(f"long video: {config.long_seconds + config.window_seconds:g} s of identity {long.identity_seed}")

    # 3. Every video the parts read, planned first so that each is generated once (in parallel with --workers)
    requests = {
        name: generation_request(config, take, output / "videos" / f"{name}.mp4", changes)
        for name, (take, changes) in planned_videos(parts, takes, long).items()
    }
    timings: dict[str, float] = {}
    generated = generate_all(pipeline, requests, config, timings, log)

    # 4. Each part scores the videos it asked for
    videos = {name: Video(frames, result.clip_emotions.detected) for name, (frames, result) in generated.items()}
    resolution = pipeline.model_info.resolution
    run = Run(takes, long, videos, analyzer, resolution, partial(vae_round_trip, pipeline))
    scored = [(part, part.score(run)) for part in parts]

    # 5. The result: each take's row, each part's block, why a value is null
    samples = {
        take.id: {"id": take.id, "identity_seed": take.identity_seed, "num_frames": take.num_frames} for take in takes
    }
    blocks: dict[str, dict] = {key: {} for key in RESULT_BLOCKS}
    null_reasons: dict[str, str] = {}
    for part, scores in scored:
        for take_id, fields in scores.rows.items():
            samples[take_id].update(fields)
        if scores.block is not None:
            blocks[part.key].update(scores.block)
        null_reasons.update(scores.null_reasons)
    return {
        "model": {
            "name": pipeline.model_info.name,
            "source": str(pipeline.model_info.source),
            "resolution": resolution,
        },
        "config": config.to_dict(),
        "command": reproduce_command(config),
        "analyzer_input": analyzer.config.image_size,
        "samples": list(samples.values()),
        **{key: block for key, block in blocks.items() if block},
        "null_reasons": null_reasons,
        "timings_seconds": {**timings, "total": round(time.perf_counter() - started, 3)},
    }


# --- generating the videos -------------------------------------------------------------------------------------


def generate_all(
    pipeline, requests: dict[str, GenerationRequest], config: EvaluationConfig, timings: dict, log: Callable
) -> dict[str, tuple[np.ndarray, GenerationResult]]:
    """name -> (frames, result) for every request; ``config.workers`` processes when more than one.

    The pipeline never overwrites a video (it numbers a new one), so a rerun into the same folder first removes
    its own earlier outputs.
    """
    for item in requests.values():
        for stale in (item.output, Path(item.output).with_suffix(".json")):
            Path(stale).unlink(missing_ok=True)
    results: dict[str, GenerationResult] = {}
    if config.workers == 1 or len(requests) == 1:
        for name, item in requests.items():
            results[name] = _timed(pipeline, item)
            timings[name] = results[name].timings["wall"]
            log(f"  {name}: {results[name].num_frames} frames in {timings[name]:.1f} s")
    else:
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // config.workers)
        longest_first = sorted(requests, key=lambda name: -_audio_seconds(requests[name].audio))
        context = multiprocessing.get_context("spawn")  # torch's thread pools do not survive fork
        initargs = (config.weights, config.device, threads)
        with ProcessPoolExecutor(config.workers, context, initializer=_start_worker, initargs=initargs) as pool:
            futures = {pool.submit(_generate_in_worker, requests[name]): name for name in longest_first}
            for future in as_completed(futures):
                name = futures[future]
                results[name] = future.result()
                timings[name] = results[name].timings["wall"]
                log(f"  {name}: {results[name].num_frames} frames in {timings[name]:.1f} s")
    return {name: (read_video(results[name].video_path), results[name]) for name in requests}


def _timed(pipeline, request: GenerationRequest) -> GenerationResult:
    tick = time.perf_counter()
    result = pipeline(request)
    result.timings["wall"] = round(time.perf_counter() - tick, 3)
    return result


def _audio_seconds(path) -> float:
    return sf.info(str(path)).duration


_WORKER_PIPELINE = None


def _start_worker(weights: str | None, device: str | None, threads: int) -> None:
    import torch

    from memo_model.loading import load_pipeline

    global _WORKER_PIPELINE
    torch.set_num_threads(threads)
    _WORKER_PIPELINE = load_pipeline(weights, device=device)


def _generate_in_worker(request: GenerationRequest) -> GenerationResult:
    return _timed(_WORKER_PIPELINE, request)
