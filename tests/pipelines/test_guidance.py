"""Three-scale guidance: the plan, the combination, and its equivalence with the official single scale."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from memo_model.loading import MANIFEST_NAME, load_pipeline
from memo_model.pipelines.estimate import estimate_time
from memo_model.pipelines.guidance import PASSES, combine, guidance_plan
from memo_model.pipelines.request import GenerationRequest
from memo_model.testing import write_random_tiny_weights


def test_equal_scales_need_two_passes_and_equal_official_cfg():
    plan = guidance_plan(3.5, 3.5, 3.5)
    assert [p.name for p, _ in plan] == ["unconditional", "full"]
    uncond, cond = torch.randn(2, 3, 4)
    guided = combine(torch.stack([uncond, cond]), [c for _, c in plan])
    torch.testing.assert_close(guided, uncond + 3.5 * (cond - uncond))


@pytest.mark.parametrize("scales", [(2.0, 3.0, 1.5), (1.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)])
def test_skipping_zero_passes_equals_computing_them(scales):
    predictions = torch.randn(4, 5)  # one per nested condition
    plan = guidance_plan(*scales)
    full = (1 - scales[0], scales[0] - scales[1], scales[1] - scales[2], scales[2])
    expected = combine(predictions, list(full))
    kept = torch.stack([predictions[PASSES.index(p)] for p, _ in plan])
    torch.testing.assert_close(combine(kept, [c for _, c in plan]), expected)
    assert abs(sum(c for _, c in plan) - 1.0) < 1e-9  # a prediction with every condition equal is unchanged


def test_nested_formula():
    e0, e_ref, e_audio, e_full = torch.randn(4, 7)
    s_ref, s_audio, s_emo = 2.0, 3.0, 1.5
    plan = guidance_plan(s_ref, s_audio, s_emo)
    guided = combine(torch.stack([e0, e_ref, e_audio, e_full]), [c for _, c in plan])
    expected = e0 + s_ref * (e_ref - e0) + s_audio * (e_audio - e_ref) + s_emo * (e_full - e_audio)
    torch.testing.assert_close(guided, expected)


def model_with_defaults(tmp_path, **defaults):
    """The tiny random model with ``defaults`` added to its manifest, and a request on a flat face and noise."""
    weights = write_random_tiny_weights(tmp_path / "weights")
    manifest = json.loads((weights / MANIFEST_NAME).read_text())
    (weights / MANIFEST_NAME).write_text(json.dumps({**manifest, **defaults}))
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(tmp_path / "face.png")
    sf.write(tmp_path / "speech.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 16000)
    request = GenerationRequest(image=tmp_path / "face.png", audio=tmp_path / "speech.wav", crop_to_face=False)
    return load_pipeline(weights, device="cpu"), request


def test_unset_scales_take_the_models_default_guidance(tmp_path):
    """A manifest's ``default_guidance`` fills the scales a request leaves unset; explicit scales win."""
    pipeline, base = model_with_defaults(tmp_path, default_guidance=1.0)
    assert pipeline.model_info.default_guidance == 1.0
    base = base.replace(steps=1)
    for name, changes, scales, passes in (
        ("default", {}, [1.0, 1.0, 1.0], ["full"]),
        ("explicit", {"audio_guidance": 2.0}, [1.0, 2.0, 1.0], ["reference", "reference+audio", "full"]),
    ):
        result = pipeline(base.replace(output=tmp_path / f"{name}.mp4", **changes))
        sidecar = json.loads(result.settings_path.read_text())
        assert list(sidecar["guidance"].values()) == scales, name
        assert [p["pass"] for p in sidecar["guidance_passes"]] == passes, name


def test_unset_steps_take_the_models_default_steps(tmp_path):
    """A manifest's ``default_steps`` is what a request without ``steps`` runs, its ``preview_steps`` what a
    preview without ``preview_steps`` runs (at most the run's steps); explicit values win."""
    pipeline, base = model_with_defaults(tmp_path, default_steps=3, preview_steps=2)
    assert (pipeline.model_info.default_steps, pipeline.model_info.preview_steps) == (3, 2)
    assert base.steps is None and base.effective_steps() == 20  # without a model: the official 20
    assert base.replace(preview_seconds=1.0).effective_steps() == 8  # and a preview's 8
    for name, changes, steps in (
        ("default", {}, 3),
        ("explicit", {"steps": 2}, 2),
        ("preview", {"preview_seconds": 0.5}, 2),
        ("preview, explicit", {"preview_seconds": 0.5, "preview_steps": 1}, 1),
        ("preview, fewer steps", {"preview_seconds": 0.5, "steps": 1}, 1),
    ):
        request = base.replace(output=tmp_path / f"{name}.mp4", **changes)
        steps_seen = []
        pipeline(request, callback=lambda progress, seen=steps_seen: seen.append(progress.num_steps))
        assert set(steps_seen) == {steps}, name
        assert estimate_time(pipeline, request, 0.5).steps == steps, name
