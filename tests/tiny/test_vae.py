"""MEMO-Tiny's VAE (memo_model/tiny/vae.py): a tiny run resumes and saves a diffusers folder, the shipped weights
reconstruct held-out synthetic faces, and the CLI (tiny/cli.py) registers both part trainers."""

import argparse
import csv
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from memo_model.tiny.cli import add_train_parts_parser
from memo_model.tiny.vae import (
    FINAL_LR_SHARE,
    IMAGE_SIZE,
    LATENT_FACTOR,
    TINY_VAE_CONFIG,
    WARMUP_STEPS,
    RenderedFaces,
    evaluate_vae,
    image_gradient_l1,
    train_vae,
)
from memo_model.training.loop import cosine_share

SHIPPED = Path(__file__).resolve().parents[2] / "assets" / "memo-tiny" / "vae"
SHIPPED_MIN_PSNR = 22.0  # dB on fresh held-out faces; docs/TRAINING.md records what the shipped weights reach
SHIPPED_MAX_BYTES = 5 * 2**20


def test_train_vae_runs_resumes_and_saves(tmp_path):
    tiny = {"batch_size": 2, "checkpoint_every": 1, "log_every": 1, "eval_frames": 2, "scale_frames": 4}
    train_vae(tmp_path, steps=2, num_workers=0, **tiny)
    report = train_vae(tmp_path, steps=3, resume=True, num_workers=0, **tiny)

    with open(tmp_path / "log.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == [1, 2, 3]  # the resumed run appended step 3
    assert report["steps"] == 3
    vae = AutoencoderKL.from_pretrained(tmp_path / "vae")
    assert vae.config.scaling_factor == pytest.approx(report["scaling_factor"])
    assert tuple(vae.config.block_out_channels) == TINY_VAE_CONFIG["block_out_channels"]
    latents = vae.encode(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)).latent_dist.mean
    assert latents.shape == (1, 4, IMAGE_SIZE // LATENT_FACTOR, IMAGE_SIZE // LATENT_FACTOR)


def test_decoder_only_keeps_the_latent_space(tmp_path):
    tiny = {"batch_size": 2, "checkpoint_every": 1, "log_every": 1, "eval_frames": 2, "scale_frames": 4}
    train_vae(tmp_path / "full", steps=1, num_workers=0, **tiny)
    before = AutoencoderKL.from_pretrained(tmp_path / "full" / "vae")
    report = train_vae(
        tmp_path / "decoder", steps=2, num_workers=0, init_from=tmp_path / "full" / "vae", decoder_only=True, **tiny
    )
    after = AutoencoderKL.from_pretrained(tmp_path / "decoder" / "vae")
    assert after.config.scaling_factor == before.config.scaling_factor == report["scaling_factor"]
    old, new = before.state_dict(), after.state_dict()
    for name in new:
        if name.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(new[name], old[name]), f"{name} changed: the latent space moved"
    assert not torch.equal(new["decoder.conv_out.weight"], old["decoder.conv_out.weight"])
    with pytest.raises(ValueError, match="init_from"):
        train_vae(tmp_path / "x", steps=1, num_workers=0, decoder_only=True)


def test_expression_weights_sit_on_the_face_and_keep_the_loss_scale():
    pixels, weights = next(iter(RenderedFaces(batch_size=4, seed=0, first_step=0, expression_weight=4.0)))
    assert pixels.shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE) and weights.shape == (4, 1, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(weights.mean(dim=(1, 2, 3)), torch.ones(4))
    floor = 1 / 5  # (1 + 4 * 0) / (1 + 4): pixels the expression does not touch
    corners = torch.cat([weights[..., :8, :8], weights[..., :8, -8:]], dim=-1)
    assert torch.allclose(corners, torch.full_like(corners, floor))  # the background is the same in both renders
    assert (weights.amax(dim=(1, 2, 3)) > 10).all()  # brows, eyes and mouth weigh many times the mean
    plain, no_weights = next(iter(RenderedFaces(batch_size=2, seed=0, first_step=0)))
    assert no_weights is None and plain.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_resume_without_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="without --resume"):
        train_vae(tmp_path, steps=1, resume=True, num_workers=0)


def test_pure_helpers():
    image = torch.rand(1, 3, 8, 8)
    assert image_gradient_l1(image, image).item() == 0.0
    assert image_gradient_l1(image + 0.5, image).item() == pytest.approx(0.0, abs=1e-6)  # a shift has no edges
    assert cosine_share(0, 100, WARMUP_STEPS, FINAL_LR_SHARE) < cosine_share(50, 1000, WARMUP_STEPS, FINAL_LR_SHARE)
    assert cosine_share(1000, 1000, WARMUP_STEPS, FINAL_LR_SHARE) == pytest.approx(0.05)  # warm-up, then cosine


def test_shipped_vae_reconstructs_held_out_faces():
    assert (SHIPPED / "diffusion_pytorch_model.safetensors").stat().st_size < SHIPPED_MAX_BYTES
    vae = AutoencoderKL.from_pretrained(SHIPPED)
    assert 0.1 < vae.config.scaling_factor < 10
    scores = evaluate_vae(vae, num_frames=16, seed=7)  # identities >= HELD_OUT_SEED_START, fresh states
    assert scores["psnr"] >= SHIPPED_MIN_PSNR


def test_cli_registers_both_training_commands():
    parser = argparse.ArgumentParser()
    add_train_parts_parser(parser.add_subparsers(dest="command", required=True))
    vae = parser.parse_args(["train-vae", "--output", "run", "--steps", "5", "--resume"])
    emotion = parser.parse_args(["train-emotion", "--output", "run", "--steps", "7"])
    assert (vae.steps, vae.resume, emotion.steps, emotion.resume) == (5, True, 7, False)
    assert callable(vae.func) and callable(emotion.func)


def test_v2_vae_is_factor_8_at_128_px_and_resumes_its_own_architecture(tmp_path):
    tiny = {"batch_size": 1, "checkpoint_every": 1, "log_every": 1, "eval_frames": 2, "scale_frames": 2}
    train_vae(tmp_path, steps=1, num_workers=0, image_size=128, latent_channels=8, bf16=True, **tiny)
    report = train_vae(tmp_path, steps=2, resume=True, num_workers=0, **tiny)  # defaults would say 64 px, 4 channels
    vae = AutoencoderKL.from_pretrained(tmp_path / "vae")
    assert report["steps"] == 2 and vae.config.sample_size == 128
    latents = vae.encode(torch.zeros(1, 3, 128, 128)).latent_dist.mean
    assert latents.shape == (1, 8, 16, 16)
    with pytest.raises(ValueError, match="64 or 128"):
        train_vae(tmp_path / "odd", steps=1, num_workers=0, image_size=96)
