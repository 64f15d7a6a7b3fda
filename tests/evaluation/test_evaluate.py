"""The evaluation (paper §5, Table 2 ablation) end to end on the untrained tiny model: structure, not quality."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memo_model.data.synthetic.analyzer import load_analyzer
from memo_model.data.synthetic.dataset_writer import read_metadata, read_video
from memo_model.errors import InputError
from memo_model.evaluation.evaluate import (
    PARTS,
    EvaluationConfig,
    choose_parts,
    evaluate,
    generation_request,
    planned_videos,
    reproduce_command,
)
from memo_model.evaluation.parts import (
    ABLATION_ORDER,
    Expression,
    Frechet,
    IdentityOverTime,
    LipSync,
    MemoryAblation,
    PortraitIdentity,
    Take,
    request_segments,
    wrong_segments,
)
from memo_model.evaluation.report import markdown_table, write_report
from memo_model.evaluation.scoring import expression_of, read_frames
from memo_model.loading import load_pipeline
from memo_model.metrics import identity_similarity
from memo_model.pipelines.emotions import EmotionOverrides
from memo_model.testing import write_random_tiny_weights

TRUTH = [{"emotion": 3, "label": "happy", "start_frame": 0, "end_frame": 30}]


def _numbers_or_explained_nulls(value, path: str, reasons: dict) -> None:
    """Every leaf is a finite number, a string or a bool; every None has a reason under its dotted path."""
    if isinstance(value, dict):
        for key, item in value.items():
            _numbers_or_explained_nulls(item, f"{path}.{key}" if path else key, reasons)
    elif isinstance(value, list):
        for item in value:
            _numbers_or_explained_nulls(item, path, reasons)
    elif value is None:
        assert path in reasons, f"{path} is null without a reason"
    elif isinstance(value, float):
        assert math.isfinite(value), path


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("evaluation")
    pipeline = load_pipeline(write_random_tiny_weights(folder / "weights"), device="cpu")
    config = EvaluationConfig(
        output=folder / "run", samples=1, seconds=1.0, long_seconds=1.0, window_seconds=0.5, steps=1, seed=3
    )
    result = evaluate(pipeline, config, log=lambda _: None)
    return config, result, write_report(result, config.output)


def test_every_documented_key_is_a_finite_number(evaluation):
    config, result, _ = evaluation
    assert set(PARTS) <= set(result)
    for key in ("correlation", "best_offset", "best_correlation", "confidence"):
        assert math.isfinite(result["lipsync"][key])
    assert isinstance(result["lipsync"]["best_offset"], int)
    expression = result["expression"]
    for value in (
        expression["detected"]["accuracy"],
        expression["detected"]["detector_accuracy"],
        expression["override"]["accuracy"],
        expression["wrong_override"]["accuracy_vs_requested"],
        expression["wrong_override"]["accuracy_vs_ground_truth"],
        *expression["ceilings"].values(),
    ):
        assert 0.0 <= value <= 1.0
    assert set(expression["ceilings"]) == {"real_renders", "vae_round_trip", "per_clip_labels"}
    # The real-render ceiling is the analyzer reading the take's own video at the model's resolution.
    row = next(read_metadata(config.output / "data"))
    truth = json.loads(Path(row["labels"]).read_text())["segments"]
    real = read_frames(read_video(row["video"]), load_analyzer(), result["model"]["resolution"])
    assert expression["ceilings"]["real_renders"] == pytest.approx(expression_of(real, truth))
    for key in ("first_window", "after_long", "drift"):
        assert math.isfinite(result["identity"][key])
    # Identity to the portrait: the real renders of the same person read as that person (the ceiling), an untrained
    # model's frames much less; both are the analyzer's cosine similarity to the portrait.
    to_portrait = result["identity"]["to_portrait"]
    portrait = np.asarray(Image.open(row["reference"]).convert("RGB"))
    reference = read_frames(portrait[None], load_analyzer(), result["model"]["resolution"])["identity"][0]
    real_similarity = identity_similarity(real["identity"], reference).mean()
    assert to_portrait["real_renders"] == pytest.approx(real_similarity)
    assert to_portrait["real_renders"] > 0.5 and to_portrait["generated"] < to_portrait["real_renders"]
    assert result["frechet"]["content"] >= 0 and result["frechet"]["texture"] >= 0
    assert result["frechet"]["generated_frames"] == result["frechet"]["real_frames"] == 30
    measured = {key: result[key] for key in (*PARTS, "samples")}
    _numbers_or_explained_nulls(measured, "", result["null_reasons"])


def test_ablation_has_the_three_modes_with_identity_and_lip_sync(evaluation):
    config, result, _ = evaluation
    ablation = result["ablation"]
    assert ablation["order"] == ["reference", "recent", "full"]
    assert set(ablation["modes"]) == {"reference", "recent", "full"}
    expected_frames = round((config.long_seconds + config.window_seconds) * 30)
    for mode in ablation["modes"].values():
        assert mode["num_frames"] == expected_frames
        assert math.isfinite(mode["identity"]["after_long"]) and math.isfinite(mode["lipsync"]["correlation"])
        assert len(mode["identity"]["by_window"]) == 3
    # The identity part reads the full-memory long video.
    assert result["identity"]["first_window"] == ablation["modes"]["full"]["identity"]["first_window"]
    assert "--parts ablation" in ablation["command"] and "--long-seconds 1" in ablation["command"]


def test_report_files_render(evaluation):
    config, result, (json_path, markdown_path) = evaluation
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(result))
    text = markdown_path.read_text()
    assert text == markdown_table(result)
    for needle in ("| Lip-sync best offset", "Expression ceilings", "Fréchet distance, texture", "Full memory"):
        assert needle in text
    assert reproduce_command(config) in text
    for mode in ("reference", "recent", "full"):
        assert (config.output / "videos" / f"long_s000000_{mode}.mp4").is_file()


def test_each_choice_of_parts_runs_the_parts_it_names():
    def chosen(*names):
        return choose_parts(EvaluationConfig(output="x", parts=names, window_seconds=1.0, long_seconds=3.0))

    everything = chosen(*PARTS)
    assert [type(part) for part in everything] == [
        LipSync,
        PortraitIdentity,
        Expression,
        Frechet,
        IdentityOverTime,
        MemoryAblation,
    ]
    assert everything[0].reported and (everything[4].window_seconds, everything[4].long_seconds) == (1.0, 3.0)
    assert "--parts ablation --output x" in everything[5].command and "--samples 1" in everything[5].command
    # Any part reading the held-out takes brings their rows' lip-sync and identity to the portrait, not the lip-sync
    # block; the long-video parts alone read no take.
    assert chosen("expression") == [LipSync(reported=False), PortraitIdentity(), Expression()]
    assert chosen("frechet", "lipsync") == [LipSync(), PortraitIdentity(), Frechet()]
    assert chosen("ablation", "identity") == [everything[4], everything[5]]


def test_the_plan_generates_each_video_once_in_a_fixed_order(tmp_path):
    takes = [
        Take(f"s{i:06d}", 1_000_000 + i, 30, "portrait.png", f"s{i}.wav", {"segments": TRUTH, "mouth_open": []})
        for i in range(2)
    ]
    long = Take("long_s000000", 1_000_000, 90, "portrait.png", "long.wav", {"segments": [], "mouth_open": []})
    everything = planned_videos(choose_parts(EvaluationConfig(output="x")), takes, long)
    assert list(everything) == [
        *(f"s{i:06d}_{video}" for i in range(2) for video in ("detected", "override", "wrong")),
        *(f"long_s000000_{mode}" for mode in ABLATION_ORDER),
    ]
    take, changes = everything["s000001_wrong"]
    assert take is takes[1] and changes == {
        "emotions": EmotionOverrides(segments=request_segments(wrong_segments(TRUTH)))
    }
    assert everything["s000000_override"][1] == {"emotions": EmotionOverrides(segments=((0.0, 1.0, "happy"),))}
    assert everything["s000000_detected"][1] == {} and everything["long_s000000_recent"][1] == {
        "memory_mode": "recent"
    }

    def names(*parts):
        config = EvaluationConfig(output="x", parts=parts)
        return list(planned_videos(choose_parts(config), takes, long))

    assert names("lipsync", "frechet") == ["s000000_detected", "s000001_detected"]
    assert names("identity") == ["long_s000000_full"]
    request = generation_request(
        EvaluationConfig(output="x", guidance=(1.0, 2.0, 3.0)), take, tmp_path / "v.mp4", changes
    )
    assert (request.image, request.audio, request.emotion_guidance) == ("portrait.png", "s1.wav", 3.0)


def test_cli_parses_the_documented_options():
    import argparse

    from memo_model.evaluation.cli import add_evaluate_parser

    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["evaluate", "--samples", "2", "--long-seconds", "30", "--parts", "identity,ablation", "--output", "x"]
    )
    assert (args.samples, args.long_seconds, args.parts) == (2, 30.0, ("identity", "ablation"))
    assert parser.parse_args(["evaluate", "--output", "x"]).parts == PARTS
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--parts", "lipsync,fid", "--output", "x"])
    assert parser.parse_args(["evaluate", "--output", "x"]).guidance is None  # the model's defaults
    scales = parser.parse_args(["evaluate", "--guidance", "1.5", "1.5", "3", "--output", "x"]).guidance
    assert scales == [1.5, 1.5, 3.0]
    config = EvaluationConfig(output="x", guidance=tuple(scales))
    assert "--guidance 1.5 1.5 3" in reproduce_command(config)
    with pytest.raises(InputError, match="guidance"):
        EvaluationConfig(output="x", guidance=(1.0, -1.0, 1.0)).validate()


def test_worker_processes_give_the_same_videos_as_one_process(tmp_path):
    """--workers N generates in spawned processes that load the weights themselves; same seeds, same numbers."""
    torch.set_num_threads(1)
    weights = write_random_tiny_weights(tmp_path / "weights")
    pipeline = load_pipeline(weights, device="cpu")
    results = {}
    for workers in (1, 2):
        config = EvaluationConfig(
            output=tmp_path / f"run{workers}",
            samples=1,
            seconds=1.0,
            steps=1,
            seed=5,
            weights=str(weights),
            device="cpu",
            workers=workers,
            parts=("lipsync", "expression"),
        )
        results[workers] = evaluate(pipeline, config, log=lambda _: None)
    one, two = results[1]["samples"][0], results[2]["samples"][0]
    for key in ("lipsync", "expression_override", "expression_wrong_vs_requested", "reference_identity"):
        assert one[key] == pytest.approx(two[key], abs=1e-6), key
    name = one["id"]
    assert set(results[2]["timings_seconds"]) == {f"{name}_{run}" for run in ("detected", "override", "wrong")} | {
        "total"
    }
    assert "--workers 2" in results[2]["command"]
