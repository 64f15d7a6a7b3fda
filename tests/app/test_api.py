"""MEMO Studio through gradio_client: the same handlers the buttons call, on the launched app."""

import json
import re
import time
from pathlib import Path

import pytest
from conftest import shown
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
        "/ab_preview",
        "/pick_run",
    }
    assert expected <= endpoints
    assert not any(name.startswith("/lambda") or name.startswith("/fn") for name in endpoints)


def test_every_output_is_named(client):
    """A script reads each endpoint's outputs by their labels: none is Gradio's anonymous "value_65"."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    unnamed = {
        name: [output["label"] for output in info["returns"]]
        for name, info in endpoints.items()
        if any(not output["label"] or output["label"].startswith("value_") for output in info["returns"])
    }
    assert not unnamed


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
    run = shown(client.predict(**values, api_name="/generate"))
    assert "finished" in run["status"] and run["seed"] == 7 and len(run["clips"]) == 10  # 5 s at 30 fps: 10 clips
    info = probe_media(video_path(run["video"]))
    assert info["has_video"] and info["has_audio"] and info["playable"]
    assert info["duration"] == pytest.approx(5.0, abs=0.1) and info["audio_duration"] == pytest.approx(5.0, abs=0.1)
    saved = json.loads(Path(run["settings"]).read_text())
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
    run = shown(client.predict(**run_args(audio="speech", random_seed=True, steps=20), api_name="/preview"))
    assert "Preview (3.2 s, 8 steps)" in run["status"]  # 3 s rounded up to whole clips: 6 x 16 frames at 30 fps
    assert run["seed"] != 7 and 0 <= run["seed"] < 2**31
    info = probe_media(video_path(run["video"]))
    assert info["duration"] == pytest.approx(3.2, abs=0.05) and info["has_audio"]
    assert (
        Path(video_path(run["video"])).name == f"synthetic-person-1_{emotions_of(run)}_seed{run['seed']}_preview.mp4"
    )


def emotions_of(run: dict) -> str:
    """The emotions a run's settings file says it used, as its file names say them ("happy", "happy-sad")."""
    used = json.loads(Path(run["settings"]).read_text())["emotions"]["used_per_clip"]
    return "-".join(dict.fromkeys(used))


def about_seconds(text: str) -> int:
    """The seconds in "about 1 min 05 s", "about 9 s left", "Took 12 s"."""
    minutes, secs = re.search(r"(?:(\d+) min )?(\d+) s\b", text).groups()
    return int(minutes or 0) * 60 + int(secs)


def test_the_estimate_names_steps_and_passes_and_is_quiet_without_inputs(client, media, run_args):
    few, size = client.predict(**run_args(audio="speech", steps=2), api_name="/estimate")
    many, _ = client.predict(**run_args(audio="speech", steps=40), api_name="/estimate")
    assert few.startswith("Generate: **about ") and "10 clips × 40 steps, 2 guidance passes" in many  # equal scales
    assert about_seconds(many) >= about_seconds(few)  # the tiny model: ms per step, rounded
    assert size == "Output: **16×16** (crop: the crop covers the whole photo)"  # the face fills the example
    assert client.predict(**run_args(audio="speech", image=None), api_name="/estimate") == ("", "")


def test_one_time_on_screen_estimate_then_time_left_then_time_taken(client, media, run_args, monkeypatch):
    """Before: "about N s"; during: "about N s left" (the estimate weighed against the pipeline's own ETA); after:
    the time taken, learned from (a finished run corrects the next estimates)."""
    import memo_app.runs

    learned = []
    monkeypatch.setattr(memo_app.runs, "learn", lambda pipeline, estimate, seconds: learned.append(seconds))
    job = client.submit(**run_args(audio="speech", steps=4), api_name="/generate")
    final = shown(job.result(timeout=300))
    during = [shown(outputs)["time"] for outputs in job.outputs()[:-1]]
    assert during and all(isinstance(time, dict) or "left**" in time or "finishing" in time for time in during)
    assert any(isinstance(time, str) and "left**" in time for time in during)
    assert final["time"].startswith("Took **") and "ETA" not in final["status"]
    assert len(learned) == 1 and learned[0] > 0


def test_seconds_left_trusts_the_pipeline_more_as_the_run_goes_on():
    from memo_app.runs import seconds_left
    from memo_model.pipelines.pipeline_memo import Progress

    start = Progress(clip=0, num_clips=10, step=1, num_steps=10, elapsed=2.0, eta=500.0)
    assert seconds_left(100.0, start) == pytest.approx(0.01 * 500 + 0.99 * 98)
    end = Progress(clip=9, num_clips=10, step=10, num_steps=10, elapsed=90.0, eta=0.0)
    assert seconds_left(100.0, end) == 0.0


def test_settings_json_restores_the_controls(client, media, run_args):
    run = shown(client.predict(**run_args(steps=3, seed=1234), api_name="/generate"))
    *values, status = client.predict(handle_file(run["settings"]), api_name="/load_settings")
    restored = dict(zip(RESTORED, values, strict=True))
    assert (restored["steps"], restored["seed"], restored["random_seed"]) == (3, 1234, False)
    assert Path(restored["image"]).name == "synthetic_person_1.png"  # our own example, found by its name
    assert "Settings loaded" in status


def test_paste_back_gives_the_portraits_size_with_the_users_audio_and_the_crop_downloadable(app, client, media,
                                                                                          run_args):  # fmt: skip
    """The 256 px photo animated at 16 px: pasted back, the mp4 is 256×256 and the crop alone 16×16, both with the
    44.1 kHz stereo speech as it was uploaded; the files are named after portrait, emotion and seed; the settings
    file holds file names only."""
    _, service = app
    photo = handle_file(str(media["real_photo"]))
    values = run_args(image=photo, audio="stereo_speech", global_choice="happy", seed=42)
    _, before = client.predict(**values, api_name="/estimate")
    assert before.startswith("Output: **256×256** (whole portrait")
    run = shown(client.predict(**values, api_name="/generate"))
    assert run["output"].startswith("Output: **256×256** (whole portrait")
    video, crop = probe_media(video_path(run["video"])), probe_media(run["crop_video"])
    assert (video["width"], video["height"], crop["width"], crop["height"]) == (256, 256, 16, 16)
    for info in (video, crop):
        assert (info["audio_sample_rate"], info["audio_channels"]) == (44_100, 2)
    names = [Path(path).name for path in (video_path(run["video"]), run["crop_video"], run["settings"])]
    assert names == [f"astronaut_happy_seed42{end}" for end in (".mp4", "-crop.mp4", ".json")]
    text = Path(run["settings"]).read_text()
    assert str(service.settings.output_dir) not in text and '"/' not in text  # no path of the server

    _, off = client.predict(**{**values, "paste_back": False}, api_name="/estimate")
    assert off == "Output: **16×16** (crop: paste-back is off)"
    run = shown(client.predict(**{**values, "paste_back": False}, api_name="/generate"))
    assert run["crop_video"] is None and probe_media(video_path(run["video"]))["width"] == 16
    assert probe_media(video_path(run["video"]))["audio_sample_rate"] == 44_100


def test_cancel_stops_within_a_step_and_keeps_the_partial_video(client, media, run_args):
    job = client.submit(**run_args(audio="speech", steps=40), api_name="/generate")
    deadline = time.time() + 120
    while time.time() < deadline and not any(len(shown(output)["clips"]) >= 1 for output in job.outputs()):
        time.sleep(0.2)  # wait for the first finished clip
    assert client.predict(api_name="/cancel").startswith("Cancelling")
    run = shown(job.result(timeout=120))
    assert "Cancelled" in run["status"] and 1 <= len(run["clips"]) < 10
    assert run["time"].startswith("Stopped after")
    info = probe_media(video_path(run["video"]))
    assert info["playable"] and info["has_audio"] and 0 < info["duration"] < 5.0
    for start, end in re.findall(r"(\d+\.\d)-(\d+\.\d) s", run["status"]):
        assert float(start) < float(end)  # no segment past the end of what was made
    assert Path(video_path(run["video"])).name.endswith("_seed7-partial.mp4")


def test_a_cancel_before_any_clip_says_so(client, media, run_args):
    job = client.submit(**run_args(audio="speech", steps=100), api_name="/generate")
    deadline = time.time() + 120
    while time.time() < deadline and not job.outputs():
        time.sleep(0.05)  # the run has started: it prepares the portrait, audio and emotions
    assert client.predict(api_name="/cancel").startswith("Cancelling")
    run = shown(job.result(timeout=120))
    assert run["video"] is None and run["clips"] == [] and "no clip had finished" in run["status"]
    assert "0.0-0.0" not in run["status"] and "Emotions used" not in run["status"]


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
