"""MEMO Studio through gradio_client: the same handlers the buttons call, on the launched app."""

import json
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from memo_app.form import RESTORED
from memo_app.model_panel import MODEL_FIELDS
from memo_model.testing import write_random_tiny_weights
from memo_model.vision.video_io import probe_media


@pytest.fixture(scope="module")
def client(app) -> Client:
    url, _ = app
    return Client(url, verbose=False)


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def test_every_event_has_an_api_name(client):
    endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    expected = {
        "/inspect_portrait",
        "/inspect_audio",
        "/analyze",
        "/update_timeline",
        "/set_global_emotion",
        "/set_segment",
        "/preview",
        "/generate",
        "/cancel",
        "/load_settings",
        "/load_model",
        "/model_status",
        "/estimate",
    }
    assert expected <= endpoints
    assert not any(name.startswith("/lambda") or name.startswith("/fn") for name in endpoints)


def test_model_panel_names_the_active_weights(client, app, weights):
    status = client.predict(api_name="/model_status")
    assert "tiny-random" in status and str(weights) in status and "cpu" in status and "float32" in status


def test_portrait_shows_face_box_crop_and_honest_warnings(client, media):
    face, crop, notes = client.predict(handle_file(str(media["portrait"])), 1.8, api_name="/inspect_portrait")
    assert Path(face).is_file() and Path(crop).is_file()
    assert "One face found" in notes and "synthetic" not in notes  # our own example: no real-photo note
    _, _, notes = client.predict(handle_file(str(media["real_photo"])), 1.8, api_name="/inspect_portrait")
    assert "trained only on synthetic" in notes


def test_analyze_override_and_generate_a_bundled_example(client, media, run_args):
    audio = handle_file(str(media["speech"]))
    info = client.predict(audio, api_name="/inspect_audio")
    assert "5.0 s" in info and "limit 10 s" in info
    plot, table, summary = client.predict(audio, 30, "use detected", api_name="/analyze")
    assert Path(plot).is_file() and table["data"] and "segment" in summary
    assert table["data"][0][2] != "—"  # the tiny model has a detector: a detected label

    table = client.predict(table, 1, "sad", api_name="/set_segment")
    assert table["data"][0][4] == "sad"
    plot, used = client.predict(audio, 30, table, "use detected", api_name="/update_timeline")
    assert Path(plot).is_file() and "sad" in used

    values = run_args(table=table, audio="speech")
    video, clips, status, settings, seed = client.predict(**values, api_name="/generate")
    assert "finished" in status and seed == 7 and len(clips) == 10  # 5 s at 30 fps = 10 clips of 16 frames
    info = probe_media(video_path(video))
    assert info["has_video"] and info["has_audio"] and info["playable"]
    assert info["duration"] == pytest.approx(5.0, abs=0.1) and info["audio_duration"] == pytest.approx(5.0, abs=0.1)
    saved = json.loads(Path(settings).read_text())
    assert saved["request"]["emotion_segments"][0][2] == "sad"
    assert set(saved["emotions"]["used_per_clip"]) == {"sad"}


def test_the_timeline_shows_the_plan_a_run_uses(app, media):
    """The Emotions panel's timeline and a run of the same choices come from one plan (pipelines/emotions.py):
    the same clips, detected and used labels, with the segment override winning over the global emotion."""
    from memo_app.emotion_panel import TABLE_HEADERS, EmotionPanel, emotion_overrides
    from memo_app.form import RunForm
    from memo_app.runs import RunPanel

    _, service = app
    audio, table = str(media["short_speech"]), {"headers": TABLE_HEADERS, "data": [[0.6, 1.0, "", None, "Sad"]]}
    _, shown = EmotionPanel(service).timeline(service.analysis(audio, 30), emotion_overrides("happy", table))
    form = RunForm(
        image=str(media["portrait"]), audio=audio, table=table, global_choice="happy", emotion_strength=1.0,
        reference_guidance=1.0, audio_guidance=1.0, steps=1, seed=7, fps=30, resolution=16,
    )  # fmt: skip
    request = RunPanel(service).build_request(form, preview=False)
    result = service.pipeline(request)
    assert list(result.clip_emotions.timeline) == shown
    assert [s["label"] for s in shown] == ["happy", "sad"]  # 2 clips: centres 0.27 s and 0.77 s
    assert result.clip_emotions.to_dict()["used_per_clip"] == ["happy", "sad"]


def test_preview_is_short_and_random_seed_is_echoed(client, media, run_args):
    video, _, status, _, seed = client.predict(
        **run_args(audio="speech", random_seed=True, steps=20), api_name="/preview"
    )
    assert "Preview (3.2 s, 8 steps)" in status  # 3 s rounded up to whole clips: 6 x 16 frames at 30 fps
    assert seed != 7 and 0 <= seed < 2**31
    info = probe_media(video_path(video))
    assert info["duration"] == pytest.approx(3.2, abs=0.05) and info["has_audio"]


def test_time_estimate_before_a_run_names_steps_and_passes_and_is_quiet_without_inputs(client, media, run_args):
    import re

    def seconds(text: str, which: str) -> int:
        minutes, secs = re.search(which + r" \*\*(?:(\d+) min )?(\d+) s\*\*", text).groups()
        return int(minutes or 0) * 60 + int(secs)

    few = client.predict(**run_args(audio="speech", steps=2), api_name="/estimate")
    many = client.predict(**run_args(audio="speech", steps=40), api_name="/estimate")
    assert "clips × 40 steps" in many and "2 guidance passes" in many  # equal scales: 2 passes
    assert seconds(many, "full video") >= seconds(few, "full video")  # the tiny model: ms per step, rounded
    assert seconds(many, "preview") <= seconds(many, "full video")  # 3 s of the 5 s example, 8 steps
    assert client.predict(**run_args(audio="speech", image=None), api_name="/estimate") == ""


def test_settings_json_restores_the_controls(client, media, run_args):
    _, _, _, settings, _ = client.predict(**run_args(steps=3, seed=1234), api_name="/generate")
    *values, status = client.predict(handle_file(settings), api_name="/load_settings")
    restored = dict(zip(RESTORED, values, strict=True))
    assert (restored["steps"], restored["seed"], restored["random_seed"]) == (3, 1234, False)
    assert "Settings loaded" in status


def test_cancel_stops_within_a_step_and_keeps_the_partial_video(client, media, run_args):
    job = client.submit(**run_args(audio="speech", steps=40), api_name="/generate")
    deadline = time.time() + 120
    while time.time() < deadline and not any(len(output[1]) >= 1 for output in job.outputs()):
        time.sleep(0.2)  # wait for the first finished clip
    assert client.predict(api_name="/cancel").startswith("Cancelling")
    video, clips, status, _, _ = job.result(timeout=120)
    assert "Cancelled" in status and 1 <= len(clips) < 10
    info = probe_media(video_path(video))
    assert info["playable"] and info["has_audio"] and 0 < info["duration"] < 5.0


def test_loading_missing_weights_keeps_the_active_model(client):
    status, *_ = client.predict("/no/such/weights", api_name="/load_model")
    assert "does not exist" in status and "tiny-random" in status


SLIDERS = ("emotion_strength", "reference_guidance", "audio_guidance", "steps")


def test_loading_a_model_moves_the_guidance_and_steps_sliders_to_its_defaults(client, weights, tmp_path):
    from memo_model.loading import MANIFEST_NAME

    other = write_random_tiny_weights(tmp_path / "other")
    manifest = json.loads((other / MANIFEST_NAME).read_text())
    (other / MANIFEST_NAME).write_text(json.dumps({**manifest, "default_guidance": 1.5, "default_steps": 7}))
    try:
        _, *updates = client.predict(str(other), api_name="/load_model")  # the Preview button is no API output
        sliders = dict(zip(MODEL_FIELDS, updates, strict=True))
        assert [sliders[name].get("value") for name in SLIDERS] == [1.5, 1.5, 1.5, 7]
    finally:  # the other tests share this app: give it its model back
        _, *updates = client.predict(str(weights), api_name="/load_model")
    assert dict(zip(MODEL_FIELDS, updates, strict=True))["steps"]["value"] != 7
