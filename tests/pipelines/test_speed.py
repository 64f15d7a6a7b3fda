"""Speed options (pipelines/speed.py): each one leaves the video as it was, within numerical noise.

The exactness checks run in float32 (``precision="float32"``): bfloat16 autocast has its own, larger noise floor,
checked on its own at the end."""

import json
import os

import numpy as np
import pytest
import torch

from memo_model.hardware import cpu_bf16_support
from memo_model.loading import load_pipeline
from memo_model.pipelines import speed
from memo_model.pipelines.request import GenerationRequest
from memo_model.pipelines.speed import (
    ModelOffload,
    SpeedOptions,
    cpu_threads,
    free_cores,
    resolve_precision,
    skips_denoiser,
)


def FP32(**options) -> SpeedOptions:  # noqa: N802 (reads like the class it builds)
    return SpeedOptions(precision="float32", **options)


def frames_and_calls(pipeline, media, tmp_path, name, steps=4):
    """The uint8 frames of a 1 s video (2 clips) and how many times the denoiser ran."""
    calls, frames = [], []
    forward = pipeline.diffusion_net.forward
    pipeline.diffusion_net.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    try:
        request = GenerationRequest(
            image=media / "portrait.png", audio=media / "speech_1s.wav", output=tmp_path / f"{name}.mp4", steps=steps
        )
        pipeline(request, callback=lambda p: p.frames is not None and frames.append(p.frames))
    finally:
        del pipeline.diffusion_net.forward  # back to the class's forward
    return np.concatenate(frames).astype(int), len(calls)


@pytest.fixture(scope="module")
def exact_run(weights, media, tmp_path_factory):
    """The reference: every option off, the denoiser at every step."""
    pipeline = load_pipeline(weights, device="cpu", options=FP32(reuse_final_velocity=False))
    return frames_and_calls(pipeline, media, tmp_path_factory.mktemp("exact"), "exact")


def test_only_the_last_step_reuses_a_velocity():
    options = SpeedOptions()
    assert skips_denoiser(0.001, options, have_velocity=True)
    assert not skips_denoiser(0.001, options, have_velocity=False)  # a 1-step schedule has nothing to reuse
    assert not skips_denoiser(0.112, options, have_velocity=True)
    assert not skips_denoiser(0.001, SpeedOptions(reuse_final_velocity=False), have_velocity=True)


def test_reusing_the_final_velocity_saves_a_call_per_clip_and_changes_nothing_visible(
    weights, media, tmp_path, exact_run
):
    exact_frames, exact_calls = exact_run
    pipeline = load_pipeline(weights, device="cpu", options=FP32())  # the default options, in float32
    frames, calls = frames_and_calls(pipeline, media, tmp_path, "fast")
    assert exact_calls == 2 * 4 and calls == 2 * 3  # 2 clips of 4 steps; the σ = 0.001 step reuses
    assert np.abs(frames - exact_frames).max() <= 2  # uint8 levels: the last step moves latents by 0.1 %


def test_cpu_offload_moves_one_large_component_at_a_time_and_changes_nothing(weights, media, tmp_path, exact_run):
    """On this CPU-only machine the moves are CPU to CPU; what is checked is the order and the result."""
    options = FP32(reuse_final_velocity=False, cpu_offload=True)
    pipeline = load_pipeline(weights, device="cpu", options=options)
    used = []
    use = pipeline.offload.use
    pipeline.offload.use = lambda module: used.append(module) or use(module)
    frames, _ = frames_and_calls(pipeline, media, tmp_path, "offload")
    np.testing.assert_array_equal(frames, exact_run[0])
    large = {id(pipeline.vae): "vae", id(pipeline.reference_net): "ref", id(pipeline.diffusion_net): "unet"}
    order = [large[id(m)] for m in used]
    runs = [name for i, name in enumerate(order) if i == 0 or order[i - 1] != name]
    # portrait encode, portrait features, then per clip: memory + denoiser, decode (+ encode), reference net
    assert runs == ["vae", "ref", "unet", "vae", "ref", "unet", "vae"]
    assert pipeline.offload.moves == len(runs)


def test_model_offload_sends_the_idle_component_to_storage():
    # Without a GPU: run on the CPU and store on "meta", a device that needs no hardware (and keeps no values).
    offload = ModelOffload("cpu", enabled=True, storage="meta")
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    assert offload.use(a) is a and a.weight.device.type == "cpu"
    offload.use(b)
    assert b.weight.device.type == "cpu" and a.weight.device.type == "meta"
    assert offload.moves == 2 and offload.use(b) is b and offload.moves == 2  # already there: no move
    assert ModelOffload("cpu", enabled=False).use(a) is a


@pytest.mark.parametrize(
    "options",
    [
        FP32(reuse_final_velocity=False, channels_last=True),
        pytest.param(FP32(reuse_final_velocity=False, compile=True), marks=pytest.mark.slow),
    ],
    ids=["channels_last", "compile"],
)
def test_layout_and_compile_options_change_nothing_visible(weights, media, tmp_path, exact_run, options):
    pipeline = load_pipeline(weights, device="cpu", options=options)
    if options.channels_last:
        assert pipeline.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    frames, _ = frames_and_calls(pipeline, media, tmp_path, "option")
    assert np.abs(frames - exact_run[0]).max() <= 2


def test_auto_precision_follows_the_cpu():
    cpu = torch.device("cpu")
    expected = "float32" if cpu_bf16_support() is None else "bfloat16"
    assert resolve_precision(SpeedOptions(), cpu, torch.float32) == expected
    assert resolve_precision(FP32(), cpu, torch.float32) == "float32"
    assert resolve_precision(SpeedOptions(precision="bfloat16"), torch.device("cuda"), torch.float16) == "float32"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        SpeedOptions(precision="fp8")


@pytest.mark.skipif(cpu_bf16_support() is None, reason="this CPU has no native bfloat16 (AMX or AVX512-BF16)")
def test_bfloat16_autocast_stays_near_float32(weights, media, tmp_path, exact_run):
    pipeline = load_pipeline(
        weights, device="cpu", options=SpeedOptions(reuse_final_velocity=False, precision="bfloat16")
    )
    assert pipeline.precision == "bfloat16"
    frames, _ = frames_and_calls(pipeline, media, tmp_path, "bf16")
    difference = np.abs(frames - exact_run[0])
    assert 0 < difference.max() <= 24 and difference.mean() < 2  # it does compute in bfloat16, and stays close


def machine(monkeypatch, tmp_path, runnable: int) -> int:
    """Pretend ``runnable`` tasks are runnable now, this reader included; returns this process's CPU count."""
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(f"1.00 1.00 1.00 {runnable}/300 4242\n")
    monkeypatch.setattr(speed, "LOADAVG", loadavg)
    return len(os.sched_getaffinity(0))


@pytest.mark.skipif(not speed.LOADAVG.exists(), reason="needs Linux's /proc/loadavg")
def test_free_cores_are_the_cpus_other_processes_leave(monkeypatch, tmp_path):
    cpus = machine(monkeypatch, tmp_path, runnable=1)  # only the reader: a quiet machine
    assert free_cores() == cpus
    machine(monkeypatch, tmp_path, runnable=1 + cpus)  # as many busy tasks as CPUs: still one core to run on
    assert free_cores() == 1
    monkeypatch.setattr(speed, "LOADAVG", tmp_path / "missing")
    assert free_cores() is None


@pytest.mark.skipif(not speed.LOADAVG.exists(), reason="needs Linux's /proc/loadavg")
def test_a_run_uses_only_the_free_cores_and_gives_torch_its_threads_back(weights, media, tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    machine(monkeypatch, tmp_path, runnable=1)
    with cpu_threads(SpeedOptions(), cpu) as threads:
        assert threads == torch.get_num_threads() == min(before, free_cores())  # never more than torch had
    with cpu_threads(SpeedOptions(threads=1), cpu) as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be 'auto' or a positive number"):
        SpeedOptions(threads=0)

    machine(monkeypatch, tmp_path, runnable=100)  # a busy machine: one thread, written in the sidecar
    pipeline = load_pipeline(weights, device="cpu")
    request = GenerationRequest(
        image=media / "portrait.png", audio=media / "speech_1s.wav", output=tmp_path / "busy.mp4", steps=1
    )
    result = pipeline(request)
    assert json.loads(result.settings_path.read_text())["threads"] == 1
    assert torch.get_num_threads() == before
