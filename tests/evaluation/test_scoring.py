"""Reading frames with the shipped analyzer: the helpers read the video they are given, and the Fréchet distances
separate matched from degraded video sets."""

import cv2
import numpy as np
import pytest
import torch

from memo_model.data.synthetic.analyzer import load_analyzer
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.data.synthetic.sample import make_sample
from memo_model.evaluation.scoring import at_resolution, frechet_distance_between, lip_sync_of, read_frames

FIRST_IDENTITY = HELD_OUT_SEED_START + 800_000  # a held-out block used only here
HELD_OUT = 1_000_003


@pytest.fixture(scope="module")
def analyzer():
    torch.set_num_threads(1)
    return load_analyzer()


@pytest.fixture(scope="module")
def samples():
    return [make_sample(FIRST_IDENTITY + i, 10 + i, 240) for i in range(2)]


def test_the_scoring_helpers_read_the_video_they_are_given(analyzer):
    # The plumbing check: the same helper that scores generated frames scores a ground-truth render near-perfectly,
    # so the untrained model's low numbers come from its video, not from the scoring.
    sample = make_sample(HELD_OUT, seed=11, num_frames=60, size=96)
    readings = read_frames(sample.frames, analyzer, resolution=None)
    assert lip_sync_of(readings, sample.labels["mouth_open"])["correlation"] >= 0.9
    shuffled = np.random.default_rng(0).permutation(sample.labels["mouth_open"])
    assert lip_sync_of(readings, shuffled)["correlation"] < 0.5
    # At a model's resolution the frames are area-averaged first, then read like any other frame set.
    small = at_resolution(sample.frames, 48)
    assert small.shape == (60, 48, 48, 3)
    assert np.array_equal(
        read_frames(sample.frames, analyzer, 48)["mouth_open"], read_frames(small, analyzer, None)["mouth_open"]
    )


def test_frechet_distance_between_video_sets(analyzer, samples):
    frames = [s.frames for s in samples]
    same = frechet_distance_between(frames, frames, analyzer, frame_stride=3)
    assert same["content"] == pytest.approx(0.0, abs=1e-3) and same["texture"] == pytest.approx(0.0, abs=1e-4)
    blurred = [np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in v]) for v in frames]
    degraded = frechet_distance_between(frames, blurred, analyzer, frame_stride=3)
    # Blur leaves who/what/mouth intact (content barely moves) but the texture distance sees it.
    assert degraded["texture"] > 0.1 and degraded["content"] < 10
