"""Training smoke tests on the tiny preset: each stage runs, resumes, trains only its parameters, and runs
distributed under `accelerate launch` with 2 CPU processes (gloo)."""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from memo_model.audio.features import MelFeatures
from memo_model.config import load_yaml, to_dict
from memo_model.data.dataset import TalkingFaceDataset, cache_audio_features
from memo_model.data.synthetic.dataset_writer import DatasetSpec, write_dataset
from memo_model.loading import load_pipeline
from memo_model.testing import tiny_vae
from memo_model.training.train import TrainConfig, main_from_args, train
from memo_model.vision.face import ThumbnailEmbedder
from memo_model.weights import load_components

MELS = 8
MANIFEST = {
    "name": "train-smoke",
    "resolution": 16,
    "fps": 30,
    "audio_features": {"kind": "mel", "n_mels": MELS, "n_fft": 512},
    "identity": {"kind": "thumbnail", "size": 4},
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = write_dataset(root / "data", DatasetSpec(num_samples=2, seconds=(1.0, 1.2), size=32, seed=1))
    assert cache_audio_features(data, MelFeatures(n_mels=MELS, n_fft=512)) == 2
    torch.manual_seed(0)
    tiny_vae().save_pretrained(root / "vae")
    return root


def config(setup, output, stage="stage1", max_steps=2, init_from=None, **extra) -> TrainConfig:
    data = {"root": str(setup / "data"), "resolution": 16, "clip_frames": 4, "past_frames": [2, 3]}
    model = {
        "vae": str(setup / "vae"),
        "init_from": init_from,
        "preset": "tiny",
        "overrides": {"audio_proj": {"blocks": 1, "channels": MELS}, "image_proj": {"clip_embeddings_dim": 16}},
        "manifest": MANIFEST,
    }
    raw = {"output_dir": str(output), "stage": stage, "data": data, "model": model, "max_steps": max_steps,
           "checkpoint_every": 1, "log_every": 1, "learning_rate": 1e-3,
           "spike_filter_start": 100, **extra}  # fmt: skip
    path = output.parent / f"{output.name}.yaml"
    output.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return load_yaml(TrainConfig, path)


def logged_steps(output: Path) -> list[int]:
    with (output / "log.csv").open() as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def test_dataset_items_have_the_documented_shapes(setup):
    dataset = TalkingFaceDataset(
        setup / "data", resolution=16, clip_frames=4, max_past_frames=3, identity_embedder=ThumbnailEmbedder(4)
    )
    item = dataset[0]
    assert item["pixels"].shape == (4, 3, 16, 16) and item["past_pixels"].shape == (3, 3, 16, 16)
    assert item["audio_features"].shape == (4, 5, 1, MELS)
    assert item["pixels"].min() >= -1 and item["pixels"].max() <= 1
    assert 0 <= int(item["emotion"]) < 9


def test_cached_frames_give_the_same_items_without_decoding_again(setup, monkeypatch):
    import memo_model.data.dataset as dataset_module

    kwargs = dict(resolution=16, clip_frames=4, max_past_frames=3, identity_embedder=ThumbnailEmbedder(4))
    plain = TalkingFaceDataset(setup / "data", **kwargs)
    cached = TalkingFaceDataset(setup / "data", cache_frames=True, **kwargs)
    decoded = []
    original = dataset_module.decode_video
    monkeypatch.setattr(dataset_module, "decode_video", lambda *a: decoded.append(a) or original(*a))
    for epoch in range(3):
        plain.epoch = cached.epoch = epoch
        for index in range(len(plain)):
            a, b = plain[index], cached[index]
            assert all(torch.equal(a[key], b[key]) for key in a)
    assert len(decoded) == 3 * len(plain) + len(plain)  # the plain dataset every time, the cached one once


def _without_references(source: Path, target: Path) -> Path:
    """A copy of the dataset whose rows have no reference image (the reference is then a frame of the video)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("latents"))
    rows = [json.loads(line) for line in (target / "metadata.jsonl").read_text().splitlines()]
    (target / "metadata.jsonl").write_text("".join(json.dumps({**r, "reference": None}) + "\n" for r in rows))
    return target


@pytest.mark.parametrize("references", ["image", "video frame"])
def test_latent_cache_gives_the_posteriors_of_the_same_frames(setup, tmp_path, monkeypatch, references):
    from diffusers import AutoencoderKL

    from memo_model.data.latent_cache import cache_latents
    from memo_model.training.train import clip_and_reference_latents

    data = setup / "data" if references == "image" else _without_references(setup / "data", tmp_path / "data")
    vae = AutoencoderKL.from_pretrained(setup / "vae").eval()
    folder = cache_latents(data, vae, resolution=16)
    assert len(list(folder.glob("*.safetensors"))) == 2
    kwargs = dict(resolution=16, clip_frames=4, max_past_frames=3, identity_embedder=ThumbnailEmbedder(4), seed=5)
    plain = TalkingFaceDataset(data, **kwargs)
    cached = TalkingFaceDataset(data, latents=folder, **kwargs)
    for epoch in range(4):  # clip starts near the video's start too, where the reference fills the past frames
        plain.epoch = cached.epoch = epoch
        for index in range(len(plain)):
            a, b = plain[index], cached[index]
            for key in ("face_embedding", "audio_features", "emotion", "clip_start"):
                assert torch.equal(a[key], b[key])
            with torch.no_grad():
                posterior = vae.encode(a["pixels"]).latent_dist
                assert torch.allclose(b["latent_mean"], posterior.mean, atol=1e-5)
                assert torch.allclose(b["latent_std"], posterior.std, atol=1e-5)
                assert torch.allclose(b["past_latents"], vae.encode(a["past_pixels"]).latent_dist.mean, atol=1e-5)
                reference = vae.encode(a["reference_pixels"][None]).latent_dist.mean[0]
                assert torch.allclose(b["reference_latent"], reference, atol=1e-5)

    # What the training step makes of either batch: the same latents, to the same posterior sample
    collate = torch.utils.data.default_collate
    pixel_batch, latent_batch = collate([plain[0], plain[1]]), collate([cached[0], cached[1]])
    drop_past = torch.tensor([False, True])
    with torch.no_grad():
        torch.manual_seed(3)
        from_pixels = clip_and_reference_latents(vae, pixel_batch, 2, drop_past)
        torch.manual_seed(3)
        from_cache = clip_and_reference_latents(vae, latent_batch, 2, drop_past)
    for x, y in zip(from_pixels, from_cache, strict=True):
        assert x.shape == y.shape and torch.allclose(x, y, atol=1e-4)
    assert from_cache[0].shape == (2, 4, 4, 8, 8)  # (b, c, f, h, w)
    assert from_cache[1].shape == (2, 4, 3, 8, 8)  # (b, c, 1 + p, h, w)

    if references == "image":  # the video's frames are not needed then: it is never decoded
        import memo_model.data.dataset as dataset_module

        monkeypatch.setattr(dataset_module, "decode_video", lambda *a: pytest.fail("decoded a video"))
        fresh = TalkingFaceDataset(data, latents=folder, **kwargs)
        fresh.epoch = cached.epoch
        assert torch.equal(fresh[1]["latent_mean"], cached[1]["latent_mean"])


def test_latent_cache_is_encoded_once_per_vae_encoder(setup, tmp_path, monkeypatch):
    from diffusers import AutoencoderKL

    import memo_model.data.latent_cache as latent_cache

    data = _without_references(setup / "data", tmp_path / "data")
    vae = AutoencoderKL.from_pretrained(setup / "vae").eval()
    encoded = []
    original = latent_cache.posterior
    monkeypatch.setattr(
        latent_cache, "posterior", lambda vae, frames, n: encoded.append(len(frames)) or original(vae, frames, n)
    )
    first = latent_cache.cache_latents(data, vae, resolution=16)
    assert len(encoded) == 2  # one call per take: no reference images in this copy
    assert latent_cache.cache_latents(data, vae, resolution=16) == first and len(encoded) == 2  # reused
    vae.save_pretrained(tmp_path / "moved_vae")
    moved = AutoencoderKL.from_pretrained(tmp_path / "moved_vae").eval()
    assert latent_cache.cache_latents(data, moved, resolution=16) == first and len(encoded) == 2  # same VAE, new path
    with torch.no_grad():
        vae.decoder.conv_out.weight.mul_(2)  # a decoder change keeps the cache...
    assert latent_cache.cache_latents(data, vae, resolution=16) == first and len(encoded) == 2
    with torch.no_grad():
        vae.encoder.conv_in.weight.mul_(2)  # ...an encoder change gets a cache of its own
    second = latent_cache.cache_latents(data, vae, resolution=16)
    assert second != first and len(encoded) == 4
    assert not list(second.glob("*.partial"))


def test_training_with_the_latent_cache(setup, tmp_path):
    cfg = config(setup, tmp_path / "cached", stage="stage2")
    cfg = replace(cfg, data=replace(cfg.data, cache_latents=True))
    weights = train(cfg)
    assert logged_steps(tmp_path / "cached") == [1, 2]
    assert len(list((setup / "data" / "latents").glob("16px-*/*.safetensors"))) == 2
    assert (weights / "diffusion_net" / "diffusion_pytorch_model.safetensors").is_file()


def test_stage1_trains_spatial_modules_and_writes_loadable_weights(setup, tmp_path):
    cfg = config(setup, tmp_path / "s1")
    weights = train(cfg)
    assert logged_steps(tmp_path / "s1") == [1, 2]
    trained = load_components(weights)
    fresh = {name: model for name, model in trained.items()}
    new_params = [n for n, p in fresh["diffusion_net"].named_parameters() if "proj_out" in n and "motion_modules" in n]
    assert new_params and all(
        torch.count_nonzero(dict(fresh["diffusion_net"].named_parameters())[n]) == 0 for n in new_params
    )  # frozen in stage 1: the zero-initialised temporal output projections are still zero
    pipeline = load_pipeline(weights, device="cpu")
    assert pipeline.model_info.name == "train-smoke"


def test_resume_continues_from_the_last_checkpoint(setup, tmp_path):
    output = tmp_path / "resume"
    train(config(setup, output, max_steps=2))
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-1", "step-2"]
    # the CLI's --max-steps goes past the config's max_steps (2) on resume
    main_from_args(argparse.Namespace(config=str(tmp_path / "resume.yaml"), resume=True, max_steps=3))
    assert logged_steps(output) == [1, 2, 3]
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == ["step-2", "step-3"]  # keeps 2


def test_stage2_warmup_changes_only_the_new_modules(setup, tmp_path):
    stage1 = train(config(setup, tmp_path / "s1"))
    before = load_components(stage1)
    warmup = config(
        setup,
        tmp_path / "warm",
        stage="stage2_warmup",
        init_from=str(stage1),
        motion_loss_weight=2.0,
        reference_loss_weight=2.0,
    )
    after = load_components(train(warmup))
    changed_new = 0
    for name, parameter in after["diffusion_net"].named_parameters():
        new = "motion_modules" in name or "audio_modules" in name
        same = torch.equal(parameter, dict(before["diffusion_net"].named_parameters())[name])
        assert same or new, f"{name} is not a new module but changed"
        if new and "proj_out" in name and name.endswith("weight"):
            assert not same, f"{name} should have learned"  # the zero-initialised exits learn first
        changed_new += new and not same
    assert changed_new > 20
    for name, parameter in after["reference_net"].named_parameters():
        assert torch.equal(parameter, dict(before["reference_net"].named_parameters())[name])


def test_unknown_config_keys_are_refused(setup, tmp_path):
    cfg = config(setup, tmp_path / "x")
    raw = to_dict(cfg)
    raw["data"]["resolutoin"] = 32
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    from memo_model.errors import InputError

    with pytest.raises(InputError, match="resolutoin"):
        load_yaml(TrainConfig, path)


def test_two_processes_under_accelerate_launch(setup, tmp_path):
    output = tmp_path / "ddp"
    config(setup, output, stage="stage2", max_steps=2)
    # accelerate's `--cpu` runs one process; torchrun-style processes on CPU (gloo) need ACCELERATE_USE_CPU.
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root, "ACCELERATE_USE_CPU": "true"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "memo_model", "train", "--config", str(output.parent / "ddp.yaml"),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((output / "run_info.json").read_text())["num_processes"] == 2
    assert logged_steps(output) == [1, 2]
    assert (output / "weights" / "diffusion_net" / "diffusion_pytorch_model.safetensors").is_file()


def test_auto_precision_is_the_launchers_choice_else_native_bf16(monkeypatch):
    from memo_model.hardware import native_bf16
    from memo_model.training.train import training_precision

    assert training_precision("no") == "no" and training_precision("bf16") == "bf16"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert training_precision("auto") == ("bf16" if native_bf16(torch.device("cpu")) else "no")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # accelerate launch --mixed_precision fp16
    assert training_precision("auto") == "fp16"
