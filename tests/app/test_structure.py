"""The app's shape: no torch in memo_app, no model means a clear message (inputs still work), app.py is small."""

import ast
from pathlib import Path

import pytest

from memo_app import AppSettings, StudioService
from memo_app.emotion_panel import EmotionPanel
from memo_app.form import RunForm
from memo_app.model_panel import MODEL_FIELDS, ModelPanel
from memo_app.portrait_panel import PortraitPanel
from memo_app.runs import RunPanel, preview_label
from memo_app.service import NO_MODEL_MESSAGE
from memo_app.speech_panel import SpeechPanel

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "memo_app").glob("*.py")) + [ROOT / "app.py"], ids=lambda p: p.name)
def test_app_never_imports_torch(path):
    assert "torch" not in imported_modules(path)


def test_app_py_is_small():
    assert len(ROOT.joinpath("app.py").read_text().splitlines()) <= 20


def test_readme_is_a_space_with_app_py():
    front = ROOT.joinpath("README.md").read_text().split("---")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front


def test_without_a_model_inputs_work_and_generation_explains(tmp_path, monkeypatch):
    import memo_model.loading

    monkeypatch.setattr(memo_model.loading, "BUNDLED_WEIGHTS", tmp_path / "no-bundled-model")
    service = StudioService(AppSettings(output_dir=tmp_path / "out"))
    assert service.pipeline is None and NO_MODEL_MESSAGE in ModelPanel(service).model_status()
    examples = ROOT / "assets" / "examples"
    face, crop, notes = PortraitPanel(service).inspect_portrait(str(examples / "synthetic_person_2.png"), 1.8)
    assert face is not None and "One face found" in notes
    assert "Duration **4.0 s**" in SpeechPanel(service).inspect_audio(str(examples / "speech_2_angry.wav"))
    _, table, summary = EmotionPanel(service).analyze(str(examples / "speech_2_angry.wav"), 30, "use detected")
    assert "detection is unavailable" in summary and table[0][2] == "—"
    with pytest.raises(Exception, match="No model is loaded"):
        next(RunPanel(service).run(RunForm(), preview=True, session="test"))


def test_the_preview_button_names_the_active_models_preview_steps(tmp_path):
    import json

    from memo_model.loading import MANIFEST_NAME
    from memo_model.testing import write_random_tiny_weights

    plain = write_random_tiny_weights(tmp_path / "plain")
    quick = write_random_tiny_weights(tmp_path / "quick")
    manifest = json.loads((quick / MANIFEST_NAME).read_text())
    (quick / MANIFEST_NAME).write_text(json.dumps({**manifest, "preview_steps": 1}))
    service = StudioService(AppSettings(weights=str(quick), output_dir=tmp_path / "out"))
    assert preview_label(service) == "Preview (first 3 s, 1 step)"
    _, button, *_ = ModelPanel(service).load_model(str(plain))
    assert button["value"] == "Preview (first 3 s, 8 steps)"  # loading a model relabels the button


def test_loading_a_model_sets_the_sliders_to_its_defaults_and_a_failure_keeps_them(tmp_path):
    import json

    from memo_model.loading import MANIFEST_NAME
    from memo_model.testing import write_random_tiny_weights

    first = write_random_tiny_weights(tmp_path / "first")
    second = write_random_tiny_weights(tmp_path / "second")
    manifest = json.loads((second / MANIFEST_NAME).read_text())
    (second / MANIFEST_NAME).write_text(json.dumps({**manifest, "default_guidance": 1.5, "default_steps": 7}))
    service = StudioService(AppSettings(weights=str(first), output_dir=tmp_path / "out"))
    before = service.default_guidance(), service.default_steps()
    assert before != (1.5, 7)
    sliders = ("emotion_strength", "reference_guidance", "audio_guidance", "steps")
    _, _, *updates = ModelPanel(service).load_model(str(second))
    loaded = dict(zip(MODEL_FIELDS, updates, strict=True))
    assert [loaded[name]["value"] for name in sliders] == [1.5, 1.5, 1.5, 7]
    status, _, *updates = ModelPanel(service).load_model(str(tmp_path / "missing"))
    kept = dict(zip(MODEL_FIELDS, updates, strict=True))
    assert "Could not load" in status
    assert all("value" not in kept[name] for name in sliders)  # the user's values stay
