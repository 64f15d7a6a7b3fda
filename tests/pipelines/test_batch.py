"""`generate-batch` on the tiny random model: failed jobs are recorded and retried, 2 CPU processes under
`accelerate launch` share the jobs, and a batch killed mid-way resumes without redoing or half-writing a job."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from memo_model.__main__ import main
from memo_model.pipelines.batch import run_batch
from memo_model.pipelines.emotions import EmotionOverrides
from memo_model.pipelines.request import GenerationRequest
from memo_model.vision.video_io import probe_media

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_process():
    """For run_batch in this process: one torch thread (tiny models on busy cores: several times faster than two
    that wait for each other), and accelerate's process-wide state left as it was found."""
    from accelerate import PartialState

    threads, initialized = torch.get_num_threads(), PartialState._shared_state != {}
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if not initialized:
        PartialState._reset_state()


def write_jobs(path: Path, jobs: list[tuple[str | None, GenerationRequest]]) -> Path:
    lines = [json.dumps({**({"name": name} if name else {}), **request.to_dict()}) for name, request in jobs]
    path.write_text("\n".join(lines) + "\n")
    return path


def job(media: Path, seed: int, image: str = "portrait.png") -> GenerationRequest:
    return GenerationRequest(
        image=media / image, audio=media / "speech_0.5s.wav", steps=1, seed=seed, emotions=EmotionOverrides("happy")
    )


def final_videos(folder: Path) -> set[str]:
    """The jobs' main videos (their pasted-back crops, NAME-crop.mp4, apart)."""
    return {path.stem for path in folder.glob("*.mp4") if not path.name.startswith(".") and "-crop" not in path.stem}


def leftovers(folder: Path) -> list[str]:
    temporary = ("partial", "rank-", ".tmp")
    return sorted(path.name for path in folder.iterdir() if any(part in path.name for part in temporary))


def statuses(summary: dict) -> dict[str, str]:
    return {entry["name"]: entry["status"] for entry in summary["jobs"]}


def test_failed_job_is_recorded_and_retried_and_done_jobs_are_skipped(pipeline, media, tmp_path, in_process):
    missing = tmp_path / "later.png"
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [("alpha", job(media, 1)), (None, job(media, 2, image=str(missing))), ("gamma", job(media, 3))],
    )
    out = tmp_path / "out"
    loads = []

    def load(device):
        loads.append(device)
        return pipeline

    summary = run_batch(jobs, out, load)
    assert statuses(summary) == {"alpha": "done", "job-2": "failed", "gamma": "done"}
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 1}
    assert final_videos(out) == {"alpha", "gamma"} and not leftovers(out)
    for name, seed in (("alpha", 1), ("gamma", 3)):
        settings = json.loads((out / f"{name}.json").read_text())
        assert settings["seed"] == seed and settings["video"] == str(out / f"{name}.mp4")
        assert probe_media(out / f"{name}.mp4")["video_frames"] == settings["num_frames"] == 15
        assert settings["paste_back"] and settings["crop_video"] == str(out / f"{name}-crop.mp4")  # picture > crop
        assert probe_media(out / f"{name}-crop.mp4")["video_frames"] == 15
    entry = summary["jobs"][0]
    assert (entry["video"], entry["frames"], entry["seconds"]) == (str(out / "alpha.mp4"), 15, 0.5)
    assert entry["crop_video"] == str(out / "alpha-crop.mp4")
    error = json.loads((out / "job-2.error.json").read_text())
    assert error["name"] == "job-2" and error["line"] == 2 and "later.png does not exist" in error["message"]
    assert "later.png does not exist" in summary["jobs"][1]["message"]
    assert json.loads((out / "summary.json").read_text()) == summary
    mtimes = {path.name: path.stat().st_mtime_ns for path in out.glob("[ag]*")}

    shutil.copy(media / "portrait.png", missing)  # the bad input is fixed: the rerun retries that job only
    summary = run_batch(jobs, out, load)
    assert statuses(summary) == {"alpha": "skipped", "job-2": "done", "gamma": "skipped"}
    assert summary["jobs"][0]["frames"] == 15 and summary["jobs"][0]["video"] == str(out / "alpha.mp4")
    assert not (out / "job-2.error.json").exists() and final_videos(out) == {"alpha", "job-2", "gamma"}
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("[ag]*")} == mtimes
    assert len(loads) == 2

    assert statuses(run_batch(jobs, out, load)) == dict.fromkeys(("alpha", "job-2", "gamma"), "skipped")
    assert len(loads) == 2  # nothing to generate: the model is not even loaded


def test_bad_jobs_file_is_one_clear_message(media, tmp_path, capsys):
    good = json.dumps(job(media, 0).to_dict())
    cases = {
        "missing.jsonl": (None, "does not exist"),
        "notjson.jsonl": (good + "\n{image: x}\n", "line 2 is not JSON"),
        "unknown.jsonl": (json.dumps({**job(media, 0).to_dict(), "stpes": 3}), "line 1: Unknown setting(s) stpes"),
        "noaudio.jsonl": (json.dumps({"image": "x.png"}), "every request needs at least image and audio"),
        "twice.jsonl": (f'{{"name": "a", {good[1:]}\n\n{{"name": "A", {good[1:]}', "line 3: the name 'A' is already"),
        "path.jsonl": (f'{{"name": "../a", {good[1:]}', "not a plain file stem"),
        "crop.jsonl": (f'{{"name": "a-crop", {good[1:]}', "ends like the crop video of a job named 'a'"),
        "empty.jsonl": ("\n", "has no jobs"),
    }
    for name, (text, message) in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        assert main(["generate-batch", str(tmp_path / name), "--output", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (name, err)
    assert not (tmp_path / "out").exists()


def launch_command(jobs: Path, out: Path, weights: Path) -> tuple[list[str], dict]:
    """2 CPU processes (gloo) under `accelerate launch`, as tests/training/test_train.py runs the training."""
    with socket.socket() as probe:  # a free rendezvous port: other distributed runs may use the default one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "true"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
        "-m", "memo_model", "generate-batch", str(jobs), "--output", str(out), "--weights", str(weights),
    ]  # fmt: skip
    return command, env


def check_all_done_once(out: Path, names: list[str], seeds: dict[str, int]) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    assert [entry["name"] for entry in summary["jobs"]] == names  # every job once, in file order
    assert final_videos(out) == set(names)  # and no second copy (job-1-1.mp4)
    assert not leftovers(out) and not list(out.glob("*.error.json"))
    for name in names:
        settings = json.loads((out / f"{name}.json").read_text())
        assert settings["seed"] == seeds[name] and settings["video"] == str(out / f"{name}.mp4")
    return summary


def test_two_processes_under_accelerate_launch_share_the_jobs(weights, media, tmp_path):
    names = [f"job-{line}" for line in range(1, 5)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", [(None, job(media, 10 + i)) for i in range(4)])
    out = tmp_path / "out"
    command, env = launch_command(jobs, out, weights)
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = check_all_done_once(out, names, {name: 10 + i for i, name in enumerate(names)})
    assert summary["num_processes"] == 2 and summary["counts"] == {"done": 4, "skipped": 0, "failed": 0}
    assert [entry["rank"] for entry in summary["jobs"]] == [0, 1, 0, 1]


def kill_process_tree(process: subprocess.Popen) -> None:
    """SIGKILL the launcher's process group and the workers' (torchrun starts each worker in its own session)."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:  # the launcher already ended (a failure the caller reports)
        children = []
    groups = []
    for pid in [*(child.pid for child in children), process.pid]:
        try:
            groups.append(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for group in dict.fromkeys(groups):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)
    psutil.wait_procs(children, timeout=30)


def test_killed_batch_resumes_without_redoing_or_half_written_jobs(weights, pipeline, media, tmp_path, in_process):
    count = 12
    names = [f"clip{i:02d}" for i in range(count)]
    seeds = {name: 100 + i for i, name in enumerate(names)}
    jobs = write_jobs(tmp_path / "jobs.jsonl", [(name, job(media, seeds[name])) for name in names])
    out = tmp_path / "out"
    command, env = launch_command(jobs, out, weights)
    with (tmp_path / "killed.log").open("w") as log:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while not (out.is_dir() and any((out / f"{name}.json").is_file() for name in final_videos(out))):
                assert process.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no job finished"
                time.sleep(0.02)
        finally:
            kill_process_tree(process)

    # Nothing that looks finished is incomplete: a sidecar only next to its video, every final video playable
    finished = {name for name in final_videos(out) if (out / f"{name}.json").is_file()}
    assert all((out / f"{path.stem}.mp4").is_file() for path in out.glob("clip*.json"))
    for name in final_videos(out):
        assert probe_media(out / f"{name}.mp4")["video_frames"] == 15
    assert 0 < len(finished) < count, finished
    assert not (out / "summary.json").exists()

    def stamps() -> dict[str, list[int]]:
        return {name: [(out / f"{name}{ext}").stat().st_mtime_ns for ext in (".mp4", ".json")] for name in finished}

    before = stamps()
    # The restart runs in this process: one rank instead of two, so the jobs are dealt out differently
    summary = run_batch(jobs, out, lambda device: pipeline)
    assert check_all_done_once(out, names, seeds) == summary
    assert statuses(summary) == {name: "skipped" if name in finished else "done" for name in names}
    assert stamps() == before
