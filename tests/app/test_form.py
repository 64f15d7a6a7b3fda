"""The run form (memo_app/form.py): one typed list of the run settings, RunForm ↔ GenerationRequest."""

from pathlib import Path

import pytest
from gradio_client import Client

from memo_app.form import FIELD_NAMES, RunForm
from memo_model.pipelines.request import GenerationRequest

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"


def test_a_form_survives_the_round_trip_through_a_request(tmp_path):
    form = RunForm(
        image=str(EXAMPLES / "synthetic_person_1.png"),
        audio=str(EXAMPLES / "speech_2_angry.wav"),
        table=[[0.0, 1.5, "", None, "sad"]],
        global_choice="happy",
        emotion_strength=1.0,
        reference_guidance=2.0,
        audio_guidance=3.0,
        steps=3,
        seed=5,
        fps=25,
        resolution=16,
        past_frames=8,
        memory_decay=0.8,
        model_decay=False,
        crop_scale=2.0,
    )
    request = form.to_request(output=tmp_path / "out.mp4", max_audio_seconds=10.0)
    assert request.emotions.global_label == "happy" and request.memory_decay == 0.8 and request.emotion_guidance == 1.0
    assert RunForm.from_request(request, steps=20, guidance=3.5, memory_decay=0.9) == form


def test_what_a_request_leaves_to_the_model_is_shown_as_the_models():
    loaded = RunForm.from_request(GenerationRequest("a.png", "b.wav"), steps=7, guidance=1.5, memory_decay=0.95)
    assert (loaded.steps, loaded.emotion_strength, loaded.memory_decay, loaded.model_decay) == (7, 1.5, 0.95, True)
    assert (loaded.global_choice, loaded.table, loaded.random_seed) == ("use detected", [], False)


def test_a_missing_widget_is_named():
    with pytest.raises(ValueError, match="portrait"):
        RunForm.widgets([])


def test_the_run_endpoints_take_the_form_by_its_field_names(app):
    url, _ = app
    endpoints = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/preview", "/generate", "/estimate"):
        assert tuple(p["parameter_name"] for p in endpoints[name]["parameters"]) == FIELD_NAMES
