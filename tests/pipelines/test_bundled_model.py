"""The bundled MEMO-Tiny: `load_pipeline()` defaults to it and the CLI generates from a bundled example with it."""

import json
from pathlib import Path

from memo_model.__main__ import main
from memo_model.loading import BUNDLED_WEIGHTS, MANIFEST_NAME, load_pipeline
from memo_model.vision.video_io import probe_media

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"


def test_bundled_weights_are_memo_tiny_in_the_official_layout():
    manifest = json.loads((BUNDLED_WEIGHTS / MANIFEST_NAME).read_text())
    assert manifest["name"] == "MEMO-Tiny" and manifest["resolution"] == 64
    for component in ("reference_net", "diffusion_net", "image_proj", "audio_proj", "vae",
                      "misc/audio_emotion_classifier"):  # fmt: skip
        assert (BUNDLED_WEIGHTS / component / "config.json").is_file(), component
    size = sum(path.stat().st_size for path in BUNDLED_WEIGHTS.rglob("*") if path.is_file())
    assert size < 30e6, f"assets/memo-tiny is {size / 1e6:.1f} MB"
    pipeline = load_pipeline(device="cpu")
    assert pipeline.model_info.source == "bundled" and pipeline.emotion_detector is not None


def test_cli_generates_from_a_bundled_example_with_the_default_model(tmp_path, capsys):
    output = tmp_path / "person_1.mp4"
    code = main([
        "generate", "--image", str(EXAMPLES / "synthetic_person_1.png"),
        "--audio", str(EXAMPLES / "speech_1_happy_then_sad.wav"), "--preview-seconds", "1", "--steps", "2",
        "--output", str(output),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    media = probe_media(output)
    assert media["has_video"] and media["has_audio"] and media["playable"]
    assert abs(media["duration"] - 1.0) < 0.15
    settings = json.loads(output.with_suffix(".json").read_text())
    assert settings["model"]["name"] == "MEMO-Tiny" and settings["resolution"] == 64


def test_bundled_model_moves_the_mouth_with_the_speech(tmp_path):
    """On a person and a voice it never trained on, the generated mouth opening follows the speech's ground-truth
    mouth track in time (stage 2 alone, before the lip-sync fine-tune, read r ≈ 0 here)."""
    from memo_model.evaluation.evaluate import EvaluationConfig, evaluate

    pipeline = load_pipeline(device="cpu")
    config = EvaluationConfig(output=tmp_path, samples=1, seconds=3.0, steps=10, seed=1, parts=("lipsync",))
    lipsync = evaluate(pipeline, config, log=lambda _: None)["lipsync"]
    assert lipsync["correlation"] >= 0.6, lipsync
    assert abs(lipsync["best_offset"]) <= 1, lipsync
