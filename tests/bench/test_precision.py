"""bench.precision's official cases on the tiny preset at 16 px (seconds): they still run the pipeline's and the
training's own steps, and float32 and bfloat16 runs see the same inputs."""

import argparse

import pytest
import torch

import bench.components
from bench import precision
from memo_model.hardware import cpu_bf16_support
from memo_model.loading import load_pipeline
from memo_model.testing import TINY_RESOLUTION, write_random_tiny_weights

pytestmark = pytest.mark.skipif(cpu_bf16_support() is None, reason="bfloat16 is emulated on this CPU: far too slow")


@pytest.fixture
def tiny_official(tmp_path, monkeypatch):
    """``official_parts`` builds the tiny preset instead: the same classes, random weights, 16 px."""
    folder = write_random_tiny_weights(tmp_path / "weights")
    monkeypatch.setattr(
        bench.components, "official_parts", lambda resolution, _: (load_pipeline(folder, device="cpu"), resolution)
    )


def test_alternate_runs_float32_then_bfloat16_each_round():
    order = []
    results = precision.alternate(lambda p: order.append(p) or {"precision": p}, rounds=2)
    assert order == ["float32", "bfloat16", "float32", "bfloat16"]
    assert [r["precision"] for r in results["bfloat16"]] == ["bfloat16", "bfloat16"]


def test_official_pipeline_case(tiny_official):
    torch.manual_seed(0)
    entry = precision.official_pipeline(argparse.Namespace(steps=2, threads=1), resolution=TINY_RESOLUTION)
    assert entry["frames"] == 16 and entry["guidance_passes"] == 2
    assert 0 < entry["velocity_relative_difference"] < 0.05  # bfloat16 moves the velocity, by about 1 %
    assert entry["frame_difference_max"] <= 32
    assert set(entry["part_seconds"]["float32"]) == {"reference_net_and_memory", "denoise", "decode"}


def test_official_training_case(tiny_official):
    entry = precision.training_step(
        argparse.Namespace(training_resolution=TINY_RESOLUTION, repeats=1, threads=1), "official training step"
    )
    assert entry["stage"] == "stage2_warmup" and entry["trainable_parameters_millions"] > 0
    assert entry["same_loss_every_run"]  # float32 and bfloat16 runs draw the same dropout, σ, noise and posterior
    assert 0 < entry["loss_relative_difference"] < 0.05
    assert entry["optimizer_seconds"] > 0 and len(entry["runs"]["float32"]) == 1
