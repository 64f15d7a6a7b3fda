"""The data pipeline of paper §4.4 / appendix F as data: a cut detector, a list of steps, a writer.

    source video → scenes.py (cuts, clips < 30 s) → faces.FaceCrop → quality.QualityFilter →
                 lipsync.LipSyncFilter → review.ReviewFilter → writer.DatasetWriter

Sharding: ``Preprocessor(rank=R).run(input_dir, world_size)`` processes every ``world_size``-th input video
(sorted by path), so many machines preprocess one corpus; rank R appends to its own part files
``metadata.rank{R}.jsonl``, ``rejected.rank{R}.jsonl`` and ``done.rank{R}.jsonl``; ``merge_shards`` concatenates
the parts into ``metadata.jsonl`` and writes the review list. Resumable: a video is listed in ``done.rank{R}.jsonl``
once all its clips are written; a re-run skips those and first removes rows left by a video interrupted half-way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path

import numpy as np

from memo_model.audio.io import SAMPLE_RATE, load_audio
from memo_model.data.preprocess.clip import Clip, Rejection, Step, logger
from memo_model.data.preprocess.faces import PAPER_CROP_SCALE, FaceCrop
from memo_model.data.preprocess.lipsync import OFFLINE_MIN_CONFIDENCE, LipSyncFilter, LipSyncScorer
from memo_model.data.preprocess.quality import ImageQualityModel, QualityFilter
from memo_model.data.preprocess.review import REVIEW_FILE, ReviewFilter, read_decisions, write_review_list
from memo_model.data.preprocess.scenes import (
    MAX_CLIP_SECONDS,
    MIN_CLIP_SECONDS,
    CutDetector,
    HistogramCutDetector,
    iter_frames,
    split_scenes,
)
from memo_model.data.preprocess.writer import METADATA_FILE, DatasetWriter
from memo_model.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
DEFAULT_FPS = 30  # the synthetic dataset's and the official inference frame rate


@dataclass(frozen=True)
class PreprocessConfig:
    """The numbers of the pipeline; thresholds of the filters stay with their steps (see their modules)."""

    resolution: int = 512
    fps: int = DEFAULT_FPS
    max_clip_seconds: float = MAX_CLIP_SECONDS
    min_clip_seconds: float = MIN_CLIP_SECONDS
    crop_scale: float = PAPER_CROP_SCALE
    min_lip_sync_confidence: float = OFFLINE_MIN_CONFIDENCE


def part_file(stem: str, rank: int) -> str:
    return f"{stem}.rank{rank}.jsonl"


def find_videos(input_dir: str | Path) -> list[Path]:
    """Every video under ``input_dir`` (recursively), sorted by relative path so all ranks agree on the order."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"No input folder at {str(input_dir)!r} — pass the folder holding the raw videos.")
    return sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def shard(items: list, rank: int, world_size: int) -> list:
    """Every ``world_size``-th item starting at ``rank``: disjoint across ranks, together all items."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"--rank must be in [0, --world-size); got rank {rank} of {world_size}.")
    return items[rank::world_size]


def clip_id(source: str, index: int) -> str:
    """Stable id of the index-th clip of a source: its stem (readable) + a hash of its path (unique)."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(source).stem)[:40]
    return f"{stem}-{sha1(source.encode()).hexdigest()[:8]}-{index:03d}"


def build_steps(
    config: PreprocessConfig,
    face_detector=None,
    iqa: ImageQualityModel | None = None,
    lip_sync_scorer: LipSyncScorer | None = None,
    review_decisions: dict[str, bool] | None = None,
) -> list[Step]:
    """The paper's order: faces (crop), image quality, lip-sync, then the reviewers' earlier decisions."""
    steps: list[Step] = [
        FaceCrop(config.resolution, config.crop_scale, detector=face_detector),
        QualityFilter(config.resolution, iqa=iqa),
        LipSyncFilter(lip_sync_scorer, min_confidence=config.min_lip_sync_confidence),
    ]
    if review_decisions:
        steps.append(ReviewFilter(review_decisions))
    return steps


class Preprocessor:
    """Runs the pipeline on source videos and appends results to one rank's part files under ``output``."""

    def __init__(
        self,
        output: str | Path,
        steps: list[Step],
        writer: DatasetWriter | None = None,
        cut_detector: CutDetector | None = None,
        config: PreprocessConfig = PreprocessConfig(),
        rank: int = 0,
    ):
        self.output = Path(output)
        self.steps = steps
        self.writer = writer or DatasetWriter(self.output)
        self.cut_detector = cut_detector or HistogramCutDetector()
        self.config = config
        self.rank = rank

    # --- one video ---------------------------------------------------------------------------------------------

    def clips(self, path: Path, source: str) -> Iterator[Clip] | Rejection:
        """The video cut into scenes under 30 s, frames decoded at the pipeline's fps; or why it cannot be."""
        fps = self.config.fps
        try:
            audio = load_audio(path)  # (n,) mono 16 kHz
        except InputError as error:
            return Rejection(source, None, "decode", f"no usable audio: {error}")
        try:
            cuts, num_frames = self.cut_detector.find_cuts(path, fps)
        except InputError as error:
            return Rejection(source, None, "decode", str(error))
        spans = split_scenes(cuts, num_frames, fps, self.config.max_clip_seconds, self.config.min_clip_seconds)
        if not spans:
            return Rejection(source, None, "scenes", f"no scene of {self.config.min_clip_seconds:g} s or longer")
        return self._stream_clips(path, source, spans, audio)

    def _stream_clips(
        self, path: Path, source: str, spans: list[tuple[int, int]], audio: np.ndarray
    ) -> Iterator[Clip]:
        """Clips in order, decoded in one pass; only the clip being filled is held in memory (< 30 s of frames)."""
        fps = self.config.fps
        index, buffer = 0, []
        for t, frame in enumerate(iter_frames(path, fps)):
            start, end = spans[index]
            if t >= start:
                buffer.append(frame)
            if t == end - 1:
                first, last = round(start * SAMPLE_RATE / fps), round(end * SAMPLE_RATE / fps)
                yield Clip(clip_id(source, index), source, start, end, fps, np.stack(buffer), audio[first:last])
                index, buffer = index + 1, []
                if index == len(spans):
                    return

    def process(self, path: Path, source: str) -> tuple[list[dict], list[Rejection]]:
        """Rows written and rejections for one video."""
        found = self.clips(path, source)
        if isinstance(found, Rejection):
            logger.info("rejected %s (%s): %s", source, found.step, found.reason)
            return [], [found]
        rows, rejections = [], []
        for clip in found:
            for step in self.steps:
                passed = step(clip)
                if passed is None:
                    rejections.append(clip.rejection or Rejection(source, clip.id, step.name, "no reason given"))
                    break
                clip = passed
            else:
                rows.append(self.writer.write(clip))
        return rows, rejections

    # --- a shard of a corpus -------------------------------------------------------------------------------------

    def _done_sources(self) -> set[str]:
        done_file = self.output / part_file("done", self.rank)
        if not done_file.exists():
            return set()
        return {json.loads(line)["source"] for line in done_file.read_text().splitlines() if line.strip()}

    def _drop_unfinished(self, done: set[str]) -> None:
        """Remove part-file rows of videos not marked done (a run stopped in the middle of them)."""
        for stem in ("metadata", "rejected"):
            path = self.output / part_file(stem, self.rank)
            if path.exists():
                lines = [line for line in path.read_text().splitlines() if line.strip()]
                kept = [line for line in lines if _row_source(json.loads(line)) in done]
                if len(kept) != len(lines):
                    path.write_text("".join(line + "\n" for line in kept))

    def run(self, input_dir: str | Path, world_size: int = 1) -> dict[str, int]:
        """Process this rank's share of the videos under ``input_dir``, skipping those already done."""
        input_dir = Path(input_dir)
        self.output.mkdir(parents=True, exist_ok=True)
        videos = shard(find_videos(input_dir), self.rank, world_size)
        done = self._done_sources()
        self._drop_unfinished(done)
        summary = {"videos": len(videos), "skipped": 0, "clips_written": 0, "clips_rejected": 0}
        for number, path in enumerate(videos, start=1):
            source = path.relative_to(input_dir).as_posix()
            if source in done:
                summary["skipped"] += 1
                continue
            rows, rejections = self.process(path, source)
            self._append("metadata", rows)
            self._append("rejected", [r.to_dict() for r in rejections])
            self._append("done", [{"source": source, "clips": [r["id"] for r in rows]}])  # last: marks it complete
            summary["clips_written"] += len(rows)
            summary["clips_rejected"] += len(rejections)
            logger.info(
                "[%d/%d] %s: %d clips written, %d rejected", number, len(videos), source, len(rows), len(rejections)
            )
        return summary

    def _append(self, stem: str, rows: list[dict]) -> None:
        with open(self.output / part_file(stem, self.rank), "a") as file:
            file.writelines(json.dumps(row) + "\n" for row in rows)


def _row_source(row: dict) -> str:
    source = row.get("source")
    return source["path"] if isinstance(source, dict) else source


def merge_shards(output: str | Path) -> dict[str, int]:
    """Concatenate every rank's parts (rank order) into metadata.jsonl and rejected.jsonl; update review.csv.

    Decisions already made in ``output``/review.csv are kept in the new list, and rows marked no stay out of
    metadata.jsonl, so merging again after more shards finish never undoes a review.
    """
    output = Path(output)
    merged = {}
    for stem in ("metadata", "rejected"):
        parts = sorted(output.glob(f"{stem}.rank*.jsonl"), key=lambda p: int(p.name.split(".rank")[1].split(".")[0]))
        merged[stem] = [json.loads(line) for part in parts for line in part.read_text().splitlines() if line.strip()]
    if not merged["metadata"] and not merged["rejected"]:
        raise InputError(f"No metadata.rank*.jsonl in {str(output)!r} — run `preprocess` into it first.")
    review = output / REVIEW_FILE
    decisions = read_decisions(review) if review.exists() else {}
    write_review_list(review, merged["metadata"], previous=review if review.exists() else None)
    kept = [row for row in merged["metadata"] if decisions.get(row["id"], True)]
    (output / METADATA_FILE).write_text("".join(json.dumps(row) + "\n" for row in kept))
    (output / "rejected.jsonl").write_text("".join(json.dumps(row) + "\n" for row in merged["rejected"]))
    return {
        "clips": len(kept),
        "dropped_by_review": len(merged["metadata"]) - len(kept),
        "rejected": len(merged["rejected"]),
    }


logging.getLogger("memo_model.preprocess").addHandler(logging.NullHandler())
