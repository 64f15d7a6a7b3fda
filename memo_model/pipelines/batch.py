"""Batch generation: a JSON-lines file of requests -> one video each, sharded over the processes of a launcher.

    python -m memo_model generate-batch jobs.jsonl --output DIR [--weights ...]
    accelerate launch --num_processes 8 -m memo_model generate-batch jobs.jsonl --output DIR

Every non-blank line of ``jobs.jsonl`` is one ``GenerationRequest`` as ``GenerationRequest.to_dict()`` writes it
(at least ``image`` and ``audio``; relative paths are relative to the current directory), plus an optional
``"name"``: the stem of the job's files in DIR (default ``job-<line number>``). A line's ``output`` is ignored:
job ``NAME`` always writes ``DIR/NAME.mp4`` and its settings sidecar ``DIR/NAME.json``, and with paste-back (the
request's ``paste_back``) the crop alone as ``DIR/NAME-crop.mp4``.

Under ``accelerate launch`` / ``torchrun`` (any number of GPUs or machines) job ``i`` (0-based, in file order) runs
on rank ``i mod world size``; without a launcher everything runs in one process. A job is generated under
temporary names (``DIR/.NAME.partial.*``) and moved into place only when it is complete, so a killed batch never
leaves a file that looks finished; run the same command again and it skips every job whose mp4 and sidecar both
exist and retries the rest. A job that fails (bad input or any other error) is recorded in ``DIR/NAME.error.json``
(name, line, message) and the batch goes on; the error file is removed once a later run succeeds. At the end rank 0
writes ``DIR/summary.json``: every job with its status (``done``, ``failed``, or ``skipped`` = already done) and,
for finished jobs, the video path, frame count and seconds (the ranks report through files in DIR, so on several
machines DIR must be a shared folder). The command exits with 1 when a job failed.
"""

import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from memo_model.errors import InputError, SetupError
from memo_model.pipelines.pipeline_memo import crop_video_path
from memo_model.pipelines.request import GenerationRequest

SUMMARY_NAME = "summary.json"
BARRIER_TIMEOUT = timedelta(days=7)  # ranks wait for the slowest one at the end; the default (30 min) is too short
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=@-]{0,199}")


@dataclass(frozen=True)
class Job:
    """One line of the jobs file: its 0-based position, 1-based line number, file stem and request."""

    index: int
    line: int
    name: str
    request: GenerationRequest


@dataclass(frozen=True)
class JobFiles:
    """Where one job's files go: the final mp4s and sidecar, the error file and the temporaries."""

    video: Path
    crop_video: Path  # with paste-back only
    settings: Path
    error: Path
    partial_video: Path  # the request's output while the job runs
    partial_crop_video: Path  # the pipeline's crop video beside it
    partial_settings: Path  # the sidecar the pipeline writes next to it
    partial_error: Path

    @classmethod
    def of(cls, output_dir: Path, name: str) -> "JobFiles":
        partial_video = output_dir / f".{name}.partial.mp4"
        return cls(
            video=output_dir / f"{name}.mp4",
            crop_video=crop_video_path(output_dir / f"{name}.mp4"),
            settings=output_dir / f"{name}.json",
            error=output_dir / f"{name}.error.json",
            partial_video=partial_video,
            partial_crop_video=crop_video_path(partial_video),
            partial_settings=output_dir / f".{name}.partial.json",
            partial_error=output_dir / f".{name}.partial.error.json",
        )

    @property
    def temporaries(self) -> tuple[Path, ...]:
        """Every file a killed or failed run of this job can leave behind (see VideoWriter and the pipeline: the
        encoder's ``.partial.mp4``, the running sidecar ``.partial.json``, a stopped run's ``-partial`` files)."""
        left = []
        for video in (self.partial_video, self.partial_crop_video):
            stem = video.stem
            names = [f"{stem}.partial.mp4", f"{stem}.partial.json", f"{stem}-partial.mp4", f"{stem}-partial.json"]
            left += [video, *(video.with_name(name) for name in names)]
        return *left, self.partial_settings, self.partial_error

    def is_done(self) -> bool:
        return self.video.is_file() and self.settings.is_file()


# --- the jobs file --------------------------------------------------------------------------------------------


def _check_name(name: Any, line: int, where: str) -> str:
    """A job name usable as a file stem in DIR that cannot collide with another job's or the batch's files."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InputError(
            f"{where} line {line}: the name {name!r} is not a plain file stem; use letters, digits and _ . + = @ - "
            "(at most 200, not starting with '.' or '-')."
        )
    if name == Path(SUMMARY_NAME).stem or name.endswith(".error") or ".partial" in name:
        raise InputError(f"{where} line {line}: the name {name!r} is reserved for the batch's own files.")
    if name.lower().endswith("-crop"):  # also on case-insensitive file systems
        raise InputError(
            f"{where} line {line}: the name {name!r} ends like the crop video of a job named "
            f"{name[: -len('-crop')]!r} (paste-back writes NAME-crop.mp4); choose another name."
        )
    return name


def _parse_line(text: str, line: int, where: str) -> tuple[str, GenerationRequest]:
    """(name, request) of one line; ``InputError`` naming the line when it is not a request."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{where} line {line} is not JSON ({error.msg}); write one JSON object per line.") from None
    except (ValueError, RecursionError):  # json refuses integers of thousands of digits and very deep nesting
        raise InputError(f"{where} line {line} holds a number too long or lists nested too deeply.") from None
    if not isinstance(data, dict):
        raise InputError(f"{where} line {line} is not a JSON object; write one request object per line.")
    name = _check_name(data.pop("name", f"job-{line}"), line, where)
    try:
        request = GenerationRequest.from_dict(data)
    except InputError as error:
        raise InputError(f"{where} line {line}: {error}") from None
    return name, request


def read_jobs(jobs_path: str | Path) -> list[Job]:
    """Every job of a JSON-lines file (blank lines skipped); one ``InputError`` for the first bad line.

    The file's structure and every request's settings (types, ranges) are checked here; whether a job's files
    exist is checked when the job runs, so a missing file fails that job alone.
    """
    path = Path(jobs_path)
    if not path.is_file():
        raise InputError(f"The jobs file {path} does not exist; give a JSON-lines file with one request per line.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"The jobs file {path} is not UTF-8 text; give a JSON-lines file.") from None
    jobs, seen = [], {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        name, request = _parse_line(text, number, str(path))
        if name.lower() in seen:  # also on case-insensitive file systems
            raise InputError(f"{path} line {number}: the name {name!r} is already used on line {seen[name.lower()]}.")
        seen[name.lower()] = number
        jobs.append(Job(index=len(jobs), line=number, name=name, request=request))
    if not jobs:
        raise InputError(f"The jobs file {path} has no jobs; write one request object per line.")
    return jobs


def shard(jobs: list[Job], rank: int, world_size: int) -> list[Job]:
    """The jobs of one rank: job i goes to rank i mod world size."""
    return [job for job in jobs if job.index % world_size == rank]


# --- files ----------------------------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any, temporary: Path | None = None) -> None:
    """Write JSON so that ``path`` is either absent/old or complete, never half written."""
    temporary = temporary or path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2))
    os.replace(temporary, path)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _rank_file(output_dir: Path, rank: int) -> Path:
    return output_dir / f".rank-{rank}.json"


# --- one job --------------------------------------------------------------------------------------------------


def _record(job: Job, status: str, rank: int, **extra: Any) -> dict:
    return {"name": job.name, "line": job.line, "status": status, "rank": rank, **extra}


def _finished_record(job: Job, files: JobFiles, status: str, rank: int, **extra: Any) -> dict:
    """A done or skipped job's entry, frames and seconds read from its sidecar."""
    try:
        settings = json.loads(files.settings.read_text())
    except (OSError, ValueError):  # a sidecar someone edited: the video is there all the same
        settings = {}
    return _record(
        job,
        status,
        rank,
        video=str(files.video),
        crop_video=str(files.crop_video) if files.crop_video.is_file() else None,
        settings=str(files.settings),
        frames=settings.get("num_frames"),
        seconds=settings.get("duration_seconds"),
        **extra,
    )


def _generate(job: Job, files: JobFiles, pipeline: Any) -> None:
    """Generate into the temporary names, point the sidecar at the final video, then move both into place."""
    result = pipeline(job.request.replace(output=files.partial_video))
    if Path(result.video_path) != files.partial_video or not files.partial_video.is_file():
        raise RuntimeError(f"the pipeline wrote no video at {files.partial_video} (got {result.video_path}).")
    settings = json.loads(files.partial_settings.read_text())
    settings["video"] = str(files.video)
    settings["request"]["output"] = str(files.video)
    if result.crop_video_path is not None:
        settings["crop_video"] = str(files.crop_video)
    files.partial_settings.write_text(json.dumps(settings, indent=2))
    for warning in result.warnings:
        print(f"{job.name}: warning: {warning}", file=sys.stderr)
    if result.crop_video_path is not None:
        os.replace(files.partial_crop_video, files.crop_video)
    os.replace(files.partial_video, files.video)  # the sidecar last: a job is done when both exist
    os.replace(files.partial_settings, files.settings)


def run_job(job: Job, output_dir: Path, pipeline: Callable[[], Any], rank: int = 0) -> dict:
    """Run one job (``pipeline`` returns the loaded pipeline, loading it on first use); never raises for a failed
    job: its message goes to ``NAME.error.json`` and into the returned entry."""
    files = JobFiles.of(output_dir, job.name)
    _remove(*files.temporaries)  # a killed run's leftovers; _output_path would otherwise pick another name
    if files.is_done():
        _remove(files.error)  # a run killed between finishing and removing it
        return _finished_record(job, files, "skipped", rank)
    loaded = pipeline()  # outside the try: a model that does not load is not the job's fault
    started = time.perf_counter()
    try:
        _generate(job, files, loaded)
    except Exception as error:  # one bad job must not stop the batch
        expected = isinstance(error, InputError | SetupError)
        message = str(error) if expected else f"{type(error).__name__}: {error}"
        if not expected:
            traceback.print_exc()
        _remove(*files.temporaries)
        entry = {"name": job.name, "line": job.line, "message": message}
        write_json_atomic(files.error, entry, temporary=files.partial_error)
        return _record(job, "failed", rank, message=message, error_file=str(files.error))
    _remove(files.error)
    return _finished_record(job, files, "done", rank, elapsed_seconds=round(time.perf_counter() - started, 3))


# --- the batch ------------------------------------------------------------------------------------------------


def launcher_state() -> Any:
    """The ``accelerate.PartialState`` of this process: rank and world size of ``accelerate launch`` / ``torchrun``
    (gloo on CPU when ``ACCELERATE_USE_CPU`` is set or there is no GPU), one process without a launcher."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or ("LOCAL_RANK" in os.environ and not torch.cuda.is_available())
    state = PartialState(cpu=cpu, timeout=BARRIER_TIMEOUT)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:  # every process would run every job
        raise SetupError(
            f"The launcher started {launched} processes but accelerate set up {state.num_processes}; "
            "on CPU launch with ACCELERATE_USE_CPU=true."
        )
    return state


def _lazy(load: Callable[[], Any]) -> Callable[[], Any]:
    """``load()`` on the first call only: a rank whose jobs are all done never loads the model."""
    loaded: list[Any] = []

    def get() -> Any:
        if not loaded:
            loaded.append(load())
        return loaded[0]

    return get


def _gather(jobs: list[Job], output_dir: Path, world_size: int) -> list[dict]:
    """Every job's entry from the rank files, in file order (a job no rank reported counts as failed)."""
    reported: dict[int, dict] = {}
    for rank in range(world_size):
        path = _rank_file(output_dir, rank)
        if path.is_file():
            for entry in json.loads(path.read_text())["jobs"]:
                reported[entry["line"]] = entry
    missing = "no result: its rank stopped before reporting"
    return [reported.get(job.line) or _record(job, "failed", job.index % world_size, message=missing) for job in jobs]


def _summary(jobs_path: Path, output_dir: Path, entries: list[dict], world_size: int) -> dict:
    counts = {status: sum(e["status"] == status for e in entries) for status in ("done", "skipped", "failed")}
    return {
        "jobs_file": str(jobs_path),
        "output_dir": str(output_dir),
        "num_processes": world_size,
        "counts": counts,
        "jobs": entries,
    }


def run_batch(
    jobs_path: str | Path,
    output_dir: str | Path,
    load_pipeline_fn: Callable[[Any], Any],
    state: Any = None,
) -> dict:
    """Run this process's share of the jobs in ``jobs_path`` into ``output_dir``; return the batch summary.

    ``load_pipeline_fn(device)`` loads the pipeline on this process's device (called once, and only when a job
    has to be generated). ``state`` is an ``accelerate.PartialState`` (default: a new one, which reads the
    launcher's environment). Every rank returns the summary that rank 0 wrote to ``summary.json`` after all ranks
    finished. Raises ``InputError`` for a bad jobs file before any work is done.
    """
    jobs_path, output_dir = Path(jobs_path), Path(output_dir)
    jobs = read_jobs(jobs_path)
    state = launcher_state() if state is None else state
    rank, world_size = state.process_index, state.num_processes
    output_dir.mkdir(parents=True, exist_ok=True)
    _remove(_rank_file(output_dir, rank))  # a previous run's
    summary_path = output_dir / SUMMARY_NAME
    if state.is_main_process:
        _remove(summary_path)  # it describes the last completed run only; the ranks read it after the barriers
    mine = shard(jobs, rank, world_size)
    prefix = f"[rank {rank}] " if world_size > 1 else ""
    print(f"{prefix}{len(mine)} of {len(jobs)} jobs -> {output_dir}", flush=True)
    device = torch.device(state.device)
    device = torch.device("cpu") if device.type == "cpu" else device  # safetensors refuses "cpu:0" (gloo ranks)
    pipeline = _lazy(lambda: load_pipeline_fn(device))
    entries = []
    for job in mine:
        entry = run_job(job, output_dir, pipeline, rank)
        entries.append(entry)
        detail = entry.get("message") or f"{entry['video']} ({entry['frames']} frames, {entry['seconds']} s)"
        print(f"{prefix}{job.name} (line {job.line}) {entry['status']}: {detail}", flush=True)
    write_json_atomic(_rank_file(output_dir, rank), {"rank": rank, "jobs": entries})

    state.wait_for_everyone()  # every rank file is written
    if state.is_main_process:
        summary = _summary(jobs_path, output_dir, _gather(jobs, output_dir, world_size), world_size)
        write_json_atomic(summary_path, summary)
        _remove(*(_rank_file(output_dir, k) for k in range(world_size)))
        counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items())
        print(f"{counts}; summary: {summary_path}", flush=True)
    state.wait_for_everyone()  # the summary is written
    return json.loads(summary_path.read_text())
