"""Train MEMO (paper §4.3, appendix D) on accelerate: one flat loop, stages as data, resumable.

    python -m memo_model train --config configs/memo_tiny_stage1.yaml [--resume]
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m memo_model train --config ...
                                                                                 # 2 CPU processes (gloo)
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m memo_model train --config ...

One step (docs/CHECKPOINT.md §4 where the paper is silent):
  1. VAE-encode the clip (posterior sample x 0.18215), the reference and the past frames (frozen VAE; with
     ``data.cache_latents`` every take is encoded once before the loop and the step samples the cached posterior);
  2. condition dropout, 5 % each (appendix D): the reference (face tokens from a zero embedding and no reference
     attention — what the unconditional guidance pass sees at inference), the audio (zero tokens, as inference),
     the past frames (replaced by the reference image, as the first clip at inference); emotions are dropped per
     Emo-AdaNorm layer inside the network (``emo_drop_rate``);
  3. a dynamic number of past frames (choices such as 16 / 32 / 48, appendix D);
  4. logit-normal σ, z_t = σ ε + (1 − σ) z_0, velocity prediction, the flow loss, the loss-spike filter (§4.3);
  5. AdamW (lr 1e-5, constant; official betas, weight decay, eps), gradient clipping 1.0, optional EMA.
Checkpoints are accelerate states (model, optimiser, RNG, step) under ``output_dir/checkpoints``; the weights are
also written in the official layout under ``output_dir/weights`` for ``load_pipeline``.
"""

import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from memo_model.config import load_yaml, to_dict
from memo_model.errors import InputError
from memo_model.hardware import native_bf16
from memo_model.models.presets import COMPONENT_CLASSES, preset_config
from memo_model.pipelines import conditions
from memo_model.pipelines.conditions import Kept
from memo_model.training.loop import LOG_FILE, CsvLog, checkpoint_due
from memo_model.training.losses import (
    SPIKE_THRESHOLD,
    add_noise,
    emphasis_weights,
    filter_spikes,
    flow_matching_loss,
    motion_map,
    reference_difference_map,
    sample_sigmas,
)
from memo_model.training.stages import STAGES, apply_stage
from memo_model.weights import MANIFEST_NAME, load_components, save_components

TRAINED_COMPONENTS = ("reference_net", "diffusion_net", "image_proj", "audio_proj")
LOG_COLUMNS = ("step", "loss", "raw_loss_mean", "spikes_dropped", "elapsed_s")


@dataclass(frozen=True)
class DataConfig:
    root: str
    resolution: int = 64
    clip_frames: int = 16
    past_frames: tuple[int, ...] = (16,)  # a choice per step: dynamic past-frame counts (appendix D)
    num_workers: int = 0
    cache_frames: bool = False  # keep decoded videos in memory (see TalkingFaceDataset)
    cache_latents: bool = False  # encode every frame once before training (data/latent_cache.py), not every step


@dataclass(frozen=True)
class ModelConfig:
    vae: str  # folder of a (trained) AutoencoderKL; frozen here
    init_from: str | None = None  # weights folder in the official layout (e.g. the previous stage's output)
    preset: str = "tiny"
    overrides: dict = field(default_factory=dict)  # component -> constructor kwargs on top of the preset
    manifest: dict = field(default_factory=dict)  # memo_studio.json written with the weights (see loading.py)


@dataclass(frozen=True)
class DropoutConfig:
    reference: float = 0.05
    audio: float = 0.05
    past_frames: float = 0.05


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str
    stage: str
    data: DataConfig
    model: ModelConfig
    max_steps: int = 1000
    batch_size: int = 1
    learning_rate: float = 1e-5  # appendix D
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"  # accelerate's "no", "fp16", "bf16"; "auto": see training_precision
    gradient_checkpointing: bool = False
    ema_decay: float | None = None
    seed: int = 42
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    loss_weighting: str = "official"
    # Loss emphasis (losses.emphasis_weights; MEMO-Tiny's aids, not the paper's; 0 and 0 = the paper's loss):
    motion_loss_weight: float = 0.0  # > 0: favour what moves within the clip (the mouth: lip-sync)
    reference_loss_weight: float = 0.0  # > 0: favour where the clip differs from its reference (the expression)
    spike_threshold: float | None = SPIKE_THRESHOLD
    # The 0.1 threshold assumes a converged loss (~0.03, §4.3); from scratch the first losses are far above it, so
    # the filter starts after this many steps.
    spike_filter_start: int = 0
    identity_thumbnail: int = 4  # face embedding = ThumbnailEmbedder(size) of the reference, unless cached

    def __post_init__(self):
        if self.stage not in STAGES:
            raise InputError(f"Unknown stage {self.stage!r}; choose one of {', '.join(STAGES)}.")


# --- small pure helpers --------------------------------------------------------------------------------------


def training_precision(setting: str) -> str:
    """Accelerate's mixed precision for a config's setting. ``"auto"``: under ``accelerate launch``, the launcher's
    setting (its ``--mixed_precision`` or config file; ``"no"`` when neither says); run directly, bf16 where the
    hardware computes it natively (``hardware.native_bf16``), else full precision.
    Measured on this repository's training steps: 1.27x (MEMO-Tiny) and 1.73x (official architecture) faster on an
    AVX512-BF16 CPU, losses within 0.1 % (bench/precision.py), and the same loss curve over MEMO-Tiny v2's first
    stage-1 steps (docs/TRAINING.md)."""
    if setting != "auto":
        return setting
    from accelerate import PartialState

    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched:
        return launched
    return "bf16" if native_bf16(PartialState().device) else "no"


def build_components(config: ModelConfig) -> dict[str, torch.nn.Module]:
    """The trained components: from ``init_from`` when given, else fresh from the preset plus overrides."""
    if config.init_from:
        components = load_components(config.init_from)
        return {name: components[name] for name in TRAINED_COMPONENTS if name in components}
    return {
        name: COMPONENT_CLASSES[name](**{**preset_config(config.preset, name), **config.overrides.get(name, {})})
        for name in TRAINED_COMPONENTS
    }


def encode(vae, pixels: torch.Tensor, sample: bool, generator=None) -> torch.Tensor:
    """pixels (n, 3, H, W) -> latents (n, c, h, w) x scaling factor; training targets use a posterior sample."""
    distribution = vae.encode(pixels).latent_dist
    latents = distribution.sample(generator) if sample else distribution.mean
    return latents * vae.config.scaling_factor


def clip_and_reference_latents(vae, batch: dict, num_past: int, drop_past: torch.Tensor):
    """The clip's latents (b, c, f, h, w), a posterior sample, and [reference, past frames] (b, c, 1 + p, h, w).

    Past frames of samples in ``drop_past`` are replaced by the reference (as the first clip at inference). The
    batch holds pixels, or with a latent cache (data/latent_cache.py) the posteriors of the same frames.
    """
    cached = "latent_mean" in batch
    if cached:
        scale = vae.config.scaling_factor
        mean = batch["latent_mean"]  # (b, f, c, h, w)
        latents = (mean + batch["latent_std"] * torch.randn_like(mean)) * scale
        reference, past = batch["reference_latent"][:, None] * scale, batch["past_latents"][:, -num_past:] * scale
    else:
        b, f = batch["pixels"].shape[:2]
        latents = encode(vae, batch["pixels"].flatten(0, 1), sample=True).unflatten(0, (b, f))  # (b, f, c, h, w)
        reference, past = batch["reference_pixels"][:, None], batch["past_pixels"][:, -num_past:]
    past = torch.where(drop_past[:, None, None, None, None], reference, past)
    stack = torch.cat([reference, past], dim=1)  # (b, 1 + p, ...)
    if not cached:  # the reference and past frames are still pixels
        stack = encode(vae, stack.flatten(0, 1), sample=False).unflatten(0, stack.shape[:2])
    return latents.transpose(1, 2), stack.transpose(1, 2)


def drop_mask(batch: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(batch, generator=generator) < probability


def save_weights(components: dict, vae_folder: str, manifest: dict, folder: Path) -> None:
    """The trained components in the official layout, the VAE next to them, and our manifest."""
    save_components(components, folder)
    if (folder / "vae").exists():
        shutil.rmtree(folder / "vae")
    shutil.copytree(vae_folder, folder / "vae")
    (folder / MANIFEST_NAME).write_text(json.dumps({**manifest, "vae": "vae"}, indent=2))


# --- the loop ------------------------------------------------------------------------------------------------


def train(config: TrainConfig, resume: bool = False) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import AutoencoderKL
    from diffusers.training_utils import EMAModel

    from memo_model.data.dataset import TalkingFaceDataset
    from memo_model.data.latent_cache import cache_latents
    from memo_model.vision.face import ThumbnailEmbedder

    output = Path(config.output_dir)
    accelerator = Accelerator(mixed_precision=training_precision(config.mixed_precision), project_dir=str(output))
    set_seed(config.seed, device_specific=True)
    stage = STAGES[config.stage]

    # 1. Models: frozen VAE, the components, the stage's trainable parameters
    vae = AutoencoderKL.from_pretrained(config.model.vae).requires_grad_(False).eval()
    components = build_components(config.model)
    trainable = apply_stage(stage, components)
    if config.gradient_checkpointing:
        components["reference_net"].enable_gradient_checkpointing()
        components["diffusion_net"].enable_gradient_checkpointing()
    module = TrainingModule(components)
    ema = EMAModel(trainable, decay=config.ema_decay) if config.ema_decay else None

    # 2. Data (with the latent cache: every take VAE-encoded once, the main process first, the others reuse it)
    vae.to(accelerator.device)
    latents = None
    if config.data.cache_latents:
        with accelerator.main_process_first():
            latents = cache_latents(config.data.root, vae, config.data.resolution, log=accelerator.print)
    dataset = TalkingFaceDataset(
        config.data.root,
        resolution=config.data.resolution,
        clip_frames=config.data.clip_frames,
        max_past_frames=max(config.data.past_frames),
        identity_embedder=ThumbnailEmbedder(config.identity_thumbnail),
        seed=config.seed,
        cache_frames=config.data.cache_frames,
        latents=latents,
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, shuffle=True, num_workers=config.data.num_workers, drop_last=True
    )

    # 3. Optimiser (constant learning rate, as appendix D)
    optimizer = torch.optim.AdamW(
        trainable,
        lr=config.learning_rate,
        betas=config.adam_betas,
        weight_decay=config.weight_decay,
        eps=config.adam_epsilon,
    )
    module, optimizer, loader = accelerator.prepare(module, optimizer, loader)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    # 4. Resume
    checkpoints = output / "checkpoints"
    step = 0
    if resume and checkpoints.is_dir():
        latest = max(checkpoints.glob("step-*"), key=lambda p: int(p.name.split("-")[1]), default=None)
        if latest is not None:
            accelerator.load_state(str(latest))
            step = int(latest.name.split("-")[1])
            accelerator.print(f"resumed from {latest} at step {step}")
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        (output / "train_config.json").write_text(json.dumps(to_dict(config), indent=2))
        run = {"num_processes": accelerator.num_processes, "device": str(accelerator.device), "resumed_at": step}
        (output / "run_info.json").write_text(json.dumps(run, indent=2))
    # Appends with or without --resume: one log per output_dir, as its checkpoints are kept too.
    log = CsvLog(output / LOG_FILE, LOG_COLUMNS, append=True) if accelerator.is_main_process else None
    generator = torch.Generator().manual_seed(config.seed * 1009 + step * 7 + accelerator.process_index)
    choices = random.Random(config.seed + step + accelerator.process_index)
    nets = accelerator.unwrap_model(module).nets

    # 5. Training loop
    started = time.perf_counter()
    epoch = step * config.batch_size * accelerator.num_processes // max(len(dataset), 1)
    while step < config.max_steps:
        dataset.epoch = epoch
        for batch in loader:
            if step >= config.max_steps:
                break
            with accelerator.accumulate(module):
                threshold = config.spike_threshold if step >= config.spike_filter_start else None
                # Through the prepared module, so that distributed runs synchronise gradients.
                loss, per_sample, dropped = module(
                    batch, vae, config, stage.uses_audio, choices.choice(config.data.past_frames), generator, threshold
                )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.step(trainable)
            step += 1
            if accelerator.is_main_process and (step % config.log_every == 0 or step == 1):
                log.write(log_row(step, loss.item(), per_sample, dropped, time.perf_counter() - started))
            if checkpoint_due(step, config.max_steps, config.checkpoint_every):
                accelerator.wait_for_everyone()
                accelerator.save_state(str(checkpoints / f"step-{step}"))
                if accelerator.is_main_process:
                    _prune(checkpoints, config.keep_checkpoints)
        epoch += 1

    # 6. Final weights in the official layout (EMA weights when EMA is on)
    accelerator.wait_for_everyone()
    weights = output / "weights"
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(trainable)
        save_weights(dict(nets.items()), config.model.vae, config.model.manifest, weights)
    accelerator.end_training()
    return weights


class TrainingModule(torch.nn.Module):
    """The trained components as one module whose forward is a training step (what accelerate/DDP wrap)."""

    def __init__(self, components: dict[str, torch.nn.Module]):
        super().__init__()
        self.nets = torch.nn.ModuleDict(components)

    def forward(self, batch, vae, config, uses_audio, num_past, generator, threshold):
        return training_step(self.nets, vae, batch, config, uses_audio, num_past, generator, threshold)


def training_step(nets, vae, batch, config: TrainConfig, uses_audio: bool, num_past: int, generator, threshold):
    """One forward pass and the loss; returns (loss, per-sample losses, samples dropped by the spike filter)."""
    device = batch["emotion"].device
    b = batch["emotion"].shape[0]
    dropout = config.dropout

    drop_past = drop_mask(b, dropout.past_frames, generator).to(device)
    with torch.no_grad():
        latents, stack_latents = clip_and_reference_latents(vae, batch, num_past, drop_past)

    # Condition dropout: a dropped condition is what the unconditional guidance pass sees (pipelines/conditions.py).
    # Stage 1 has no audio modules: its samples see neither the audio nor the emotion.
    kept = Kept(
        reference=~drop_mask(b, dropout.reference, generator).to(device),
        audio=(~drop_mask(b, dropout.audio, generator) if uses_audio else torch.zeros(b, dtype=torch.bool)).to(device),
        emotion=torch.full((b,), uses_audio, device=device),
    )
    face_tokens = nets["image_proj"](conditions.face_embeddings(batch["face_embedding"], kept.reference))
    reference = nets["reference_net"](stack_latents, face_tokens)
    memory = nets["diffusion_net"].write_memory(reference)
    audio_tokens = conditions.audio_tokens(nets["audio_proj"](batch["audio_features"]), kept.audio)
    emotion = conditions.emotions(batch["emotion"], kept.emotion)

    sigmas = sample_sigmas(b, generator).to(device)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    noisy = add_noise(latents, noise, sigmas)
    velocity = nets["diffusion_net"](
        noisy, sigmas * 1000, reference, face_tokens, audio_tokens, emotion, memory, use_reference=kept.reference
    )
    emphasis = [(motion_map(latents), config.motion_loss_weight)] if config.motion_loss_weight else []
    if config.reference_loss_weight:
        emphasis.append((reference_difference_map(latents, stack_latents[:, :, 0]), config.reference_loss_weight))
    weights = emphasis_weights(emphasis) if emphasis else None
    per_sample = flow_matching_loss(velocity, latents, noise, sigmas, config.loss_weighting, weights)
    loss, dropped = filter_spikes(per_sample, threshold)
    return loss, per_sample.detach(), dropped


def log_row(step: int, loss: float, per_sample: torch.Tensor, dropped: int, elapsed: float) -> list:
    """One row of log.csv (LOG_COLUMNS): the filtered loss, the raw mean before the spike filter, samples dropped."""
    raw = per_sample.mean().item()
    return [step, f"{loss:.6f}", f"{raw:.6f}" if math.isfinite(raw) else "nan", dropped, f"{elapsed:.1f}"]


def _prune(folder: Path, keep: int) -> None:
    states = sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in states[:-keep]:
        shutil.rmtree(old)


def main_from_args(args) -> int:
    config = load_yaml(TrainConfig, args.config)
    if getattr(args, "max_steps", None) is not None:
        config = replace(config, max_steps=args.max_steps)
    train(config, resume=args.resume)
    return 0
