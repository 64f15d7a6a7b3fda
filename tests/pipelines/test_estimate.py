"""The time estimate: parts timed once with the pipeline's own steps, reused, scaled to the machine's speed, corrected
by finished runs; it predicts a real run of the same pipeline."""

import time

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from memo_model.loading import load_pipeline
from memo_model.pipelines.estimate import Calibration, clips_for, estimate_time, learn, matmul_probe
from memo_model.pipelines.request import GenerationRequest
from memo_model.testing import write_random_tiny_weights


def test_clip_count_and_the_linear_model():
    assert clips_for(0.1, 30) == 1 and clips_for(16 / 30, 30) == 1 and clips_for(17 / 30, 30) == 2
    calibration = Calibration(per_call=0.25, per_clip=0.5, per_audio_second=0.1, passes=2, resolution=64, probe=0.1)
    assert calibration.seconds(clips=4, calls=19, audio_seconds=2.0) == pytest.approx(0.2 + 4 * (0.5 + 19 * 0.25))
    assert 0 < matmul_probe() < 5


def test_estimate_predicts_a_run_and_reuses_its_probe(tmp_path):
    torch.set_num_threads(1)
    pipeline = load_pipeline(write_random_tiny_weights(tmp_path / "weights"), device="cpu")
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "face.png")
    seconds = 3.0
    sf.write(tmp_path / "speech.wav", 0.1 * np.random.default_rng(0).standard_normal(int(seconds * 16000)), 16000)
    request = GenerationRequest(
        image=tmp_path / "face.png",
        audio=tmp_path / "speech.wav",
        output=tmp_path / "out.mp4",
        steps=3,
        crop_to_face=False,
    )
    estimate = estimate_time(pipeline, request, seconds)
    assert (estimate.clips, estimate.steps, estimate.passes) == (6, 3, 2)
    assert "6 clips x 3 steps" in estimate.describe()
    calibration = estimate.calibration
    assert min(calibration.per_call, calibration.per_clip, calibration.probe) > 0  # timed directly, never a difference
    # the model's part at the calibration's speed, scaled by the probe now / then; the portrait and writing add to it
    assert estimate.seconds > calibration.seconds(6, 2, seconds) * estimate.slowdown * estimate.correction

    started = time.perf_counter()
    again = estimate_time(pipeline, request, 60.0)  # same passes, resolution and picture: nothing timed again
    assert time.perf_counter() - started < 0.5
    assert again.calibration is calibration and again.clips == 113

    started = time.perf_counter()
    pipeline(request)
    actual = time.perf_counter() - started
    assert 0.25 * actual < estimate.seconds < 4 * actual, (estimate, actual)  # loose: CI machines are shared

    preview = estimate_time(pipeline, request.replace(preview_seconds=1.0), seconds)
    assert preview.clips == 2 and preview.steps == 3


def test_finished_runs_correct_the_next_estimates(tmp_path):
    pipeline = load_pipeline(write_random_tiny_weights(tmp_path / "weights"), device="cpu")
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "face.png")
    request = GenerationRequest(image=tmp_path / "face.png", audio=tmp_path / "none.wav", steps=2, crop_to_face=False)
    first = estimate_time(pipeline, request, 2.0)
    assert first.correction == 1.0
    for _ in range(3):  # three runs took twice what was predicted
        learn(pipeline, first, 2 * first.seconds)
    corrected = estimate_time(pipeline, request, 2.0)
    assert corrected.correction == pytest.approx(2 ** (3 / 4))  # three runs count 3/4 of their ratio
    learn(pipeline, corrected, 100 * corrected.seconds)  # one freak run does not move the median far
    assert estimate_time(pipeline, request, 2.0).correction == pytest.approx(2 ** (4 / 5))
