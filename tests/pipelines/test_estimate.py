"""The time estimate: the probe's calibration is reused and predicts a real run of the same pipeline."""

import time

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from memo_model.loading import load_pipeline
from memo_model.pipelines.estimate import Calibration, clips_for, estimate_time
from memo_model.pipelines.request import GenerationRequest
from memo_model.testing import write_random_tiny_weights


def test_clip_count_and_the_linear_model():
    assert clips_for(0.1, 30) == 1 and clips_for(16 / 30, 30) == 1 and clips_for(17 / 30, 30) == 2
    calibration = Calibration(overhead=1.0, per_clip=0.5, per_call=0.25, passes=2, resolution=64)
    assert calibration.seconds(clips=4, calls=19) == pytest.approx(1.0 + 4 * (0.5 + 19 * 0.25))


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
    assert estimate.seconds == pytest.approx(estimate.calibration.seconds(6, 2))  # the last step reuses a velocity

    started = time.perf_counter()
    estimate_time(pipeline, request, 60.0)  # same passes and resolution: the cached calibration, no probe
    assert time.perf_counter() - started < 0.1

    started = time.perf_counter()
    pipeline(request)
    actual = time.perf_counter() - started
    assert 0.25 * actual < estimate.seconds < 4.0 * actual, (estimate, actual)  # loose: CI machines are shared

    preview = estimate_time(pipeline, GenerationRequest(**{**request.__dict__, "preview_seconds": 1.0}), seconds)
    assert preview.clips == 2 and preview.steps == 3
