"""The History panel and what a run leaves to download: file names that say what they hold, settings files without
server paths, the run buttons that can act, and the gradio_client script of docs/APP.md run against the app."""

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np

from memo_app.display import segment_list
from memo_app.form import RunForm
from memo_app.history import HistoryPanel, emotion_words, file_names_only, keep_run, run_name
from memo_app.runs import RunPanel

ROOT = Path(__file__).resolve().parents[2]


def test_file_names_say_portrait_emotion_and_seed():
    assert run_name("/tmp/gradio/abc/astronaut.jpg", "happy", 42) == "astronaut_happy_seed42"
    assert run_name("my photo (2).PNG", "sad", 7, "preview") == "my-photo-2_sad_seed7_preview"
    assert emotion_words([{"label": "happy"}, {"label": "sad"}, {"label": "happy"}]) == "happy-sad"
    assert emotion_words([{"label": name} for name in ("happy", "sad", "angry")]) == "mixed"


def test_a_settings_file_keeps_file_names_only():
    data = {
        "request": {"image": "/srv/app/uploads/astronaut.jpg", "audio": "speech.wav", "seed": 42},
        "model": {"source": "/home/someone/weights/memo-tiny"},
        "warnings": ["The video's sound comes from '/tmp/gradio/x/voice.m4a' as read", "1/2 of the clips"],
    }
    assert file_names_only(data) == {
        "request": {"image": "astronaut.jpg", "audio": "speech.wav", "seed": 42},
        "model": {"source": "memo-tiny"},
        "warnings": ["The video's sound comes from 'voice.m4a' as read", "1/2 of the clips"],
    }


def test_after_a_cancel_no_segment_starts_after_its_end():
    segments = [{"label": "happy", "start": 0.0, "end": 1.1}, {"label": "sad", "start": 1.1, "end": 2.1}]
    assert segment_list(segments, until=0.5) == "happy 0.0-0.5 s"
    assert segment_list(segments, until=1.1) == "happy 0.0-1.1 s"
    assert segment_list(segments) == "happy 0.0-1.1 s, sad 1.1-2.1 s"


def test_a_finished_run_is_kept_with_its_thumbnail_and_listed_newest_first(app, media):
    _, service = app
    form = RunForm(image=str(media["real_photo"]), audio=str(media["short_speech"]), global_choice="happy", steps=1,
                   seed=3, resolution=16)  # fmt: skip
    request = RunPanel(service).build_request(form, preview=False)
    result = service.pipeline(request)
    saved = keep_run(result, "", np.zeros((16, 16, 3), np.uint8))
    assert [Path(path).name for path in saved.files] == [
        "astronaut_happy_seed3.mp4",
        "astronaut_happy_seed3-crop.mp4",
        "astronaut_happy_seed3.json",
    ]
    assert all(Path(path).is_file() for path in saved.files) and Path(saved.thumbnail).is_file()
    assert not Path(result.settings_path).exists() or Path(result.settings_path) == Path(saved.settings)
    assert saved.caption == "astronaut · happy · seed 3 · 1 step · 1.0 s · 256×256"

    panel = HistoryPanel()
    history, gallery, files, details = panel.remember(saved, [])
    later = keep_run(service.pipeline(request.replace(seed=4)), "preview", np.zeros((16, 16, 3), np.uint8))
    history, gallery, files, details = panel.remember(later, history)
    assert [label for _, label in gallery] == ["happy · seed 4", "happy · seed 3"]
    assert files == later.files and "seed 4" in details

    import gradio as gr

    files, details = panel.pick(history, gr.SelectData(None, {"index": 1, "value": None}))
    assert files == saved.files and "seed 3" in details


def test_run_buttons_act_only_when_they_can(app, media):
    _, service = app
    buttons = RunPanel(service).buttons
    portrait, speech = str(media["portrait"]), str(media["speech"])
    preview, generate, ab, cancel = buttons(None, speech, None, "use detected", None)
    assert not preview["interactive"] and not generate["interactive"] and not cancel["interactive"]
    preview, generate, ab, cancel = buttons(portrait, speech, None, "use detected", None)
    assert preview["interactive"] and generate["interactive"] and not ab["interactive"]
    _, _, ab, _ = buttons(portrait, speech, None, "happy", None)
    assert ab["interactive"]
    service.start_job("local")  # a run of this tab goes on: only Cancel can act
    try:
        preview, generate, ab, cancel = buttons(portrait, speech, None, "happy", None)
        assert cancel["interactive"] and not (preview["interactive"] or generate["interactive"] or ab["interactive"])
    finally:
        service.end_job("local")


def test_the_gradio_client_script_in_docs_runs_against_the_app(app, monkeypatch):
    url, _ = app
    text = ROOT.joinpath("docs", "APP.md").read_text()
    script = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    assert 'Client("http://127.0.0.1:7860/")' in script
    monkeypatch.chdir(ROOT)  # the script names the bundled examples from the repository's root
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(script.replace("http://127.0.0.1:7860/", url), "docs/APP.md", "exec"), {})
    out = printed.getvalue()
    assert "Generate: **about" in out and "finished" in out and "astronaut_happy_seed42.mp4" in out, out
    settings = json.loads(Path(re.search(r"\S+astronaut_happy_seed42\.json", out).group(0)).read_text())
    assert settings["request"]["image"] == "astronaut.jpg"
