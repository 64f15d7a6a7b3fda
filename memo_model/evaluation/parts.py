"""The evaluation's measures, one part each (paper §5.2 measures, §5.4 / Table 2 memory ablation).

A part says which videos it reads — some of ``TAKE_VIDEOS`` for every held-out take, some of ``ABLATION_ORDER``
(memory modes) for the one long take — and ``score(run)`` turns them into its ``Scores``: its block of
evaluation.json, the fields it adds to each take's row under "samples", and why any of its values is null. The
driver (evaluate.py) generates each video once, whichever parts read it.

Every video is generated from a held-out take's inputs — the portrait is the take's reference image (same person,
an emotion not in the take), the audio is its wav — and read back with the synthetic analyzer (scoring.py), whose
readings are compared with the take's ground-truth labels:

- ``LipSync``: measured mouth opening vs the audio-driven ground truth (correlation, best offset; Sync-C/D);
- ``PortraitIdentity``: identity similarity to the portrait of the generated frames and of the take's real renders
  (the ceiling);
- ``Expression``: the read expression vs the labels the video was conditioned on — the emotions the model's detector
  found in the audio, the ground-truth segments given as an override, and a deliberately wrong override track as a
  control (the pipeline applies one emotion per 16-frame clip, so an override track that changes mid-clip cannot
  score 100 % even for a perfect model); and three ceilings on the same takes: the real renders at the model's
  resolution (what the analyzer can read), the real renders through the model's VAE (what any denoiser in that
  latent space can reach) and one label per clip (what per-clip conditioning can reach);
- ``Frechet``: content and texture Fréchet distances between generated frames and the real renders of the same
  takes (the FID/FVD analogue);
- ``IdentityOverTime``: one long video; identity similarity to the portrait over the first seconds vs after
  ``long_seconds`` (the ArcFace-CSIM analogue of the paper's long-video identity consistency);
- ``MemoryAblation``: the same long video with ``memory_mode`` "reference", "recent" and "full" (Table 2).
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from memo_model.audio.emotion import EMOTION_LABELS, SELECTABLE_EMOTIONS
from memo_model.data.synthetic.analyzer import FaceAnalyzer
from memo_model.data.synthetic.dataset_writer import read_video
from memo_model.data.synthetic.speech import FPS
from memo_model.evaluation.scoring import (
    at_resolution,
    expression_of,
    frechet_distance_between,
    lip_sync_of,
    read_frames,
    to_analyzer_input,
)
from memo_model.metrics import expression_accuracy, frame_labels, identity_similarity
from memo_model.pipelines.emotions import EmotionOverrides
from memo_model.pipelines.request import CLIP_FRAMES

# The videos of every held-out take, by their emotion conditioning: what the model detects in the audio, the
# take's ground-truth segments as an override, a wrong override track (the control).
TAKE_VIDEOS = ("detected", "override", "wrong")
ABLATION_ORDER = ("reference", "recent", "full")  # Table 2's rows, top to bottom; the long take's videos
NO_DETECTOR = "the model has no emotion detector"
ENDED_EARLY = "the video ended before --long-seconds"


# --- small pure helpers ----------------------------------------------------------------------------------------


def request_segments(segments: list[dict], fps: int = FPS) -> tuple[tuple[float, float, str], ...]:
    """Label segments (frames, emotion index) -> override segments (seconds, label) for ``EmotionOverrides``."""
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


def take_video_changes(video: str, truth: list[dict]) -> dict:
    """The ``GenerationRequest`` fields that make ``video`` (one of ``TAKE_VIDEOS``) of a take whose ground-truth
    segments are ``truth``."""
    if video == "detected":
        return {}
    if video == "override":
        return {"emotions": EmotionOverrides(segments=request_segments(truth))}
    if video == "wrong":
        return {"emotions": EmotionOverrides(segments=request_segments(wrong_segments(truth)))}
    raise ValueError(f"Unknown take video {video!r}; choose from {', '.join(TAKE_VIDEOS)}.")


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


@torch.no_grad()
def vae_round_trip(pipeline, frames: np.ndarray) -> np.ndarray:
    """(f, s, s, 3) uint8 -> the same frames encoded (posterior mean) and decoded by the pipeline's VAE."""
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    decoded = pipeline.decode(pipeline.encode(pixels))  # (f, 3, s, s) in [0, 1]
    return (decoded.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


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


# --- what the parts read ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Take:
    """A held-out take: the inputs its videos are generated from and the ground truth they are scored against."""

    id: str
    identity_seed: int
    num_frames: int
    reference: str  # the portrait: the same person, in an emotion not in the take
    audio: str
    labels: dict  # ground truth: "mouth_open" (f,) and the emotion "segments" (in frames)
    video: str | None = None  # the take's real renders; the long take has none (its frames are never rendered)

    @classmethod
    def from_row(cls, row: dict) -> "Take":
        """The take of one row of the held-out data's metadata."""
        labels = json.loads(Path(row["labels"]).read_text())
        return cls(
            row["id"], row["identity_seed"], row["num_frames"], row["reference"], row["audio"], labels, row["video"]
        )

    @property
    def truth(self) -> list[dict]:
        """The ground-truth emotion segments (frames, emotion index)."""
        return self.labels["segments"]


def video_name(take: Take, video: str) -> str:
    """The name of one of a take's videos (its mp4 is ``<name>.mp4``): ``s000000_detected``, ``long_s000000_full``."""
    return f"{take.id}_{video}"


@dataclass(frozen=True)
class Video:
    """A generated video as the parts read it."""

    frames: np.ndarray  # (f, h, w, 3) uint8 at the model's resolution
    detected_emotions: tuple[int | None, ...]  # per 16-frame clip, the label the model detected; None: no detector


@dataclass
class Run:
    """What the parts score: the takes, their generated videos and the instruments that read them.

    Every frame set is read once, at the model's resolution, however many parts read it.
    """

    takes: list[Take]
    long_take: Take | None
    videos: dict[str, Video]  # by video_name
    analyzer: FaceAnalyzer
    resolution: int | None  # the model's
    round_trip: Callable[[np.ndarray], np.ndarray]  # frames through the model's VAE (one expression ceiling)
    _read: dict = field(default_factory=dict, repr=False)

    def video(self, take: Take, video: str) -> Video:
        return self.videos[video_name(take, video)]

    def read(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """The analyzer's readings of frames brought to the model's resolution."""
        return read_frames(frames, self.analyzer, self.resolution)

    def readings(self, take: Take, video: str) -> dict[str, np.ndarray]:
        """The readings of one of the take's generated videos."""
        return self._once(("readings", video_name(take, video)), lambda: self.read(self.video(take, video).frames))

    def real_frames(self, take: Take) -> np.ndarray:
        """The take's real renders at the model's resolution. (f, s, s, 3)"""
        return self._once(("real", take.id), lambda: at_resolution(read_video(take.video), self.resolution))

    def real_readings(self, take: Take) -> dict[str, np.ndarray]:
        return self._once(("real readings", take.id), lambda: self.read(self.real_frames(take)))

    def portrait(self, take: Take) -> np.ndarray:
        """The identity embedding (e,) of the take's portrait, read like the frames."""

        def embed():
            image = np.asarray(Image.open(take.reference).convert("RGB"))
            return self.read(image[None])["identity"][0]

        return self._once(("portrait", take.id), embed)

    def _once(self, key: tuple, compute: Callable):
        if key not in self._read:
            self._read[key] = compute()
        return self._read[key]


@dataclass
class Scores:
    """A part's result: its block of evaluation.json (None: it only adds to the takes' rows), the fields it adds to
    each take's row under "samples" (by take id), and why any of its values is null (by dotted path in the result)."""

    block: dict | None = None
    rows: dict[str, dict] = field(default_factory=dict)
    null_reasons: dict[str, str] = field(default_factory=dict)


class Part:
    """One measure: the videos it reads and how it scores them."""

    key: ClassVar[str]  # its block in evaluation.json
    take_videos: ClassVar[tuple[str, ...]] = ()  # of TAKE_VIDEOS, for every held-out take
    long_videos: ClassVar[tuple[str, ...]] = ()  # of ABLATION_ORDER, for the long take

    def score(self, run: Run) -> Scores:
        raise NotImplementedError


# --- the parts -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LipSync(Part):
    """Lip-sync of each take's detected-emotion video against its audio-driven mouth track, and the mean over takes."""

    key = "lipsync"
    take_videos = ("detected",)
    reported: bool = True  # False: only the takes' rows, which carry lip-sync whichever parts read the takes

    def score(self, run: Run) -> Scores:
        per_take = {
            take.id: lip_sync_of(run.readings(take, "detected"), take.labels["mouth_open"]) for take in run.takes
        }
        block = {**mean_lip_sync(list(per_take.values())), "reference_track": "labels.mouth_open"}
        return Scores(block if self.reported else None, {name: {"lipsync": s} for name, s in per_take.items()})


@dataclass(frozen=True)
class PortraitIdentity(Part):
    """Mean identity similarity to the portrait of each take's detected-emotion video, and of its real renders."""

    key = "identity"
    take_videos = ("detected",)

    def score(self, run: Run) -> Scores:
        rows = {}
        for take in run.takes:
            portrait = run.portrait(take)
            generated = identity_similarity(run.readings(take, "detected")["identity"], portrait)
            real = identity_similarity(run.real_readings(take)["identity"], portrait)
            rows[take.id] = {
                "reference_identity": float(generated.mean()),
                "reference_identity_real": float(real.mean()),
            }
        to_portrait = {
            "generated": mean_of([row["reference_identity"] for row in rows.values()]),
            "real_renders": mean_of([row["reference_identity_real"] for row in rows.values()]),
        }
        return Scores({"to_portrait": to_portrait}, rows)


@dataclass(frozen=True)
class Expression(Part):
    """Expression accuracy under detected emotions, the ground-truth override and the wrong override; its ceilings."""

    key = "expression"
    take_videos = TAKE_VIDEOS
    CEILINGS: ClassVar[tuple[str, ...]] = ("real_renders", "vae_round_trip", "per_clip_labels")

    def score(self, run: Run) -> Scores:
        scores = Scores()
        for take in run.takes:
            truth, row = take.truth, {}
            num_frames = len(run.video(take, "detected").frames)
            detected = clip_segments(run.video(take, "detected").detected_emotions, num_frames)
            if detected is None:
                row["expression_detected"] = None
                scores.null_reasons["samples.expression_detected"] = NO_DETECTOR
            else:
                row["expression_detected"] = expression_of(run.readings(take, "detected"), detected)
                row["detector_accuracy"] = expression_accuracy(
                    frame_labels(detected, num_frames), frame_labels(truth, num_frames)
                )
            row["expression_override"] = expression_of(run.readings(take, "override"), truth)
            row["expression_wrong_vs_requested"] = expression_of(run.readings(take, "wrong"), wrong_segments(truth))
            row["expression_wrong_vs_truth"] = expression_of(run.readings(take, "wrong"), truth)
            real = run.real_frames(take)
            row["expression_ceilings"] = {
                "real_renders": expression_of(run.real_readings(take), truth),
                "vae_round_trip": expression_of(run.read(run.round_trip(real)), truth),
                "per_clip_labels": expression_accuracy(
                    per_clip_truth(truth, len(real)), frame_labels(truth, len(real))
                ),
            }
            scores.rows[take.id] = row

        rows = list(scores.rows.values())
        detected = [row["expression_detected"] for row in rows if row["expression_detected"] is not None]
        detector = [row["detector_accuracy"] for row in rows if "detector_accuracy" in row]
        if not detected:
            scores.null_reasons["expression.detected.accuracy"] = NO_DETECTOR
            scores.null_reasons["expression.detected.detector_accuracy"] = NO_DETECTOR
        scores.block = {
            "detected": {
                "accuracy": mean_of(detected) if detected else None,
                "detector_accuracy": mean_of(detector) if detector else None,
            },
            "override": {"accuracy": mean_of([row["expression_override"] for row in rows])},
            "wrong_override": {
                "accuracy_vs_requested": mean_of([row["expression_wrong_vs_requested"] for row in rows]),
                "accuracy_vs_ground_truth": mean_of([row["expression_wrong_vs_truth"] for row in rows]),
            },
            "chance": 1 / len(SELECTABLE_EMOTIONS),
            "ceilings": {name: mean_of([row["expression_ceilings"][name] for row in rows]) for name in self.CEILINGS},
        }
        return scores


@dataclass(frozen=True)
class Frechet(Part):
    """Content and texture Fréchet distances between the takes' detected-emotion videos and their real renders."""

    key = "frechet"
    take_videos = ("detected",)

    def score(self, run: Run) -> Scores:
        size = run.analyzer.config.image_size
        generated = [run.video(take, "detected").frames for take in run.takes]
        real = [run.real_frames(take) for take in run.takes]
        distances = frechet_distance_between(
            [to_analyzer_input(f, size) for f in generated], [to_analyzer_input(f, size) for f in real], run.analyzer
        )
        block = {name: value if math.isfinite(value) else None for name, value in distances.items()}
        block |= {
            "generated_frames": int(sum(len(f) for f in generated)),
            "real_frames": int(sum(len(f) for f in real)),
            "real": "the held-out takes' own renders at the model's resolution",
        }
        return Scores(
            block, null_reasons={f"frechet.{name}": "not finite" for name in distances if block[name] is None}
        )


def long_video_identity(run: Run, mode: str, window_seconds: float, long_seconds: float) -> dict:
    """Identity over time of the long take's video in memory ``mode`` (``identity_over_time`` of its similarity)."""
    similarity = identity_similarity(run.readings(run.long_take, mode)["identity"], run.portrait(run.long_take))
    return identity_over_time(similarity, FPS, window_seconds, long_seconds)


@dataclass(frozen=True)
class IdentityOverTime(Part):
    """Identity similarity to the portrait along the long full-memory video: first window vs after ``long_seconds``."""

    key = "identity"
    long_videos = ("full",)
    window_seconds: float
    long_seconds: float

    def score(self, run: Run) -> Scores:
        over_time = long_video_identity(run, "full", self.window_seconds, self.long_seconds)
        block = {
            "window_seconds": self.window_seconds,
            "long_seconds": self.long_seconds,
            **{key: over_time[key] for key in ("first_window", "after_long", "drift", "by_window")},
            "memory_mode": "full",
            "num_frames": int(len(run.video(run.long_take, "full").frames)),
        }
        ended_early = over_time["after_long"] is None
        return Scores(
            block,
            null_reasons={"identity.after_long": ENDED_EARLY, "identity.drift": ENDED_EARLY} if ended_early else {},
        )


@dataclass(frozen=True)
class MemoryAblation(Part):
    """Table 2: identity over time and lip-sync of the same long video with each memory mode."""

    key = "ablation"
    long_videos = ABLATION_ORDER
    window_seconds: float
    long_seconds: float
    command: str  # reruns the ablation alone

    def score(self, run: Run) -> Scores:
        take, modes, reasons = run.long_take, {}, {}
        for mode in ABLATION_ORDER:
            over_time = long_video_identity(run, mode, self.window_seconds, self.long_seconds)
            if over_time["after_long"] is None:
                reasons |= {f"ablation.modes.{mode}.identity.{key}": ENDED_EARLY for key in ("after_long", "drift")}
            modes[mode] = {
                "identity": over_time,
                "lipsync": lip_sync_of(run.readings(take, mode), take.labels["mouth_open"]),
                "num_frames": int(len(run.video(take, mode).frames)),
            }
        return Scores({"modes": modes, "order": list(ABLATION_ORDER), "command": self.command}, null_reasons=reasons)
