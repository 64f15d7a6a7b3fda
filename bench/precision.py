"""bfloat16 autocast on vs off on this CPU: time, and how far the outputs move, for generation and for training.

Each case runs in float32 and under bfloat16 autocast alternately (a change in the shared machine's load hits
both), reports the median wall and CPU seconds of each (CPU time moves far less with the neighbours' load) and the
speed-ups, and is recorded as its own run in ``bench/results/precision.json`` with the CPU's bfloat16 support and
the load average before and after:

- ``memo-tiny pipeline``: MEMO-Tiny's whole pipeline on the bundled example portrait and speech, at the model's
  full-quality steps, fixed seed; the first round warms up. Frame difference in uint8 levels.
- ``official pipeline 256``: the official architecture with random weights (bench/components.py) at 256², one
  16-frame clip that looks back on 16 past frames, through the pipeline's own steps (``prepare_guidance``,
  ``prepare_reference``, ``prepare_clip``, ``denoise_clip``, ``decode_clip``) with the official guidance (2
  passes), ``--steps`` steps from fixed noise; one round (minute-long calls need no warm-up). Random weights make
  noise-like frames, so next to their difference it reports the relative difference of the first denoiser call's
  velocity, |v_bf16 - v_fp32| / |v_fp32|, which is meaningful with random weights too.
- ``memo-tiny training step``: one step of configs/memo_tiny_stage2.yaml (stage 2, batch 2, 16 frames, 32 past
  frames — the middle of its 16/32/48 — at 64 px) from the shipped weights, on synthetic takes like its data.
- ``official training step``: the official architecture with random weights, stage ``stage2_warmup`` (the
  temporal and audio modules: what the official release fine-tunes; all of stage 2 would need 41 GB of weights,
  gradients and AdamW state), batch 1, 16 frames, 16 past frames, at ``--training-resolution`` px (64: forward and
  backward peak at 16.5 GB), on a random batch.

bfloat16 in training is what accelerate's ``mixed_precision: bf16`` runs on a CPU: ``torch.autocast("cpu",
bfloat16)`` around the training module's forward — all of ``training_step``, the VAE encode and the loss included
— with backward, gradient clipping and AdamW outside it, on float32 weights and gradients. So forward + backward
is timed per precision (the same seed, the same weights: the first step's loss at both precisions), and the
optimiser step (clipping + AdamW) once, after: the same float32 work in both, added to each.

    python -m bench.precision --case "memo-tiny pipeline" --seconds 2 --repeats 6          # ~5 min here
    python -m bench.precision --case "official pipeline 256" --steps 2                     # ~12 min, 18 GB
    python -m bench.precision --case "memo-tiny training step" --repeats 15                # ~1 min
    python -m bench.precision --case "official training step" --training-resolution 64 --repeats 3   # ~6 min
"""

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.results_file import record_run
from memo_model.hardware import cpu_bf16_support
from memo_model.pipelines.request import OFFICIAL_GUIDANCE, GenerationRequest
from memo_model.pipelines.speed import SpeedOptions, autocast

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
MEMO_TINY = ROOT / "assets" / "memo-tiny"
MEMO_TINY_STAGE2 = ROOT / "configs" / "memo_tiny_stage2.yaml"
RESULTS = ROOT / "bench" / "results" / "precision.json"
CASES = ("memo-tiny pipeline", "official pipeline 256", "memo-tiny training step", "official training step")
COMPARED = ("float32", "bfloat16")  # every round runs both, in this order
CLOCKS = ("seconds", "cpu_seconds")  # wall, and this process's CPU time (Stopwatch)
CPU = torch.device("cpu")


def alternate(run: Callable[[str], dict], rounds: int) -> dict[str, list[dict]]:
    """``run(precision)`` for float32 then bfloat16, ``rounds`` times."""
    results: dict[str, list[dict]] = {p: [] for p in COMPARED}
    for _ in range(rounds):
        for precision in COMPARED:
            results[precision].append(run(precision))
    return results


class Stopwatch:
    """Wall seconds and this process's CPU seconds since it was made. Neighbours on a shared machine stretch the
    wall time of a run; its CPU time (one torch thread) moves far less with their load."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict[str, float]:
        return {"seconds": time.perf_counter() - self.wall, "cpu_seconds": time.process_time() - self.cpu}


def timing(case: str, args, load_before: tuple[float, ...], runs: dict[str, list[dict]], digits=2) -> dict:
    """The fields every case records: median wall and CPU seconds of each precision, speed-ups, load, every run."""
    wall = {p: statistics.median(r["seconds"] for r in runs[p]) for p in COMPARED}
    cpu = {p: statistics.median(r["cpu_seconds"] for r in runs[p]) for p in COMPARED}
    return {
        "case": case,
        "cpu_bf16_support": cpu_bf16_support(),
        "threads": args.threads,
        "load_average_before": load_before,
        "load_average": os.getloadavg(),  # after
        "float32_seconds": round(wall["float32"], digits),
        "bfloat16_seconds": round(wall["bfloat16"], digits),
        "speedup": round(wall["float32"] / wall["bfloat16"], 3),
        "float32_cpu_seconds": round(cpu["float32"], digits),
        "bfloat16_cpu_seconds": round(cpu["bfloat16"], digits),
        "cpu_speedup": round(cpu["float32"] / cpu["bfloat16"], 3),
        "runs": {p: [round(r["seconds"], digits) for r in runs[p]] for p in COMPARED},
        "cpu_runs": {p: [round(r["cpu_seconds"], digits) for r in runs[p]] for p in COMPARED},
    }


def frame_difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Largest and mean difference of two uint8 videos, in levels."""
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"frame_difference_max": int(difference.max()), "frame_difference_mean": round(float(difference.mean()), 3)}


def relative_difference(value: torch.Tensor, exact: torch.Tensor) -> float:
    return round(float((value.float() - exact.float()).norm() / exact.float().norm()), 5)


def peak_rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)  # ru_maxrss is in kB on Linux


# --- generation ----------------------------------------------------------------------------------------------


def memo_tiny_pipeline(args) -> dict:
    from memo_model.loading import load_pipeline

    pipelines = {p: load_pipeline(device="cpu", options=SpeedOptions(precision=p)) for p in COMPARED}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        request = GenerationRequest(
            image=EXAMPLES / "synthetic_person_1.png",
            audio=EXAMPLES / "speech_1_happy_then_sad.wav",
            output=Path(folder) / "v.mp4",
            preview_seconds=args.seconds,  # the first seconds, at the full-quality steps below
            preview_steps=pipelines["float32"].model_info.default_steps,
            seed=0,
        )

        def run(precision: str) -> dict:
            frames = []
            stopwatch = Stopwatch()
            pipelines[precision](request, callback=lambda p: p.frames is not None and frames.append(p.frames))
            return {**stopwatch.read(), "frames": np.concatenate(frames)}

        results = alternate(run, args.repeats + 1)  # the first round warms up
    frames = {p: results[p][-1]["frames"] for p in COMPARED}
    entry = timing("memo-tiny pipeline", args, load_before, {p: results[p][1:] for p in COMPARED})
    return {
        **entry,
        "video_seconds": round(len(frames["float32"]) / 30, 2),
        **frame_difference(frames["float32"], frames["bfloat16"]),
    }


def with_precision(pipeline, precision: str):
    """A second ``MemoPipeline`` on the same (shared, not copied) networks, with its own precision option."""
    from memo_model.pipelines.pipeline_memo import MemoPipeline

    return MemoPipeline(
        vae=pipeline.vae,
        reference_net=pipeline.reference_net,
        diffusion_net=pipeline.diffusion_net,
        image_proj=pipeline.image_proj,
        audio_proj=pipeline.audio_proj,
        audio_features=pipeline.audio_features,
        identity_embedder=pipeline.identity_embedder,
        model_info=pipeline.model_info,
        options=SpeedOptions(precision=precision),
    )


def official_pipeline(args, resolution: int = 256) -> dict:
    from bench.components import official_parts, synthetic_clip
    from memo_model.vision.video_io import frames_to_uint8

    with tempfile.TemporaryDirectory() as folder:
        built, _ = official_parts(resolution, Path(folder))
        pipelines = {p: with_precision(built, p) for p in COMPARED}
        clip = synthetic_clip(built, resolution)  # portrait, 16 past frames (not the portrait), audio, noise: seed 0
    guidance = (OFFICIAL_GUIDANCE,) * 3  # 2 passes, batched: unconditional and full

    @torch.no_grad()
    def run(precision: str) -> dict:
        pipeline = pipelines[precision]
        velocities = []
        hook = pipeline.diffusion_net.register_forward_hook(lambda module, inputs, output: velocities.append(output))
        whole, part, parts = Stopwatch(), Stopwatch(), {}
        passes = pipeline.prepare_guidance(clip.face_embedding, guidance)
        reference, _ = pipeline.prepare_reference(clip.portrait, passes, len(clip.past.latents))
        conditions, _ = pipeline.prepare_clip(passes, reference, clip.past, clip.audio_clip, emotion=0)
        parts["reference_net_and_memory"], part = part.read(), Stopwatch()
        latents = pipeline.denoise_clip(conditions, clip.sample, args.steps)
        parts["denoise"], part = part.read(), Stopwatch()
        frames = pipeline.decode_clip(latents)  # (16, 3, H, W) in [0, 1]
        parts["decode"] = part.read()
        hook.remove()
        return {
            **whole.read(),
            "parts": parts,
            "frames": frames_to_uint8(frames.permute(0, 2, 3, 1).numpy()),
            "velocity": velocities[0].float(),
        }

    load_before = os.getloadavg()
    results = alternate(run, 1)
    fp32, bf16 = results["float32"][0], results["bfloat16"][0]
    entry = timing("official pipeline 256", args, load_before, results)
    return {
        **entry,
        "weights": "random (official shapes): noise-like frames",
        "resolution": resolution,
        "frames": len(fp32["frames"]),
        "past_frames": len(clip.past.latents),
        "steps": args.steps,
        "guidance_passes": len(fp32["velocity"]),
        **{
            f"part_{clock}": {p: {k: round(v[clock], 2) for k, v in results[p][0]["parts"].items()} for p in COMPARED}
            for clock in CLOCKS
        },
        **frame_difference(fp32["frames"], bf16["frames"]),
        "velocity_relative_difference": relative_difference(bf16["velocity"], fp32["velocity"]),
        "peak_rss_gb": peak_rss_gb(),
    }


# --- training ------------------------------------------------------------------------------------------------


def memo_tiny_training(folder: Path):
    """MEMO-Tiny's stage-2 config, its shipped networks and VAE, and one batch of synthetic takes like its data."""
    from diffusers import AutoencoderKL

    from memo_model.config import load_yaml
    from memo_model.data.dataset import TalkingFaceDataset, cache_audio_features
    from memo_model.data.synthetic.dataset_writer import DatasetSpec, write_dataset
    from memo_model.loading import build_audio_features, read_manifest
    from memo_model.training.train import TrainConfig, build_components
    from memo_model.vision.face import ThumbnailEmbedder

    config = load_yaml(TrainConfig, MEMO_TINY_STAGE2)
    config = replace(config, model=replace(config.model, init_from=str(MEMO_TINY)))  # the shipped stage-2 weights
    nets = build_components(config.model)
    vae = AutoencoderKL.from_pretrained(config.model.vae).requires_grad_(False).eval()
    takes = DatasetSpec(num_samples=config.batch_size, seconds=(3.0, 3.0), size=config.data.resolution, seed=11)
    data = write_dataset(folder / "data", takes)
    cache_audio_features(data, build_audio_features(read_manifest(MEMO_TINY)["audio_features"], MEMO_TINY, None, CPU))
    dataset = TalkingFaceDataset(
        data,
        resolution=config.data.resolution,
        clip_frames=config.data.clip_frames,
        max_past_frames=max(config.data.past_frames),
        identity_embedder=ThumbnailEmbedder(config.identity_thumbnail),
    )
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=config.batch_size)))
    num_past = sorted(config.data.past_frames)[len(config.data.past_frames) // 2]  # a step draws 16, 32 or 48
    return config, nets, vae, batch, num_past


def official_training(folder: Path, resolution: int):
    """The official networks and VAE with random weights (bench/components.py), stage2_warmup, a random batch."""
    from bench.components import official_parts
    from memo_model.training.train import TRAINED_COMPONENTS, DataConfig, ModelConfig, TrainConfig

    clip_frames = past_frames = 16
    config = TrainConfig(
        output_dir=str(folder),
        stage="stage2_warmup",
        data=DataConfig(root=str(folder), resolution=resolution, clip_frames=clip_frames, past_frames=(past_frames,)),
        model=ModelConfig(vae="random", preset="official"),
    )
    pipeline, _ = official_parts(resolution, folder)
    nets = {name: getattr(pipeline, name).train() for name in TRAINED_COMPONENTS}
    vae = pipeline.vae
    audio = nets["audio_proj"].config  # features per frame: (window, layers, channels)
    rng = torch.Generator().manual_seed(0)

    def pixels(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, 3, resolution, resolution, generator=rng) * 2 - 1

    batch = {
        "pixels": pixels(1, clip_frames),
        "past_pixels": pixels(1, past_frames),
        "reference_pixels": pixels(1),
        "audio_features": torch.randn(1, clip_frames, audio.seq_len, audio.blocks, audio.channels, generator=rng),
        "face_embedding": torch.randn(1, nets["image_proj"].config.clip_embeddings_dim, generator=rng),
        "emotion": torch.tensor([3]),  # any one of the 9 emotions
    }
    return config, nets, vae, batch, past_frames


def training_step(args, case: str) -> dict:
    """Forward + backward per precision, alternately, then the optimiser step once (see the module docstring)."""
    from memo_model.training.stages import STAGES, apply_stage
    from memo_model.training.train import TrainingModule

    with tempfile.TemporaryDirectory() as folder:
        if case == "memo-tiny training step":
            config, nets, vae, batch, num_past = memo_tiny_training(Path(folder))
        else:
            config, nets, vae, batch, num_past = official_training(Path(folder), args.training_resolution)
    stage = STAGES[config.stage]
    trainable = apply_stage(stage, nets)
    module = TrainingModule(nets)

    def step_loss(precision: str) -> torch.Tensor:
        """The step's loss, with the same draws every time: condition dropout, σ and noise from the generator; the
        VAE's posterior sample and the emotion dropout inside the network from torch's global generator."""
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        with autocast(CPU, precision):  # as accelerate wraps the prepared module's forward for bf16
            loss, _, _ = module(batch, vae, config, stage.uses_audio, num_past, generator, None)
        return loss.float()

    def run(precision: str) -> dict:
        stopwatch = Stopwatch()
        loss = step_loss(precision)
        loss.backward()
        seconds = stopwatch.read()
        for parameter in trainable:  # every run starts from the same weights and no gradients
            parameter.grad = None
        return {**seconds, "loss": loss.item()}

    load_before = os.getloadavg()
    results = alternate(run, args.repeats + 1)  # the first round warms up
    loss = {p: results[p][0]["loss"] for p in COMPARED}
    peak_forward_backward = peak_rss_gb()

    # The optimiser step on float32 gradients (a float32 forward + backward): the same work in both precisions.
    step_loss("float32").backward()
    with torch.no_grad():  # the passes are done: free the frozen weights (official: 7.2 of 10.6 GB) for AdamW's state
        for parameter in [*module.parameters(), *vae.parameters()]:
            if not parameter.requires_grad:
                parameter.data = torch.empty(0)
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, betas=config.adam_betas, weight_decay=config.weight_decay,
        eps=config.adam_epsilon,
    )  # fmt: skip

    def optimizer_step() -> dict[str, float]:
        stopwatch = Stopwatch()
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        return stopwatch.read()

    optimizer_step()  # the first step allocates AdamW's state
    optimizer_runs = [optimizer_step() for _ in range(args.repeats)]
    optimizer_time = {clock: statistics.median(r[clock] for r in optimizer_runs) for clock in CLOCKS}

    forward_backward = {p: results[p][1:] for p in COMPARED}
    steps = {p: [{c: r[c] + optimizer_time[c] for c in CLOCKS} for r in forward_backward[p]] for p in COMPARED}
    entry = timing(case, args, load_before, steps, digits=3)
    fb = {p: statistics.median(r["cpu_seconds"] for r in forward_backward[p]) for p in COMPARED}
    return {
        **entry,
        "weights": "MEMO-Tiny as shipped" if case == "memo-tiny training step" else "random (official shapes)",
        "stage": config.stage,
        "trainable_parameters_millions": round(sum(p.numel() for p in trainable) / 1e6, 1),
        "batch_size": len(batch["emotion"]),
        "resolution": config.data.resolution,
        "clip_frames": config.data.clip_frames,
        "past_frames": num_past,
        "forward_backward_cpu_seconds": {p: round(fb[p], 3) for p in COMPARED},
        "forward_backward_cpu_speedup": round(fb["float32"] / fb["bfloat16"], 3),
        "optimizer_seconds": round(optimizer_time["seconds"], 3),
        "optimizer_cpu_seconds": round(optimizer_time["cpu_seconds"], 3),
        "first_step_loss": {p: round(loss[p], 6) for p in COMPARED},
        "same_loss_every_run": all(r["loss"] == loss[p] for p in COMPARED for r in results[p]),  # same draws
        "loss_relative_difference": round(abs(loss["bfloat16"] - loss["float32"]) / abs(loss["float32"]), 5),
        "peak_rss_gb_forward_backward": peak_forward_backward,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=CASES, default=CASES[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="memo-tiny pipeline: audio length generated")
    parser.add_argument("--steps", type=int, default=2, help="official pipeline: denoising steps of the clip")
    parser.add_argument("--training-resolution", type=int, default=64, help="official training step: pixels")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (leave the other core to others)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.case == "memo-tiny pipeline":
        entry = memo_tiny_pipeline(args)
    elif args.case == "official pipeline 256":
        entry = official_pipeline(args)
    else:
        entry = training_step(args, args.case)
    print(json.dumps(entry, indent=2))
    record_run(RESULTS, "precision", entry, key=lambda run: (run["case"], run["cpu_bf16_support"], run["threads"]))


if __name__ == "__main__":
    main()
