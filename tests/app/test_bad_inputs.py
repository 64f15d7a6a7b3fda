"""Every bad input gets a readable message, and the app stays usable afterwards."""

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from memo_app.form import RunForm
from memo_app.runs import RunPanel
from memo_model.errors import InputError


@pytest.fixture(scope="module")
def client(app) -> Client:
    url, _ = app
    return Client(url, verbose=False)


def still_usable(client, media) -> None:
    assert "1.0 s" in client.predict(handle_file(str(media["short_speech"])), api_name="/inspect_audio")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_audio", "could not be read as audio"),
        ("silent", "is silent"),
        ("too_long", "longer than the 10 s limit"),
    ],
)
def test_bad_audio_is_explained(client, media, name, message, run_args):
    assert message in client.predict(handle_file(str(media[name])), api_name="/inspect_audio")
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(media[name])), 30, "use detected", api_name="/analyze")
    with pytest.raises(AppError, match=message):
        client.predict(**run_args(audio=name), api_name="/preview")
    still_usable(client, media)


def test_non_image_and_faceless_image(client, media, run_args):
    with pytest.raises(AppError, match="'notes.png' is not an image we can read"):
        client.predict(handle_file(str(media["not_image"])), 1.8, api_name="/inspect_portrait")
    with pytest.raises(AppError, match="is not an image"):
        client.predict(**run_args(image=handle_file(str(media["not_image"]))), api_name="/preview")
    _, _, notes = client.predict(handle_file(str(media["faceless"])), 1.8, api_name="/inspect_portrait")
    assert "No face found" in notes
    still_usable(client, media)


OUT_OF_RANGE = "must be between|greater than maximum|less than minimum"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 1000}, OUT_OF_RANGE),
        ({"emotion_strength": -1}, OUT_OF_RANGE),
        ({"seed": -5}, OUT_OF_RANGE),
        ({"fps": 500}, OUT_OF_RANGE),
        ({"past_frames": 0}, OUT_OF_RANGE),
        ({"resolution": 64}, "works at 16 px only|not in the list of choices"),
        ({"global_choice": "ecstatic"}, "ecstatic"),
        ({"table": {"headers": ["a", "b", "c", "d", "e"], "data": [[3, 1, "", None, "sad"]]}}, "before end"),
        ({"table": {"headers": ["a", "b", "c", "d", "e"], "data": [[0, 1, "", None, "grumpy"]]}}, "Unknown emotion"),
    ],
)
def test_out_of_range_values_sent_through_the_api(client, media, changes, message, run_args):
    with pytest.raises(AppError, match=message):
        client.predict(**run_args(**changes), api_name="/generate")
    still_usable(client, media)


def test_bad_settings_file(client, media, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(AppError, match="could not be read as JSON"):
        client.predict(handle_file(str(broken)), api_name="/load_settings")
    typo = tmp_path / "typo.json"
    typo.write_text('{"image": "a.png", "audio": "b.wav", "stepz": 3}')
    with pytest.raises(AppError, match="Unknown setting"):
        client.predict(handle_file(str(typo)), api_name="/load_settings")
    still_usable(client, media)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 1000}, "Denoising steps must be between 1 and 100"),
        ({"emotion_strength": -1}, "Emotion strength must be between 0 and 10"),
        ({"seed": 2.5}, "Seed must be a whole number"),
        ({"crop_scale": None}, "Crop scale must be a number"),
        ({"global_choice": "ecstatic"}, "Unknown emotion 'ecstatic'"),
    ],
)
def test_handlers_check_values_themselves(app, media, changes, message):
    """Past the widgets' own checks (a script calling the service), the request's validation still speaks."""
    _, service = app
    values = {"image": str(media["portrait"]), "audio": str(media["short_speech"]), "steps": 1, "seed": 7}
    form = RunForm(**{**values, "resolution": 16, **changes})  # the official defaults otherwise (guidance 3.5)
    with pytest.raises(InputError, match=message):
        RunPanel(service).build_request(form, preview=True)
