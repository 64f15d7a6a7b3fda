"""Official-layout folders: save/load round trip, the official config.json quirks, strict key checking."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from memo_model.models.diffusion_net import DiffusionNet
from memo_model.testing import write_random_tiny_weights
from memo_model.weights import CheckpointError, load_component, load_components, save_components
from tests.conftest import run_clip, tiny_inputs, wake_zero_init


@pytest.fixture
def folder(tiny, tmp_path):
    wake_zero_init(tiny["diffusion_net"])
    save_components(tiny, tmp_path)
    return tmp_path


def test_round_trip_gives_identical_outputs(tiny, folder):
    loaded = load_components(folder)
    assert sorted(loaded) == sorted(tiny)
    inputs = tiny_inputs(tiny)
    with torch.no_grad():
        torch.testing.assert_close(run_clip(loaded, inputs), run_clip(tiny, inputs), rtol=0, atol=0)


def test_layout_and_diffusers_from_pretrained(folder):
    assert (folder / "misc" / "audio_emotion_classifier" / "diffusion_pytorch_model.safetensors").is_file()
    net = DiffusionNet.from_pretrained(folder / "diffusion_net")
    assert isinstance(net, DiffusionNet) and net.config.block_out_channels == [32, 64]


def test_official_config_with_extra_and_hidden_keys_loads(tiny, folder):
    """The published config.json files name the original classes and carry keys the code never reads."""
    path = folder / "diffusion_net" / "config.json"
    config = json.loads(path.read_text())
    config.update(
        _class_name="UNet3DConditionModel",
        _diffusers_version="0.31.0",
        addition_embed_type=None,
        attention_type="default",
        conv_in_kernel=3,
        dropout=0.0,
        _center_input_sample=False,
        _out_channels=4,
        dual_cross_attention=False,
        unet_use_cross_frame_attention=False,
        unet_use_temporal_attention=False,
        class_embed_type=None,
    )
    path.write_text(json.dumps(config))
    ref_path = folder / "reference_net" / "config.json"
    ref_config = json.loads(ref_path.read_text())
    ref_config.update(
        _class_name="UNet2DConditionModel", _out_channels=4, out_channels=4, time_embedding_type="positional"
    )
    ref_path.write_text(json.dumps(ref_config))
    loaded = load_components(folder)
    inputs = tiny_inputs(tiny)
    with torch.no_grad():
        torch.testing.assert_close(run_clip(loaded, inputs), run_clip(tiny, inputs), rtol=0, atol=0)


def test_bare_official_config_means_official_defaults(tmp_path):
    """image_proj/audio_proj/classifier configs hold only class name and version: the defaults are the sizes."""
    (tmp_path / "image_proj").mkdir()
    (tmp_path / "image_proj" / "config.json").write_text(
        json.dumps({"_class_name": "ImageProjModel", "_diffusers_version": "0.31.0"})
    )
    official = {
        "proj.weight": torch.randn(3072, 512),
        "proj.bias": torch.randn(3072),
        "norm.weight": torch.ones(768),
        "norm.bias": torch.zeros(768),
    }
    save_file(official, tmp_path / "image_proj" / "diffusion_pytorch_model.safetensors")
    model = load_component(tmp_path, "image_proj")
    assert model(torch.randn(1, 512)).shape == (1, 4, 768)
    assert torch.equal(model.proj.weight, official["proj.weight"])


def test_unsupported_config_value_is_refused(folder):
    path = folder / "diffusion_net" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "dual_cross_attention": True}))
    with pytest.raises(CheckpointError, match="dual_cross_attention"):
        load_component(folder, "diffusion_net")


@pytest.mark.parametrize("damage", ["missing", "unexpected", "shape"])
def test_strict_key_checking_names_the_tensor(folder, damage):
    weights = folder / "image_proj" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    if damage == "missing":
        del state["norm.bias"]
        expected = "1 missing:\n    norm.bias"
    elif damage == "unexpected":
        state["extra.weight"] = torch.zeros(1)
        expected = "1 unexpected:\n    extra.weight"
    else:
        state["proj.weight"] = torch.zeros(3, 3)
        expected = "proj.weight: file (3, 3) vs model (64, 16)"
    save_file(state, weights)
    with pytest.raises(CheckpointError) as error:
        load_component(folder, "image_proj")
    assert expected in str(error.value)


def test_not_a_weights_folder(tmp_path):
    with pytest.raises(CheckpointError, match="lacks reference_net/"):
        load_components(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_components(tmp_path / "nope")


def test_only_safetensors_are_read(folder):
    weights = folder / "audio_proj" / "diffusion_pytorch_model.safetensors"
    weights.rename(folder / "audio_proj" / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="only safetensors"):
        load_component(folder, "audio_proj")


def test_emotion_classifier_is_optional(folder):
    import shutil

    shutil.rmtree(folder / "misc")
    assert "audio_emotion_classifier" not in load_components(folder)


def test_export_weights_writes_fp16_networks_that_load_back(tmp_path):

    from memo_model.weights import MANIFEST_NAME, export_weights, load_components

    source = write_random_tiny_weights(tmp_path / "source")
    written = export_weights(source, tmp_path / "target")
    assert written == ["audio_proj", "diffusion_net", "image_proj", "reference_net"]
    stored = load_file(tmp_path / "target" / "diffusion_net" / "diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in stored.values()} == {torch.float16}
    assert (tmp_path / "target" / MANIFEST_NAME).read_text() == (source / MANIFEST_NAME).read_text().rstrip() + "\n"
    original, exported = load_components(source), load_components(tmp_path / "target")
    assert "audio_emotion_classifier" not in exported
    for name in written:
        for (key, a), (_, b) in zip(
            original[name].state_dict().items(), exported[name].state_dict().items(), strict=True
        ):
            assert b.dtype == torch.float32, key  # loaded back in the pipeline's dtype
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), key


def test_memo_tiny_v2_in_training_loads_as_a_128_px_model():
    """assets/memo-tiny-v2 holds v2's latest trained networks (docs/TRAINING.md): a complete, loadable folder."""
    from pathlib import Path

    from memo_model.loading import load_pipeline

    pipeline = load_pipeline(Path(__file__).resolve().parents[2] / "assets" / "memo-tiny-v2", device="cpu")
    assert pipeline.model_info.resolution == 128 and pipeline.vae.config.latent_channels == 8
    assert pipeline.diffusion_net.config.temporal_norm_num_groups == 32 and pipeline.emotion_detector is not None
