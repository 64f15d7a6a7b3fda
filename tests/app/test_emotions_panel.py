"""The Emotions panel through the launched app: choices from lists only, the precedence in words, clearing, a bad
edit that keeps the last good timeline, honest detection (top three with percentages) and the A/B preview."""

import json
import re

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from memo_app.emotion_panel import TABLE_HEADERS, EmotionPanel, top_emotions
from memo_app.runs import RunPanel
from memo_app.timeline import EMOTION_COLOURS, PIXEL_WIDTH, PLOT_LEFT, PLOT_RIGHT, draw_timeline, percent, seconds_at
from memo_model import EmotionOverrides
from memo_model.vision.video_io import probe_media

TOP_THREE = re.compile(r"^(?:[a-z]+ (?:\d+|<1|>99) %)(?: · [a-z]+ (?:\d+|<1|>99) %){2}$")


@pytest.fixture
def client(app) -> Client:
    """A fresh session per test: the segment list's choices are per session."""
    url, _ = app
    return Client(url, verbose=False)


@pytest.fixture
def analyzed(client, media):
    """(audio, table) of the 5 s bundled example, analyzed at 30 fps."""
    audio = handle_file(str(media["speech"]))
    _, table, _ = client.predict(audio, 30, "use detected", api_name="/analyze")
    return audio, table


def controls(client, table, global_choice="use detected", picked=1) -> dict:
    """What the panel shows after a change of the choices (the A/B button itself is no API output)."""
    segment, emotion, precedence, ab_note = client.predict(table, global_choice, picked, api_name="/emotion_controls")
    return {"segment": segment, "emotion": emotion, "precedence": precedence, "note": ab_note}


def ab_button_enabled(app, media, table, global_choice="use detected") -> bool:
    _, service = app
    _, _, button, _ = RunPanel(service).buttons(
        str(media["portrait"]), str(media["speech"]), table, global_choice, None
    )
    return button["interactive"]


# --- honest detection ---------------------------------------------------------------------------------------------


def test_each_segment_shows_the_detectors_top_three_with_percentages(client, media):
    _, table, summary = client.predict(handle_file(str(media["speech"])), 30, "use detected", api_name="/analyze")
    for _, _, detected, top, override in table["data"]:
        assert TOP_THREE.match(top), top
        assert top.split()[0] == detected and override == ""  # the winner first; nothing overridden yet
    assert "synthetic speech" in summary  # the test model counts as trained on synthetic data, like MEMO-Tiny


def test_percentages_never_claim_more_certainty_than_there_is():
    assert [percent(p) for p in (0.62, 1.0, 0.996, 0.004, 0.0)] == ["62 %", "100 %", ">99 %", "<1 %", "0 %"]
    shares = {"fearful": 0.62, "sad": 0.21, "neutral": 0.09, "happy": 0.08}
    assert top_emotions(shares) == "fearful 62 % · sad 21 % · neutral 9 %"
    assert top_emotions(None) == "—"


# --- choices from the lists, the precedence in words --------------------------------------------------------------


def test_a_segment_override_wins_over_the_whole_video_emotion_and_the_page_says_so(app, client, analyzed, media):
    audio, table = analyzed
    table = client.predict(table, 1, "sad", api_name="/set_segment")
    assert table["data"][0][4] == "sad"
    shown = controls(client, table, "happy")
    assert shown["precedence"].startswith(EmotionOverrides.PRECEDENCE)
    assert (
        "'happy' replaces the detected emotion of every clip except in your segments (sad 0.0-" in shown["precedence"]
    )
    assert shown["segment"]["choices"][0][0].endswith("→ sad") and shown["emotion"]["value"] == "sad"
    assert "A with the detected emotions, B with yours" in shown["note"]
    assert ab_button_enabled(app, media, table, "happy")
    plot, summary = client.predict(audio, 30, table, "happy", api_name="/update_timeline")
    first_segment_end = table["data"][0][1]
    assert summary.startswith(f"Clips will use: sad 0.0-{first_segment_end:.1f} s")


def test_choices_off_the_lists_are_refused_in_words(client, analyzed):
    _, table = analyzed
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(table, 1, "ecstatic", api_name="/set_segment")
    rows = len(table["data"])
    with pytest.raises(AppError, match=f"There is no segment 7; choose one of 1-{rows}"):
        client.predict(table, 7, "sad", api_name="/set_segment")
    with pytest.raises(AppError, match="Analyze the audio first"):
        client.predict({"headers": TABLE_HEADERS, "data": []}, None, "sad", api_name="/set_segment")


def test_a_bad_edit_keeps_the_last_good_timeline_and_says_so_once(client, analyzed):
    audio, table = analyzed
    bad = {"headers": TABLE_HEADERS, "data": [[3, 1, "", None, "sad"], *table["data"]]}
    plot, summary = client.predict(audio, 30, bad, "use detected", api_name="/update_timeline")
    assert plot == {"__type__": "update"}  # no new picture: the last good one stays
    assert summary.count("0 <= start < end") == 1 and "last choices that worked" in summary
    shown = controls(client, bad)
    assert shown["precedence"] == shown["note"] == {"__type__": "update"}  # the message is said once, above


def test_clear_overrides_goes_back_to_detection_and_disables_the_ab_preview(app, client, analyzed, media):
    audio, table = analyzed
    table = client.predict(table, 1, "sad", api_name="/set_segment")
    cleared, global_choice = client.predict(table, api_name="/clear_overrides")
    assert global_choice == "use detected" and all(row[4] == "" for row in cleared["data"])
    shown = controls(client, cleared)
    assert "No overrides: every clip uses its detected emotion." in shown["precedence"]
    assert "choose an emotion first" in shown["note"] and not ab_button_enabled(app, media, cleared)
    _, summary = client.predict(audio, 30, cleared, global_choice, api_name="/update_timeline")
    assert summary.startswith(f"Clips will use: {table['data'][0][2]} 0.0-")


# --- picking a segment by clicking it -----------------------------------------------------------------------------


def test_a_click_on_the_timeline_maps_to_the_time_drawn_there(tmp_path):
    """The boundary between two coloured segments in the drawn picture is where ``seconds_at`` says it is."""
    waveform = np.sin(np.linspace(0, 400, 4 * 16000)).astype(np.float32)
    segments = [
        {"start": 0.0, "end": 1.0, "label": "happy", "detected": "happy", "confidence": 0.9},
        {"start": 1.0, "end": 4.0, "label": "sad", "detected": "sad", "confidence": 0.8},
    ]
    picture = np.asarray(Image.open(draw_timeline(tmp_path / "t.png", waveform, 16000, segments)).convert("RGB"))
    assert picture.shape[1] == PIXEL_WIDTH
    strip = picture[12].astype(int)  # a row through the segment band, above the labels
    sad = np.array([int(EMOTION_COLOURS["sad"][i : i + 2], 16) for i in (1, 3, 5)])
    bluish = np.flatnonzero(strip[:, 2] - strip[:, 0] > (sad[2] - sad[0]) / 3)  # sad's band is the blue one
    assert seconds_at(bluish.min(), 4.0) == pytest.approx(1.0, abs=0.02)
    assert seconds_at(bluish.max(), 4.0) == pytest.approx(4.0, abs=0.02)
    assert seconds_at(PIXEL_WIDTH * PLOT_LEFT / 2, 4.0) is None  # the margin is no time
    assert seconds_at(PIXEL_WIDTH * (PLOT_RIGHT + 1) / 2, 4.0) is None  # nor is the legend


def test_a_click_picks_the_segment_under_it(app, media):
    import gradio as gr

    _, service = app
    panel = EmotionPanel(service)
    table = [[0.0, 2.5, "happy", "", ""], [2.5, 5.0, "sad", "", "angry"]]
    at = (PLOT_LEFT + 3.0 / 5.0 * (PLOT_RIGHT - PLOT_LEFT)) * PIXEL_WIDTH  # 3 s into the 5 s example
    clicked = gr.SelectData(None, {"index": [at, 40], "value": None})
    assert panel.pick_on_timeline(str(media["speech"]), 30, table, clicked) == (2, "angry")
    row = gr.SelectData(None, {"index": [0, 3], "value": None})
    assert panel.pick_row(table, row) == (1, "use detected")


# --- the A/B preview ----------------------------------------------------------------------------------------------


def test_ab_preview_renders_the_same_seconds_with_detected_and_with_your_emotions(app, client, analyzed, run_args):
    _, service = app
    _, table = analyzed
    with pytest.raises(AppError, match="choose an emotion for a segment or for the whole video first"):
        client.predict(**run_args(audio="speech", table=table), api_name="/ab_preview")

    table = client.predict(table, 1, "sad", api_name="/set_segment")
    detected, yours, status = client.predict(
        **run_args(audio="speech", table=table, random_seed=True), api_name="/ab_preview"
    )
    paths = [video["video"] if isinstance(video, dict) else video for video in (detected, yours)]
    durations = [probe_media(path)["duration"] for path in paths]
    assert durations == pytest.approx([3.2, 3.2], abs=0.05)  # the preview's 3 s in whole clips, both
    assert "**A · detected emotions:** Preview" in status and "**B · your emotions:** Preview" in status

    def settings(name: str) -> dict:
        return json.loads(max(service.settings.output_dir.rglob(f"*_{name}.json")).read_text())

    a, b = settings("ab-detected"), settings("ab-yours")
    emotion_keys = {"emotion", "emotion_segments", "output"}
    assert {k: v for k, v in a["request"].items() if k not in emotion_keys} == {
        k: v for k, v in b["request"].items() if k not in emotion_keys
    }  # the same seed (drawn at random for A), steps, guidance, audio and portrait
    assert a["request"]["emotion_segments"] == [] and b["request"]["emotion_segments"][0][2] == "sad"
    assert a["emotions"]["used_per_clip"] == a["emotions"]["detected_per_clip"]  # A: detection alone
    assert b["emotions"]["used_per_clip"][0] == "sad"
