"""Metrics on known inputs: lip-sync, offsets, expression accuracy, identity similarity, Fréchet distance."""

import numpy as np
import pytest

from memo_model.metrics import (
    expression_accuracy,
    frame_labels,
    frechet_distance,
    identity_drift,
    identity_similarity,
    lip_sync,
    pearson,
)


def speech_like_track(num_frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = np.convolve(rng.random(num_frames + 8), np.hanning(8), mode="valid")[:num_frames]
    return (raw - raw.min()) / (raw.max() - raw.min())


def test_lip_sync_of_identical_and_unrelated_tracks():
    track = speech_like_track(600, 0)
    same = lip_sync(track, track)
    assert same.correlation == pytest.approx(1.0) and same.best_offset == 0 and same.confidence > 0.5
    other = lip_sync(track, speech_like_track(600, 1))
    assert abs(other.correlation) < 0.15 and other.confidence < same.confidence


def test_best_offset_recovers_a_known_shift():
    track = speech_like_track(600, 2)
    for shift in (-7, -2, 3, 9):
        delayed = np.roll(track, shift)  # the video lags the audio by `shift` frames
        result = lip_sync(delayed, track)
        assert result.best_offset == shift
        assert result.best_correlation > 0.95


def test_lip_sync_rejects_mismatched_tracks():
    with pytest.raises(ValueError, match="equally long"):
        lip_sync(np.zeros(10), np.zeros(11))


def test_expression_accuracy_and_frame_labels():
    segments = [{"emotion": 3, "start_frame": 0, "end_frame": 4}, {"emotion": 6, "start_frame": 4, "end_frame": 10}]
    labels = frame_labels(segments, 12)
    assert labels.tolist() == [3] * 4 + [6] * 6 + [-1] * 2
    predicted = np.array([3, 3, 3, 0, 6, 6, 6, 6, 6, 6, 1, 1])
    assert expression_accuracy(predicted, labels) == pytest.approx(0.9)


def test_identity_similarity_and_drift():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=16)
    drifting = np.stack([reference + t * rng.normal(size=16) for t in np.linspace(0, 2, 100)])
    similarity = identity_similarity(drifting, reference)
    assert similarity[0] == pytest.approx(1.0) and similarity[-1] < 0.8
    drift = identity_drift(similarity, window=10)
    assert drift["start"] > drift["end"] and drift["drift"] > 0.2


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = frechet_distance(a, a + 1.0)
    assert shifted == pytest.approx(8.0, rel=1e-3)  # |mean difference|² with equal covariances
    assert frechet_distance(a, rng.normal(size=(500, 8))) < 0.5 < frechet_distance(a, 2 * a)


def test_pearson_of_constant_track_is_zero():
    assert pearson(np.ones(5), np.arange(5)) == 0.0
