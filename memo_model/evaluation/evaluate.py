"""Evaluating a MEMO model on held-out synthetic people (paper §5.2 measures, §5.4 / Table 2 memory ablation).

Every video is generated from a held-out sample's inputs — the portrait is the sample's reference image (same
person, an emotion not in the take), the audio is its wav — and read back with the synthetic analyzer, whose
readings are compared with the sample's ground-truth labels:

- ``lipsync``: measured mouth opening vs the audio-driven ground truth (correlation, best offset; Sync-C/D);
- ``expression``: the read expression vs the labels the video was conditioned on — the emotions the model's
  detector found in the audio, the ground-truth segments given as an override, and a deliberately wrong override
  track as a control (the pipeline applies one emotion per 16-frame clip, so an override track that changes
  mid-clip cannot score 100 % even for a perfect model); and three ceilings on the same takes: the real renders
  at the model's resolution (what the analyzer can read), the real renders through the model's VAE (what any
  denoiser in that latent space can reach) and one label per clip (what per-clip conditioning can reach);
- ``identity``: one long video; identity similarity to the portrait over the first seconds vs after
  ``long_seconds`` (the ArcFace-CSIM analogue of the paper's long-video identity consistency);
- ``frechet``: content and texture Fréchet distances between generated frames and the real renders of the same
  takes (the FID/FVD analogue);
- ``ablation``: the same long video with ``memory_mode`` "reference", "recent" and "full" (Table 2).

Generated videos are at the model's resolution (64 px for MEMO-Tiny). Every frame set that is compared —
generated frames, the portrait, the real renders — is brought to the model's resolution first and then upsampled
to the analyzer's input size by the same helper, so the numbers measure the model, not the resolution gap.

Reproduce (writes evaluation.json and evaluation.md into the output folder)::

    python -m memo_model evaluate --output runs/evaluation                       # bundled MEMO-Tiny, all parts
    python -m memo_model evaluate --weights W --samples 8 --steps 20 --long-seconds 60 --output runs/evaluation
    python -m memo_model evaluate --parts ablation --long-seconds 30 --output runs/ablation
"""

import json
import math
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
import torch
from PIL import Image

from memo_model.audio.emotion import EMOTION_LABELS, SELECTABLE_EMOTIONS
from memo_model.data.synthetic.analyzer import FaceAnalyzer, analyze_frames, load_analyzer
from memo_model.data.synthetic.dataset_writer import DatasetSpec, read_metadata, read_video, write_dataset
from memo_model.data.synthetic.sample import make_sample
from memo_model.data.synthetic.speech import FPS, SAMPLE_RATE
from memo_model.errors import InputError
from memo_model.evaluation.metrics import expression_accuracy, frame_labels, identity_similarity, lip_sync
from memo_model.evaluation.scoring import frechet_distance_between
from memo_model.pipelines.pipeline_memo import GenerationResult
from memo_model.pipelines.request import CLIP_FRAMES, GenerationRequest

PARTS = ("lipsync", "expression", "identity", "frechet", "ablation")
ABLATION_ORDER = ("reference", "recent", "full")  # Table 2's rows, top to bottom
LONG_AUDIO_SEED = 7_000_000  # a take of its own, so the long audio never repeats a short sample's speech


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


# --- small pure helpers ----------------------------------------------------------------------------------------


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


def request_segments(segments: list[dict], fps: int = FPS) -> tuple[tuple[float, float, str], ...]:
    """Label segments (frames, emotion index) -> ``GenerationRequest.emotion_segments`` (seconds, label)."""
    return tuple((s["start_frame"] / fps, s["end_frame"] / fps, EMOTION_LABELS[s["emotion"]]) for s in segments)


def wrong_segments(segments: list[dict]) -> list[dict]:
    """The same segment boundaries, each with a different emotion: the next selectable one after the true one.

    A control: a model that follows overrides scores high against this track and low against the truth.
    """
    selectable = [EMOTION_LABELS.index(label) for label in SELECTABLE_EMOTIONS]
    wrong = []
    for segment in segments:
        position = selectable.index(segment["emotion"]) if segment["emotion"] in selectable else -1
        emotion = selectable[(position + 1) % len(selectable)]
        wrong.append({**segment, "emotion": emotion, "label": EMOTION_LABELS[emotion]})
    return wrong


def per_clip_truth(segments: list[dict], num_frames: int, clip_frames: int = CLIP_FRAMES) -> np.ndarray:
    """Per-frame labels where each clip of ``clip_frames`` takes the majority of its frames' true labels (ties ->
    the smaller index): what a perfect model conditioned once per clip would show. (num_frames,)"""
    truth = frame_labels(segments, num_frames)
    result = truth.copy()
    for start in range(0, num_frames, clip_frames):
        known = truth[start : start + clip_frames][truth[start : start + clip_frames] >= 0]
        if len(known):
            result[start : start + clip_frames] = np.bincount(known).argmax()
    return result


@torch.no_grad()
def vae_round_trip(pipeline, frames: np.ndarray) -> np.ndarray:
    """(f, s, s, 3) uint8 -> the same frames encoded (posterior mean) and decoded by the pipeline's VAE."""
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    decoded = pipeline.decode(pipeline.encode(pixels))  # (f, 3, s, s) in [0, 1]
    return (decoded.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def clip_segments(used_per_clip: tuple[int | None, ...], num_frames: int) -> list[dict] | None:
    """Per-clip labels -> frame segments over the first ``num_frames``; ``None`` when a clip has no label."""
    if any(label is None for label in used_per_clip):
        return None
    segments = []
    for clip, label in enumerate(used_per_clip):
        start = clip * CLIP_FRAMES
        if start < num_frames:
            segments.append(
                {"emotion": int(label), "start_frame": start, "end_frame": min(start + CLIP_FRAMES, num_frames)}
            )
    return segments


def identity_over_time(similarity: np.ndarray, fps: int, window_seconds: float, long_seconds: float) -> dict:
    """First window vs the window starting at ``long_seconds``, and the mean of every window along the video."""
    window = max(1, round(window_seconds * fps))
    late_start = round(long_seconds * fps)
    late = similarity[late_start : late_start + window]
    by_window = [
        {
            "start_s": start / fps,
            "end_s": min(start + window, len(similarity)) / fps,
            "mean": mean_of(similarity[start : start + window]),
        }
        for start in range(0, len(similarity), window)
    ]
    first = mean_of(similarity[:window])
    after = mean_of(late) if len(late) else None
    return {
        "first_window": first,
        "after_long": after,
        "drift": None if after is None else first - after,
        "mean": mean_of(similarity),
        "by_window": by_window,
    }


def mean_of(values) -> float | None:
    """Mean as a plain float; ``None`` for an empty or non-finite result (JSON has no NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return None
    value = float(np.mean(values))
    return value if math.isfinite(value) else None


def mean_lip_sync(scores: list[dict]) -> dict:
    """Mean correlation / best correlation / confidence over videos; the median best offset (frames)."""
    return {
        "correlation": mean_of([s["correlation"] for s in scores]),
        "best_correlation": mean_of([s["best_correlation"] for s in scores]),
        "best_offset": int(np.median([s["best_offset"] for s in scores])),
        "confidence": mean_of([s["confidence"] for s in scores]),
        "videos": len(scores),
    }


def held_out_samples(root: Path, count: int, seconds: float, seed: int) -> list[dict]:
    """Write ``count`` held-out takes of ``seconds`` each under ``root`` (identities never trained on)."""
    spec = DatasetSpec.held_out(num_samples=count, seconds=(seconds, seconds), seed=seed)
    return list(read_metadata(write_dataset(root, spec)))


def long_take(root: Path, row: dict, seconds: float, seed: int) -> dict:
    """A long audio of the same held-out person as ``row`` (its own speech), with labels; the portrait is reused.

    Only the audio and the labels are needed, so the frames are not rendered.
    """
    num_frames = math.ceil(seconds * FPS)
    sample = make_sample(row["identity_seed"], LONG_AUDIO_SEED + seed, num_frames, render=False)
    root.mkdir(parents=True, exist_ok=True)
    audio = root / f"long_{row['id']}.wav"
    sf.write(audio, sample.audio, SAMPLE_RATE, subtype="PCM_16")
    return {"id": f"long_{row['id']}", "audio": str(audio), "reference": row["reference"], "labels": sample.labels}


# --- the run ---------------------------------------------------------------------------------------------------


@dataclass
class _Notes:
    """Why a value is null, keyed by its dotted path in the result."""

    reasons: dict[str, str] = field(default_factory=dict)

    def null(self, path: str, reason: str) -> None:
        self.reasons[path] = reason
        return None


def evaluate(pipeline, config: EvaluationConfig, log: Callable[[str], None] = print) -> dict:
    """Run the chosen parts of the evaluation with ``pipeline`` (a ``MemoPipeline``); returns the JSON-ready result.

    Videos go to ``<output>/videos``, the held-out data to ``<output>/data``. Values that cannot apply are
    ``None`` with the reason under ``result["null_reasons"][dotted.path]``.
    """
    started = time.perf_counter()
    # 1. Check inputs
    config = config.validate()
    output = Path(config.output)
    videos = output / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    resolution = pipeline.model_info.resolution
    notes = _Notes()
    parts = set(config.parts)
    timings: dict[str, float] = {}

    names = ("reference_guidance", "audio_guidance", "emotion_guidance")
    guidance = {} if config.guidance is None else dict(zip(names, config.guidance, strict=True))

    def request(row: dict, name: str, **changes) -> GenerationRequest:
        return GenerationRequest(
            image=row["reference"],
            audio=row["audio"],
            output=videos / f"{name}.mp4",
            seed=config.seed,
            steps=config.steps,
            crop_to_face=config.crop_to_face,
            max_audio_seconds=max(600.0, config.long_seconds + config.window_seconds + 1),
            **guidance,
            **changes,
        )

    # 2. Held-out data and the analyzer
    analyzer = load_analyzer()
    rows = held_out_samples(output / "data", config.samples, config.seconds, config.seed)
    log(f"{len(rows)} held-out take(s) of {config.seconds:g} s in {output / 'data'}")
    result: dict = {
        "model": {
            "name": pipeline.model_info.name,
            "source": str(pipeline.model_info.source),
            "resolution": resolution,
        },
        "config": config.to_dict(),
        "command": reproduce_command(config),
        "analyzer_input": analyzer.config.image_size,
        "samples": [],
    }

    # 3. Every video the chosen parts need, planned first so that they can be generated in parallel
    short_parts = parts & {"lipsync", "expression", "frechet"}
    long_modes = [m for m in ABLATION_ORDER if "ablation" in parts] or (["full"] if "identity" in parts else [])
    requests: dict[str, GenerationRequest] = {}
    truths: dict[str, list[dict]] = {}
    for row in rows if short_parts else []:
        truth = json.loads(Path(row["labels"]).read_text())["segments"]
        truths[row["id"]] = truth
        requests[f"{row['id']}_detected"] = request(row, f"{row['id']}_detected")
        if "expression" in parts:
            requests[f"{row['id']}_override"] = request(
                row, f"{row['id']}_override", emotion_segments=request_segments(truth)
            )
            requests[f"{row['id']}_wrong"] = request(
                row, f"{row['id']}_wrong", emotion_segments=request_segments(wrong_segments(truth))
            )
    take = None
    if long_modes:
        take = long_take(output / "data", rows[0], config.long_seconds + config.window_seconds, config.seed)
        log(f"long video: {config.long_seconds + config.window_seconds:g} s of identity {rows[0]['identity_seed']}")
        for mode in long_modes:
            requests[f"{take['id']}_{mode}"] = request(take, f"{take['id']}_{mode}", memory_mode=mode)
    generated = generate_all(pipeline, requests, config, timings, log)

    # 4. Short takes: lip-sync, expression (detected, override, wrong override), Fréchet distance
    lip_scores, generated_sets, real_sets = [], [], []
    expression = {
        name: []
        for name in ("detected", "detector", "override", "wrong_vs_requested", "wrong_vs_truth")
        + ("real_renders", "vae_round_trip", "per_clip_labels")
    }
    for row in rows if short_parts else []:
        labels = json.loads(Path(row["labels"]).read_text())
        truth = truths[row["id"]]
        reference_frame = np.asarray(Image.open(row["reference"]).convert("RGB"))
        entry: dict = {"id": row["id"], "identity_seed": row["identity_seed"], "num_frames": row["num_frames"]}
        frames, detected_run = generated[f"{row['id']}_detected"]
        readings = read_frames(frames, analyzer, resolution)
        entry["lipsync"] = lip_sync_of(readings, labels["mouth_open"])
        lip_scores.append(entry["lipsync"])
        generated_sets.append(frames)
        real_sets.append(at_resolution(read_video(row["video"]), resolution))
        portrait = read_frames(reference_frame[None], analyzer, resolution)["identity"][0]
        entry["reference_identity"] = float(identity_similarity(readings["identity"], portrait).mean())
        real_readings = read_frames(real_sets[-1], analyzer, resolution)
        entry["reference_identity_real"] = float(identity_similarity(real_readings["identity"], portrait).mean())
        if "expression" in parts:
            detected = clip_segments(detected_run.clip_emotions.detected, len(frames))
            if detected is None:
                entry["expression_detected"] = notes.null(
                    "samples.expression_detected", "the model has no emotion detector"
                )
            else:
                entry["expression_detected"] = expression_of(readings, detected)
                entry["detector_accuracy"] = expression_accuracy(
                    frame_labels(detected, len(frames)), frame_labels(truth, len(frames))
                )
                expression["detected"].append(entry["expression_detected"])
                expression["detector"].append(entry["detector_accuracy"])
            override = read_frames(generated[f"{row['id']}_override"][0], analyzer, resolution)
            entry["expression_override"] = expression_of(override, truth)
            wrong = wrong_segments(truth)
            control = read_frames(generated[f"{row['id']}_wrong"][0], analyzer, resolution)
            entry["expression_wrong_vs_requested"] = expression_of(control, wrong)
            entry["expression_wrong_vs_truth"] = expression_of(control, truth)
            expression["override"].append(entry["expression_override"])
            expression["wrong_vs_requested"].append(entry["expression_wrong_vs_requested"])
            expression["wrong_vs_truth"].append(entry["expression_wrong_vs_truth"])
            real = real_sets[-1]
            ceilings = {
                "real_renders": expression_of(real_readings, truth),
                "vae_round_trip": expression_of(
                    read_frames(vae_round_trip(pipeline, real), analyzer, resolution), truth
                ),
                "per_clip_labels": expression_accuracy(
                    per_clip_truth(truth, len(real)), frame_labels(truth, len(real))
                ),
            }
            entry["expression_ceilings"] = ceilings
            for name, value in ceilings.items():
                expression[name].append(value)
        result["samples"].append(entry)

    if short_parts:  # identity to the portrait: the generated frames, and the take's real renders (the ceiling)
        result["identity"] = {
            "to_portrait": {
                "generated": mean_of([e["reference_identity"] for e in result["samples"]]),
                "real_renders": mean_of([e["reference_identity_real"] for e in result["samples"]]),
            }
        }
    if "lipsync" in parts:
        result["lipsync"] = {**mean_lip_sync(lip_scores), "reference_track": "labels.mouth_open"}
    if "expression" in parts:
        result["expression"] = {
            "detected": {
                "accuracy": mean_of(expression["detected"])
                if expression["detected"]
                else notes.null("expression.detected.accuracy", "the model has no emotion detector"),
                "detector_accuracy": mean_of(expression["detector"])
                if expression["detector"]
                else notes.null("expression.detected.detector_accuracy", "the model has no emotion detector"),
            },
            "override": {"accuracy": mean_of(expression["override"])},
            "wrong_override": {
                "accuracy_vs_requested": mean_of(expression["wrong_vs_requested"]),
                "accuracy_vs_ground_truth": mean_of(expression["wrong_vs_truth"]),
            },
            "chance": 1 / len(SELECTABLE_EMOTIONS),
            "ceilings": {
                name: mean_of(expression[name]) for name in ("real_renders", "vae_round_trip", "per_clip_labels")
            },
        }
    if "frechet" in parts:
        distances = frechet_distance_between(
            [to_analyzer_input(f, analyzer.config.image_size) for f in generated_sets],
            [to_analyzer_input(f, analyzer.config.image_size) for f in real_sets],
            analyzer,
        )
        result["frechet"] = {
            **{
                name: value if math.isfinite(value) else notes.null(f"frechet.{name}", "not finite")
                for name, value in distances.items()
            },
            "generated_frames": int(sum(len(f) for f in generated_sets)),
            "real_frames": int(sum(len(f) for f in real_sets)),
            "real": "the held-out takes' own renders at the model's resolution",
        }

    # 5. One long video per memory mode: identity over time (full memory) and the Table 2 ablation
    ablation: dict[str, dict] = {}
    if take is not None:
        reference_frame = np.asarray(Image.open(take["reference"]).convert("RGB"))
        reference_embedding = read_frames(reference_frame[None], analyzer, resolution)["identity"][0]
        for mode in long_modes:
            frames, _ = generated[f"{take['id']}_{mode}"]
            readings = read_frames(frames, analyzer, resolution)
            similarity = identity_similarity(readings["identity"], reference_embedding)
            over_time = identity_over_time(similarity, FPS, config.window_seconds, config.long_seconds)
            if over_time["after_long"] is None:
                notes.null(f"ablation.{mode}.identity.after_long", "the video ended before --long-seconds")
            ablation[mode] = {
                "identity": over_time,
                "lipsync": lip_sync_of(readings, take["labels"]["mouth_open"]),
                "num_frames": int(len(frames)),
            }
    if "identity" in parts:
        full = ablation["full"]
        result["identity"] = {
            **result.get("identity", {}),
            "window_seconds": config.window_seconds,
            "long_seconds": config.long_seconds,
            "first_window": full["identity"]["first_window"],
            "after_long": full["identity"]["after_long"],
            "drift": full["identity"]["drift"],
            "by_window": full["identity"]["by_window"],
            "memory_mode": "full",
            "num_frames": full["num_frames"],
        }
        if full["identity"]["after_long"] is None:
            notes.null("identity.after_long", "the video ended before --long-seconds")
            notes.null("identity.drift", "the video ended before --long-seconds")
    if "ablation" in parts:
        result["ablation"] = {
            "modes": ablation,
            "order": list(ABLATION_ORDER),
            "command": reproduce_command(EvaluationConfig(**{**asdict(config), "parts": ("ablation",), "samples": 1})),
        }

    result["null_reasons"] = notes.reasons
    result["timings_seconds"] = {**timings, "total": round(time.perf_counter() - started, 3)}
    return result


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
