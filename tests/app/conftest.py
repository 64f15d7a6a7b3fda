"""One MEMO Studio launched for the app tests, with an untrained tiny model in the official layout.

The app runs exactly as ``python app.py`` does (``build_demo`` + ``launch``), on a free local port, with
``prevent_thread_lock=True`` so the tests can drive it through ``gradio_client`` and a real browser.
"""

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file

from memo_app import AppSettings, StudioService, build_demo, launch
from memo_app.emotion_panel import TABLE_HEADERS
from memo_app.form import FIELD_NAMES
from memo_app.runs import RunView
from memo_model.testing import write_random_tiny_weights

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"
MAX_AUDIO_SECONDS = 10.0  # small, so "over-long audio" is cheap to make
# What /preview and /generate return: the RunView's fields less the Cancel button and the run kept for the history
# (a button and a gr.State are no API outputs).
RUN_OUTPUTS = tuple(spec.name for spec in fields(RunView) if spec.name not in ("cancel", "saved"))


def shown(outputs) -> dict:
    """A run endpoint's outputs by name: ``shown(client.predict(..., api_name="/generate"))["status"]``."""
    return dict(zip(RUN_OUTPUTS, outputs, strict=True))


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    return write_random_tiny_weights(tmp_path_factory.mktemp("app_weights") / "tiny")


@pytest.fixture(scope="session")
def app(tmp_path_factory, weights):
    """(url, service) of the launched app; closed at the end of the session."""
    settings = AppSettings(
        weights=str(weights), output_dir=tmp_path_factory.mktemp("app_outputs"), max_audio_seconds=MAX_AUDIO_SECONDS
    )
    service = StudioService(settings)
    demo = build_demo(service)
    _, url, _ = launch(demo, service, prevent_thread_lock=True, quiet=True)
    yield url, service
    demo.close()


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Short clips cut from a bundled example, plus bad inputs of every kind."""
    folder = tmp_path_factory.mktemp("media")
    speech, rate = sf.read(EXAMPLES / "speech_1_happy_then_sad.wav", dtype="float32")
    files = {
        "portrait": EXAMPLES / "synthetic_person_1.png",
        "real_photo": EXAMPLES / "astronaut.jpg",
        "speech": EXAMPLES / "speech_1_happy_then_sad.wav",
        "short_speech": folder / "short.wav",
        "stereo_speech": folder / "stereo_44k.wav",  # the user's own rate and channels, kept in the mp4
        "silent": folder / "silent.wav",
        "too_long": folder / "too_long.wav",
        "not_audio": folder / "notes.wav",
        "not_image": folder / "notes.png",
        "faceless": folder / "grey.png",
    }
    sf.write(files["short_speech"], speech[: int(1.0 * rate)], rate)
    second = np.interp(np.arange(44_100) / 44_100, np.arange(rate) / rate, speech[:rate])  # 1 s at 44.1 kHz
    sf.write(files["stereo_speech"], np.stack([second, 0.5 * second], axis=1), 44_100)  # two different channels
    sf.write(files["silent"], np.zeros(rate, dtype=np.float32), rate)
    sf.write(files["too_long"], np.tile(speech, 3)[: int((MAX_AUDIO_SECONDS + 2) * rate)], rate)
    files["not_audio"].write_text("this is not audio")
    files["not_image"].write_text("this is not an image")
    from PIL import Image

    Image.new("RGB", (128, 128), (128, 128, 128)).save(files["faceless"])
    return files


def run_form_values(media, audio="short_speech", **changes) -> dict:
    """The run form's values by field name (``RunForm``'s fields, the parameters of the preview / generate /
    estimate endpoints) for the tiny model, one step; ``audio`` names one of ``media``."""
    values = {
        "image": handle_file(str(media["portrait"])),
        "audio": handle_file(str(media[audio])),
        "table": {"headers": TABLE_HEADERS, "data": []},
        "global_choice": "use detected",
        "emotion_strength": 3.5,
        "reference_guidance": 3.5,
        "audio_guidance": 3.5,
        "steps": 1,
        "seed": 7,
        "random_seed": False,
        "fps": 30,
        "resolution": 16,
        "past_frames": 16,
        "memory_decay": 0.9,
        "model_decay": True,
        "crop_scale": 1.8,
        "paste_back": True,
    }
    assert set(values) == set(FIELD_NAMES)  # every setting of the form, by its own name
    return {**values, **changes}


@pytest.fixture
def run_args(media):
    """``run_args(**changes)``: the run form's values for the short clip, with changes, sent by name:
    ``client.predict(**run_args(steps=2), api_name="/preview")``."""
    return lambda **changes: run_form_values(media, **changes)
