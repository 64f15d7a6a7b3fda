"""Interrupting a generation from outside keeps the work: Ctrl-C in a terminal (SIGINT to the whole process group),
SIGTERM and kill -9 each leave a playable partial mp4 with its audio — the pasted-back one and the crop alone —
under a name that says it is partial, and the settings beside it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from memo_model.vision.video_io import probe_media
from tests.pipelines.conftest import speech_like

ROOT = Path(__file__).resolve().parents[2]
FPS = 30


def start_generation(tmp_path: Path, weights: Path, media: Path) -> tuple[subprocess.Popen, Path]:
    """The CLI generating 4 s (8 clips) in a session of its own, once its first clip is written."""
    audio = tmp_path / "speech.wav"
    sf.write(audio, speech_like(4.0), 16000)
    command = [
        sys.executable, "-m", "memo_model", "generate", "--image", str(media / "portrait.png"), "--audio", str(audio),
        "--output", str(tmp_path / "out.mp4"), "--steps", "40", "--weights", str(weights), "--precision", "float32",
    ]  # fmt: skip
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=stderr, start_new_session=True)
    deadline = time.monotonic() + 120
    while "clip 2/8" not in log.read_text(errors="replace"):  # the progress bar has moved past the first clip
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the first clip did not finish"
        time.sleep(0.05)
    return process, log


def assert_video_with_its_audio(path: Path, tolerance: float) -> dict:
    info = probe_media(path)
    assert info["playable"] and info["video_frames"] >= 16 and info["has_audio"], info
    assert abs(info["audio_duration"] - info["video_frames"] / FPS) < tolerance, info
    return info


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_keep_a_partial_video_with_its_audio(weights, media, tmp_path, how):
    process, log = start_generation(tmp_path, weights, media)
    if how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)  # what a terminal sends: every process of the foreground group
    else:
        process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 130
    message = log.read_text(errors="replace")
    assert "stopped:" in message and "kept with its audio in" in message and "out-partial.mp4" in message
    assert "the crop alone in" in message and "out-crop-partial.mp4" in message
    assert "Traceback" not in message and "ffmpeg" not in message
    info = assert_video_with_its_audio(tmp_path / "out-partial.mp4", tolerance=0.05)
    crop = assert_video_with_its_audio(tmp_path / "out-crop-partial.mp4", tolerance=0.05)
    assert crop["video_frames"] == info["video_frames"] and crop["width"] < info["width"]
    settings = json.loads((tmp_path / "out-partial.json").read_text())
    assert settings["cancelled"] is True and settings["num_frames"] == info["video_frames"]
    assert settings["video"] == str(tmp_path / "out-partial.mp4")
    assert settings["crop_video"] == str(tmp_path / "out-crop-partial.mp4")
    left = sorted(p.name for p in tmp_path.iterdir())
    expected = ["out-crop-partial.mp4", "out-partial.json", "out-partial.mp4", "speech.wav", "stderr.txt"]
    assert left == expected, left


def test_kill_9_leaves_a_partial_video_with_its_audio_and_the_settings(weights, media, tmp_path):
    process, _ = start_generation(tmp_path, weights, media)
    process.kill()  # SIGKILL to Python alone: nothing of ours runs; ffmpeg (its own session) sees its input end
    process.wait(timeout=30)
    partial, crop = tmp_path / "out.partial.mp4", tmp_path / "out-crop.partial.mp4"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(p.exists() and probe_media(p)["playable"] for p in (partial, crop)):
        time.sleep(0.2)
    assert_video_with_its_audio(partial, tolerance=0.1)  # -shortest: the audio stops within a few AAC frames
    assert_video_with_its_audio(crop, tolerance=0.1)
    settings = json.loads((tmp_path / "out.partial.json").read_text())
    assert settings["status"] == "running" and settings["video"] == str(partial)
    assert settings["crop_video"] == str(crop)
    assert settings["request"]["steps"] == 40
