"""``score_video``: one video read with the shipped analyzer; the metrics separate matched from mismatched inputs."""

from pathlib import Path

import pytest
import torch

from memo_model.data.synthetic.analyzer import load_analyzer, score_video
from memo_model.data.synthetic.dataset_writer import DatasetSpec, read_metadata, write_dataset
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.data.synthetic.sample import make_sample

FIRST_IDENTITY = HELD_OUT_SEED_START + 800_000  # a held-out block used only by the scoring tests


@pytest.fixture(scope="module")
def analyzer():
    torch.set_num_threads(1)
    return load_analyzer()


@pytest.fixture(scope="module")
def samples():
    return [make_sample(FIRST_IDENTITY + i, 10 + i, 240) for i in range(2)]


def test_matched_video_scores_well_and_mismatches_score_badly(analyzer, samples):
    own, other = samples
    matched = score_video(own.frames, own.audio, own.labels, own.reference, analyzer=analyzer)
    assert matched["lip_sync_reference"] == "labels"
    assert matched["lip_sync"]["correlation"] >= 0.9 and abs(matched["lip_sync"]["best_offset"]) <= 1
    assert matched["expression_accuracy"] >= 0.9

    wrong_audio = score_video(own.frames, labels={"mouth_open": other.labels["mouth_open"]}, analyzer=analyzer)
    assert abs(wrong_audio["lip_sync"]["correlation"]) < 0.25

    wrong_emotions = score_video(own.frames, requested_segments=other.labels["segments"], analyzer=analyzer)
    assert wrong_emotions["expression_accuracy"] < 0.5

    wrong_person = score_video(own.frames, reference=other.reference, analyzer=analyzer)
    assert wrong_person["identity"]["mean"] < matched["identity"]["mean"] - 0.3


def test_audio_only_lip_sync(analyzer, samples):
    own, other = samples
    with_audio = score_video(own.frames, audio=own.audio, analyzer=analyzer)
    assert with_audio["lip_sync_reference"] == "audio"
    assert with_audio["lip_sync"]["correlation"] > 0.7
    assert abs(score_video(own.frames, audio=other.audio, analyzer=analyzer)["lip_sync"]["correlation"]) < 0.3


def test_scoring_an_mp4_from_the_dataset(analyzer, tmp_path: Path):
    root = write_dataset(tmp_path / "ds", DatasetSpec.held_out(num_samples=1, seconds=(3.0, 3.0), size=128))
    row = next(read_metadata(root))
    scores = score_video(row["video"], row["audio"], row["labels"], row["reference"], analyzer=analyzer)
    assert scores["num_frames"] == row["num_frames"]
    assert scores["lip_sync"]["correlation"] > 0.85  # through H.264 compression
