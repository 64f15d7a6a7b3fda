"""MEMO-Tiny audio emotion detector head (memo_model/tiny/emotion_head.py, paper appendix E.2): a tiny run
resumes and saves a loadable head, folding the standardisation is exact, and the shipped head recognises
held-out speakers."""

import csv
from pathlib import Path

import torch

from memo_model.audio.emotion import LOG_MEL_STATISTICS_DIM
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.models.emotion_classifier import AudioEmotionClassifier
from memo_model.tiny.emotion_head import (
    TINY_CLASSIFIER_CONFIG,
    fold_standardisation,
    train_emotion,
    window_features,
)

SHIPPED = Path(__file__).resolve().parents[2] / "assets" / "memo-tiny" / "misc" / "audio_emotion_classifier"
SHIPPED_MIN_ACCURACY = 0.8  # on 48 fresh held-out windows; docs/TRAINING.md records the full evaluation


def test_train_emotion_runs_resumes_and_saves(tmp_path):
    tiny = {"per_emotion": 2, "talks": 1, "num_speakers": 10, "batch_size": 8, "checkpoint_every": 2, "log_every": 2}
    train_emotion(tmp_path, steps=4, end_to_end_samples=0, **tiny)
    report = train_emotion(tmp_path, steps=6, resume=True, end_to_end_samples=1, **tiny)

    with open(tmp_path / "log.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == [2, 4, 6]
    assert report["steps"] == 6 and report["train_windows"] == 16 + 6  # 6 detector windows per talk
    assert 0 <= report["end_to_end"]["clip_accuracy"] <= 1
    classifier = AudioEmotionClassifier.from_pretrained(tmp_path / "classifier")
    assert classifier.config.num_classifier_layers == 5 and classifier.config.input_dim == LOG_MEL_STATISTICS_DIM


def test_folding_the_standardisation_into_fc1_is_exact():
    torch.manual_seed(0)
    classifier = AudioEmotionClassifier(**TINY_CLASSIFIER_CONFIG)
    features = torch.randn(5, LOG_MEL_STATISTICS_DIM) * 3 - 7
    mean, std = features.mean(0), features.std(0)
    expected = classifier.logits((features - mean) / std)
    fold_standardisation(classifier, mean, std)
    torch.testing.assert_close(classifier.logits(features), expected, rtol=1e-4, atol=1e-4)


def test_shipped_head_recognises_held_out_speakers():
    classifier = AudioEmotionClassifier.from_pretrained(SHIPPED).eval()
    features, labels = window_features(HELD_OUT_SEED_START + 900_000, 1000, per_emotion=6, seed=11)
    with torch.no_grad():
        predicted = classifier.logits(torch.from_numpy(features)).argmax(-1).numpy()
    assert (predicted == labels).mean() >= SHIPPED_MIN_ACCURACY
