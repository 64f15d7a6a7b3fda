"""The face analyzer: save/load round trip, and the shipped weights on freshly rendered held-out people."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from memo_model.data.synthetic.analyzer import (
    DEFAULT_ANALYZER_DIR,
    AnalyzerConfig,
    FaceAnalyzer,
    analyze_frames,
    load_analyzer,
    save_analyzer,
)
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.data.synthetic.sample import make_sample
from memo_model.tiny.analyzer import best_threshold, identity_pairs, r_squared, verification_accuracy

TEST_IDENTITIES = HELD_OUT_SEED_START + 900_000  # held-out block used only by this test


def test_save_load_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    model = FaceAnalyzer(AnalyzerConfig(image_size=32, channels=(8, 8, 16), feature_dim=16, embedding_dim=8)).eval()
    frames = make_sample(0, 0, 3, size=64).frames
    before = analyze_frames(model, frames)
    loaded = load_analyzer(save_analyzer(model, tmp_path / "analyzer"))
    after = analyze_frames(loaded, frames)
    for key in before:
        np.testing.assert_allclose(before[key], after[key], rtol=1e-5, atol=1e-6)
    assert after["identity"].shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(after["identity"], axis=1), 1.0, atol=1e-5)


def test_missing_weights_explain_how_to_train(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="train-analyzer"):
        load_analyzer(tmp_path)


def test_shipped_analyzer_is_small():
    assert (DEFAULT_ANALYZER_DIR / "model.safetensors").stat().st_size < 5 * 2**20
    json.loads((DEFAULT_ANALYZER_DIR / "config.json").read_text())


def test_shipped_analyzer_reads_held_out_people():
    torch.set_num_threads(1)
    analyzer = load_analyzer()
    predicted, truth, expression, emotion = [], [], [], []
    for i in range(3):
        sample = make_sample(TEST_IDENTITIES + i, i, 150)
        readings = analyze_frames(analyzer, sample.frames)
        predicted.append(readings["mouth_open"])
        truth.append(np.array(sample.labels["mouth_open"]))
        expression.append(readings["expression"])
        emotion.append(np.array(sample.labels["emotion"]))
    assert r_squared(np.concatenate(predicted), np.concatenate(truth)) >= 0.93
    assert np.mean(np.concatenate(expression) == np.concatenate(emotion)) >= 0.95

    threshold = best_threshold(*identity_pairs(analyzer, 0, 40, seed=3))  # chosen on training identities
    same, different = identity_pairs(analyzer, TEST_IDENTITIES, 40, seed=3)
    assert verification_accuracy(same, different, threshold) >= 0.95
