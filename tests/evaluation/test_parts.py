"""Each part of the evaluation on hand-made videos: held-out takes' own renders stand in for a perfect model, another
person's renders for a wrong one, so every number has a known answer."""

import numpy as np
import pytest
import torch

from memo_model.data.synthetic.analyzer import load_analyzer
from memo_model.data.synthetic.dataset_writer import DatasetSpec, read_metadata, write_dataset
from memo_model.evaluation.parts import (
    ABLATION_ORDER,
    Expression,
    Frechet,
    IdentityOverTime,
    LipSync,
    MemoryAblation,
    PortraitIdentity,
    Run,
    Take,
    Video,
    clip_segments,
    identity_over_time,
    per_clip_truth,
    request_segments,
    video_name,
    wrong_segments,
)
from memo_model.evaluation.scoring import expression_of, lip_sync_of
from memo_model.metrics import identity_similarity

RESOLUTION = 64  # MEMO-Tiny's; the takes are rendered at 128 px and brought down, as in the evaluation
NO_DETECTOR = (None, None)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two held-out takes of 2 s (different people) and a run whose only instrument is the shipped analyzer."""
    torch.set_num_threads(1)
    root = write_dataset(tmp_path_factory.mktemp("parts"), DatasetSpec.held_out(num_samples=2, seconds=(2.0, 2.0)))
    takes = [Take.from_row(row) for row in read_metadata(root)]
    run = Run(takes, None, {}, load_analyzer(), RESOLUTION, round_trip=lambda frames: frames)
    return run, takes


def with_videos(run: Run, takes: list[Take], long_take: Take | None = None, **videos: Video) -> Run:
    """The run over ``takes`` with ``videos`` keyed ``<take id>_<video>`` (as ``video_name`` spells them)."""
    return Run(takes, long_take, videos, run.analyzer, run.resolution, run.round_trip)


def per_clip_labels(take: Take) -> tuple[int, ...]:
    """What a perfect per-clip emotion detector finds in the take: each 16-frame clip's majority label."""
    return tuple(int(label) for label in per_clip_truth(take.truth, take.num_frames)[::16])


def test_lip_sync_follows_the_mouth_of_the_video(world):
    run, (own, other) = world
    perfect = with_videos(run, [own], **{video_name(own, "detected"): Video(run.real_frames(own), NO_DETECTOR)})
    scores = LipSync().score(perfect)
    row = scores.rows[own.id]["lipsync"]
    assert row == lip_sync_of(perfect.real_readings(own), own.labels["mouth_open"])
    assert row["correlation"] > 0.8 and abs(row["best_offset"]) <= 1
    assert scores.block == {**row, "videos": 1, "reference_track": "labels.mouth_open"}
    # Someone else's mouth does not follow this take's speech.
    wrong = with_videos(run, [own], **{video_name(own, "detected"): Video(run.real_frames(other), NO_DETECTOR)})
    assert LipSync().score(wrong).rows[own.id]["lipsync"]["correlation"] < row["correlation"] - 0.5
    unreported = LipSync(reported=False).score(perfect)
    assert unreported.block is None and unreported.rows == scores.rows


def test_portrait_identity_is_the_real_renders_for_a_perfect_model(world):
    run, (own, other) = world
    videos = {
        video_name(own, "detected"): Video(run.real_frames(own), NO_DETECTOR),
        video_name(other, "detected"): Video(run.real_frames(own), NO_DETECTOR),  # the wrong person
    }
    scores = PortraitIdentity().score(with_videos(run, [own, other], **videos))
    mine, theirs = scores.rows[own.id], scores.rows[other.id]
    assert (
        mine["reference_identity"] == pytest.approx(mine["reference_identity_real"])
        and mine["reference_identity"] > 0.5
    )
    assert theirs["reference_identity"] < theirs["reference_identity_real"] - 0.3
    to_portrait = scores.block["to_portrait"]
    assert to_portrait["generated"] == pytest.approx((mine["reference_identity"] + theirs["reference_identity"]) / 2)


def test_expression_of_a_perfect_model_meets_its_ceilings(world):
    run, (own, _) = world
    real = run.real_frames(own)
    videos = {
        video_name(own, "detected"): Video(real, per_clip_labels(own)),
        video_name(own, "override"): Video(real, per_clip_labels(own)),
        video_name(own, "wrong"): Video(real, per_clip_labels(own)),  # a model that ignored the wrong track
    }
    scores = Expression().score(with_videos(run, [own], **videos))
    row, block = scores.rows[own.id], scores.block
    ceilings = row["expression_ceilings"]
    assert ceilings["real_renders"] == expression_of(run.real_readings(own), own.truth) > 0.8
    assert ceilings["vae_round_trip"] == ceilings["real_renders"]  # the run's VAE is lossless
    assert row["expression_override"] == row["expression_wrong_vs_truth"] == ceilings["real_renders"]
    assert row["expression_wrong_vs_requested"] <= 1 - ceilings["real_renders"]  # no frame is both labels
    # A perfect detector is right wherever the per-clip labels are: its accuracy is that ceiling.
    assert row["detector_accuracy"] == pytest.approx(ceilings["per_clip_labels"])
    assert block["override"]["accuracy"] == row["expression_override"] and block["chance"] == 1 / 8
    assert block["detected"]["accuracy"] == row["expression_detected"] and scores.null_reasons == {}


def test_expression_without_a_detector_says_why_its_values_are_null(world):
    run, (own, _) = world
    real = run.real_frames(own)
    videos = {video_name(own, video): Video(real, NO_DETECTOR) for video in ("detected", "override", "wrong")}
    scores = Expression().score(with_videos(run, [own], **videos))
    assert scores.rows[own.id]["expression_detected"] is None and "detector_accuracy" not in scores.rows[own.id]
    assert scores.block["detected"] == {"accuracy": None, "detector_accuracy": None}
    assert set(scores.null_reasons) == {
        "samples.expression_detected",
        "expression.detected.accuracy",
        "expression.detected.detector_accuracy",
    }


def test_frechet_distance_is_zero_for_the_real_renders_themselves(world):
    run, (own, other) = world
    videos = {video_name(take, "detected"): Video(run.real_frames(take), NO_DETECTOR) for take in (own, other)}
    block = Frechet().score(with_videos(run, [own, other], **videos)).block
    assert block["content"] == pytest.approx(0, abs=1e-3) and block["texture"] == pytest.approx(0, abs=1e-4)
    assert block["generated_frames"] == block["real_frames"] == 120
    swapped = {video_name(own, "detected"): videos[video_name(own, "detected")]}
    swapped[video_name(other, "detected")] = Video(np.ascontiguousarray(run.real_frames(other)[:, ::-1]), NO_DETECTOR)
    assert Frechet().score(with_videos(run, [own, other], **swapped)).block["content"] > block["content"] + 1


def long_run(run: Run, own: Take, **modes: list[Take]) -> tuple[Run, Take]:
    """A long take of ``own``'s person; its video in each memory mode: the named takes' renders in a row."""
    long = Take("long_" + own.id, own.identity_seed, 0, own.reference, own.audio, own.labels)
    videos = {
        video_name(long, mode): Video(np.concatenate([run.real_frames(take) for take in takes]), NO_DETECTOR)
        for mode, takes in modes.items()
    }
    return with_videos(run, [], long, **videos), long


def test_identity_over_time_sees_the_person_change(world):
    run, (own, other) = world
    drifting, _ = long_run(run, own, full=[own, other])  # 2 s of the person, then 2 s of someone else
    block = IdentityOverTime(window_seconds=1.0, long_seconds=2.0).score(drifting).block
    assert block["first_window"] > 0.5 and block["drift"] > 0.3
    assert block["after_long"] == pytest.approx(block["by_window"][2]["mean"])
    assert (block["num_frames"], len(block["by_window"]), block["memory_mode"]) == (120, 4, "full")
    ended = IdentityOverTime(window_seconds=1.0, long_seconds=5.0).score(drifting)
    assert ended.block["after_long"] is None and set(ended.null_reasons) == {"identity.after_long", "identity.drift"}


def test_memory_ablation_scores_each_mode_and_explains_its_nulls(world):
    run, (own, other) = world
    ablation, long = long_run(run, own, reference=[other, other], recent=[own, other], full=[own, own])
    scores = MemoryAblation(window_seconds=1.0, long_seconds=2.0, command="rerun").score(ablation)
    block = scores.block
    assert block["order"] == list(ABLATION_ORDER) and list(block["modes"]) == list(ABLATION_ORDER)
    assert block["command"] == "rerun" and scores.null_reasons == {}
    means = [block["modes"][mode]["identity"]["mean"] for mode in ABLATION_ORDER]
    assert means[0] < means[1] < means[2]
    full = block["modes"]["full"]
    expected = identity_similarity(ablation.readings(long, "full")["identity"], ablation.portrait(long))
    assert full["identity"] == identity_over_time(expected, 30, 1.0, 2.0) and full["num_frames"] == 120
    assert full["lipsync"] == lip_sync_of(ablation.readings(long, "full"), own.labels["mouth_open"])
    # A reason names the exact place of each null value.
    ended = MemoryAblation(window_seconds=1.0, long_seconds=5.0, command="rerun").score(ablation)
    assert len(ended.null_reasons) == 6
    for path in ended.null_reasons:
        value = {"ablation": ended.block}
        for key in path.split("."):
            value = value[key]
        assert value is None, path


def test_per_clip_truth_gives_each_clip_its_majority_label():
    segments = [{"emotion": 1, "start_frame": 0, "end_frame": 10}, {"emotion": 2, "start_frame": 10, "end_frame": 40}]
    labels = per_clip_truth(segments, 40, clip_frames=16)
    np.testing.assert_array_equal(labels, [1] * 16 + [2] * 24)  # clip 0 has 10 frames of 1 and 6 of 2
    uncovered = per_clip_truth([{"emotion": 3, "start_frame": 4, "end_frame": 8}], 20, clip_frames=16)
    np.testing.assert_array_equal(uncovered, [3] * 16 + [-1] * 4)  # unlabelled frames do not vote


def test_override_tracks():
    truth = [{"emotion": 3, "label": "happy", "start_frame": 0, "end_frame": 30}]
    assert request_segments(truth) == ((0.0, 1.0, "happy"),)
    wrong = wrong_segments(truth)
    assert wrong[0]["emotion"] != 3 and wrong[0]["start_frame"] == 0 and wrong[0]["end_frame"] == 30
    assert clip_segments((1, 2), 20) == [
        {"emotion": 1, "start_frame": 0, "end_frame": 16},
        {"emotion": 2, "start_frame": 16, "end_frame": 20},
    ]
    assert clip_segments((None,), 16) is None


def test_identity_windows():
    similarity = np.concatenate([np.ones(60), np.zeros(60)])
    over_time = identity_over_time(similarity, fps=30, window_seconds=1.0, long_seconds=2.0)
    assert over_time["first_window"] == 1.0 and over_time["after_long"] == 0.0 and over_time["drift"] == 1.0
    assert [w["mean"] for w in over_time["by_window"]] == [1.0, 1.0, 0.0, 0.0]
    assert identity_over_time(similarity, 30, 1.0, 10.0)["after_long"] is None
