"""`python -m memo_model` on the tiny random model: generate, detect-emotion, check-weights, clear failures."""

import json

import pytest

from memo_model.__main__ import main
from memo_model.vision.video_io import probe_media


def test_generate_writes_video_and_settings(weights, media, tmp_path, capsys):
    out = tmp_path / "talk.mp4"
    code = main([
        "generate", "--image", str(media / "portrait.png"), "--audio", str(media / "speech_0.5s.wav"),
        "--output", str(out), "--weights", str(weights), "--steps", "1", "--emotion", "happy", "--seed", "3",
        "--threads", "1",
    ])  # fmt: skip
    assert code == 0
    assert probe_media(out)["video_frames"] == 15
    settings = json.loads(out.with_suffix(".json").read_text())
    assert settings["seed"] == 3 and settings["emotions"]["used_per_clip"] == ["happy"]
    assert settings["threads"] == 1
    assert str(out) in capsys.readouterr().out


def test_generate_with_emotion_segments_file(weights, media, tmp_path):
    segments = tmp_path / "segments.json"
    segments.write_text(json.dumps({"segments": [{"start": 0.0, "end": 0.5, "label": "surprised"}]}))
    out = tmp_path / "talk.mp4"
    code = main([
        "generate", "--image", str(media / "portrait.png"), "--audio", str(media / "speech_0.5s.wav"),
        "--output", str(out), "--weights", str(weights), "--steps", "1", "--emotion-segments", str(segments),
    ])  # fmt: skip
    assert code == 0
    assert json.loads(out.with_suffix(".json").read_text())["emotions"]["used_per_clip"] == ["surprised"]


def test_detect_emotion_prints_segments_and_writes_json(weights, media, tmp_path, capsys):
    out = tmp_path / "segments.json"
    args = ["detect-emotion", "--audio", str(media / "speech_2s.wav"), "--weights", str(weights), "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "start" in printed and "emotion" in printed
    found = json.loads(out.read_text())
    assert found[0]["start"] == 0.0 and found[-1]["end"] >= 2.0


def test_check_weights_lists_components(weights, capsys):
    assert main(["check-weights", str(weights)]) == 0
    printed = capsys.readouterr().out
    for name in ("reference_net", "diffusion_net", "image_proj", "audio_proj", "audio_emotion_classifier"):
        assert name in printed


def test_without_bundled_weights_generate_says_so(media, tmp_path, capsys, monkeypatch):
    import memo_model.loading

    monkeypatch.setattr(memo_model.loading, "BUNDLED_WEIGHTS", tmp_path / "no-bundled-model")
    code = main([
        "generate", "--image", str(media / "portrait.png"), "--audio", str(media / "speech_0.5s.wav"),
        "--output", str(tmp_path / "x.mp4"),
    ])  # fmt: skip
    assert code == 2
    assert "bundled MEMO-Tiny model is not in this checkout" in capsys.readouterr().err


def test_offline_hub_id_fails_with_instructions(media, capsys):
    code = main([
        "generate", "--image", str(media / "portrait.png"), "--audio", str(media / "speech_0.5s.wav"),
        "--weights", "memo-studio-tests/no-such-repo",
    ])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "Could not download memo-studio-tests/no-such-repo" in err and "hf download" in err


def test_bad_input_gets_a_message_not_a_traceback(weights, media, tmp_path, capsys):
    code = main([
        "generate", "--image", str(tmp_path / "nope.png"), "--audio", str(media / "speech_0.5s.wav"),
        "--weights", str(weights),
    ])  # fmt: skip
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_threads_must_be_auto_or_a_positive_number(weights, media, capsys):
    with pytest.raises(SystemExit) as stop:
        main([
            "generate", "--image", str(media / "portrait.png"), "--audio", str(media / "speech_0.5s.wav"),
            "--weights", str(weights), "--threads", "0",
        ])  # fmt: skip
    assert stop.value.code == 2
    assert "expected 'auto' or a positive number, got '0'" in capsys.readouterr().err
