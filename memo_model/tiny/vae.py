"""Train MEMO-Tiny's VAE: a small diffusers ``AutoencoderKL`` for 64 px synthetic faces (paper §3: latent diffusion).

MEMO denoises in the latent space of SD's VAE (factor 8, 4 channels). MEMO-Tiny works at 64 px, so its VAE keeps
4 latent channels but downsamples by 4 (three encoder levels): a 64 × 64 frame becomes a 4 × 16 × 16 latent.
The class is diffusers' ``AutoencoderKL`` unchanged; only its size (``TINY_VAE_CONFIG``) and weights are ours.

Run (writes ``OUTPUT/vae`` = config.json + diffusion_pytorch_model.safetensors, ``OUTPUT/checkpoint``, ``log.csv``,
``report.json`` and ``reconstructions.png``)::

    python -m memo_model train-vae --output /tmp/tiny_parts/vae_run --steps 1200 --max-minutes 21
    python -m memo_model train-vae --output /tmp/tiny_parts/vae_run --steps 2700 --resume --learning-rate 1.5e-3
    python -m memo_model train-vae --output /tmp/tiny_parts/decoder_run --init-from assets/memo-tiny/vae \
        --decoder-only --steps 1500

(the shipped run, 23 minutes on a shared CPU core: 23.8 dB held-out PSNR; docs/TRAINING.md has the details).

Data: every frame is rendered on the fly (one DataLoader worker renders while the main process trains) from a
random training identity (seed < ``HELD_OUT_SEED_START``) in a random expression / mouth / blink / pose state —
an endless stream, so there is nothing to overfit. Evaluation renders held-out identities only.

Loss: L1 on pixels in [-1, 1] plus a small gradient-difference term (keeps edges of eyes and lips sharp) plus
``KL_WEIGHT`` × KL(posterior ‖ N(0, I)), small so reconstructions are sharp but the latent stays bounded and smooth
enough to diffuse in. After training, ``scaling_factor`` is set to 1 / std of posterior samples on training frames
(the diffusers convention; SD's 0.18215 was found the same way), so scaled latents have unit variance.

``decoder_only`` (with ``init_from`` a trained VAE) freezes the encoder and keeps its ``scaling_factor``: the latent
space stays exactly the one the diffusion net was trained in, so a sharper decoder can replace the shipped one
without retraining anything else.
"""

import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset

from memo_model.data.synthetic.expression import one_hot_expression
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START, sample_identity
from memo_model.data.synthetic.renderer import FaceRenderer
from memo_model.data.synthetic.sample import random_state
from memo_model.training.checkpoints import CHECKPOINT_DIR, save_checkpoint
from memo_model.training.loop import (
    LOG_FILE,
    CsvLog,
    checkpoint_due,
    cosine_share,
    resume_step,
    set_learning_rate,
    write_report,
)

IMAGE_SIZE = 64  # MEMO-Tiny v1's resolution
TINY_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 3,  # three levels, two downsamples: latent factor 4
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    # 64 channels only at the 16 px level: wider full-resolution levels cost 2x the training time on one core
    # for little PSNR, and the decoder must stay fast (16 frames well under 1 s on one CPU core).
    "block_out_channels": (32, 32, 64),
    "layers_per_block": 1,
    "latent_channels": 4,  # as SD, so the diffusion net's conv_in has the official shape
    "norm_num_groups": 16,
    "sample_size": IMAGE_SIZE,
}
LATENT_FACTOR = 2 ** (len(TINY_VAE_CONFIG["block_out_channels"]) - 1)

# MEMO-Tiny v2 at 128 px: four levels, factor 8 as SD's VAE, so a 128 px frame is a 16 x 16 latent and the
# diffusion net costs what it cost at 64 px; the full-resolution level stays narrow (it dominates the cost).
V2_IMAGE_SIZE = 128
V2_VAE_CONFIG = {
    **TINY_VAE_CONFIG,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 32, 64, 128),  # 16 frames decode in ~1 s on one core (0.5 s in bf16)
    "sample_size": V2_IMAGE_SIZE,
}


def vae_config(image_size: int = IMAGE_SIZE, latent_channels: int = 4) -> dict:
    """The AutoencoderKL architecture for a frame size: 64 px -> v1 (factor 4), 128 px -> v2 (factor 8)."""
    base = {IMAGE_SIZE: TINY_VAE_CONFIG, V2_IMAGE_SIZE: V2_VAE_CONFIG}.get(image_size)
    if base is None:
        raise ValueError(f"No VAE architecture for {image_size} px frames; choose {IMAGE_SIZE} or {V2_IMAGE_SIZE}.")
    return {**base, "latent_channels": latent_channels}


# A fresh encoder's posterior has std ~1 around means ~0.1: the decoder first sees mostly noise and learns slowly.
# Starting the log-variance at -6 (std 0.05) gives it informative latents from the first step; the KL term lets
# the variance grow back wherever that costs no reconstruction.
INITIAL_LOGVAR = -6.0
KL_WEIGHT = 1e-6  # small: sharp reconstructions, yet the posterior stays near N(0, I) in scale
GRADIENT_WEIGHT = 0.5  # image-gradient L1: penalises blurred edges more than plain L1 does
WARMUP_STEPS = 100  # the learning rate: loop.cosine_share with this warm-up ...
FINAL_LR_SHARE = 0.05  # ... and a cosine decay that ends at 5 % of the peak
SCALE_FRAMES = 512  # training frames used to measure the latent std for scaling_factor
LOG_COLUMNS = ("step", "loss", "l1", "gradient", "kl", "lr", "seconds")
RUN_FILE = "run.json"  # the architecture of a run, read back by --resume


# --- data: random frames of random people ----------------------------------------------------------------------


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames (n, h, w, 3) -> float pixels (n, 3, h, w) in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """Pixels (n, 3, h, w) in [-1, 1] -> uint8 frames (n, h, w, 3)."""
    return ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def render_frames(identity_seeds: np.ndarray, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """One frame per identity seed, each in a random talking state: (n, size, size, 3) uint8."""
    return np.stack([FaceRenderer(sample_identity(int(seed)), size)(random_state(rng)) for seed in identity_seeds])


def expression_map(renderer: FaceRenderer, state, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where the expression shows: the frame against the same face, pose and mouth with another expression,
    absolute difference (mean over channels), dilated by a pixel, divided by its mean. (size, size) float32."""
    other = (int(np.argmax(state.expression)) + int(rng.integers(1, len(state.expression)))) % len(state.expression)
    contrast = renderer(replace(state, expression=one_hot_expression(other)))
    difference = np.abs(frame.astype(np.float32) - contrast.astype(np.float32)).mean(axis=-1)
    difference = cv2.dilate(difference, np.ones((3, 3), np.uint8))
    return difference / max(float(difference.mean()), 1e-6)


class RenderedFaces(IterableDataset):
    """Endless batches of training frames: pixels (batch, 3, size, size) in [-1, 1]; with ``expression_weight``
    > 0 also per-pixel loss weights (batch, 1, size, size), mean 1, that favour the expression (``expression_map``)."""

    def __init__(
        self, batch_size: int, seed: int, first_step: int, expression_weight: float = 0.0, size: int = IMAGE_SIZE
    ):
        self.batch_size = batch_size
        self.size = size
        self.seed = seed
        self.first_step = first_step  # a resumed run continues with new frames instead of repeating old ones
        self.expression_weight = expression_weight

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.first_step])
        while True:
            seeds = rng.integers(0, HELD_OUT_SEED_START, self.batch_size)
            if not self.expression_weight:
                yield to_pixels(render_frames(seeds, rng, self.size)), None
                continue
            frames, maps = [], []
            for seed in seeds:
                renderer = FaceRenderer(sample_identity(int(seed)), self.size)
                state = random_state(rng)
                frames.append(renderer(state))
                maps.append(expression_map(renderer, state, frames[-1], rng))
            weights = (1 + self.expression_weight * np.stack(maps)) / (1 + self.expression_weight)
            yield to_pixels(np.stack(frames)), torch.from_numpy(weights[:, None]).float()


# --- losses and metrics (pure) ---------------------------------------------------------------------------------


def image_gradient_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between horizontal and vertical finite differences of two (n, c, h, w) images."""
    dx = (prediction.diff(dim=-1) - target.diff(dim=-1)).abs().mean()
    dy = (prediction.diff(dim=-2) - target.diff(dim=-2)).abs().mean()
    return dx + dy


def vae_losses(
    vae: AutoencoderKL,
    pixels: torch.Tensor,
    generator: torch.Generator,
    weights: torch.Tensor | None = None,
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """Reconstruction of a posterior sample (as the diffusion net's targets are), and the KL per latent value.

    ``weights`` (n, 1, h, w), mean 1 per image, weight the L1 term per pixel (``RenderedFaces``). ``bf16`` runs
    the networks under CPU bfloat16 autocast; the losses are computed in float32."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        posterior = vae.encode(pixels).latent_dist
        reconstruction = vae.decode(posterior.sample(generator)).sample.float()
    error = (reconstruction - pixels).abs()
    return {
        "l1": (error if weights is None else error * weights).mean(),
        "gradient": image_gradient_l1(reconstruction, pixels),
        "kl": posterior.kl().mean() / posterior.mean[0].numel(),
    }


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return losses["l1"] + GRADIENT_WEIGHT * losses["gradient"] + KL_WEIGHT * losses["kl"]


def psnr(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB of uint8 images (n, h, w, 3)."""
    error = ((prediction.astype(np.float64) - target.astype(np.float64)) ** 2).reshape(len(target), -1).mean(axis=1)
    return 10 * np.log10(255.0**2 / np.maximum(error, 1e-10))


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, frames: np.ndarray) -> np.ndarray:
    """uint8 frames (n, h, w, 3) -> reconstructions from the posterior mean, uint8 (n, h, w, 3)."""
    return to_uint8(vae.decode(vae.encode(to_pixels(frames)).latent_dist.mean).sample)


@torch.no_grad()
def latent_std(vae: AutoencoderKL, pixels: torch.Tensor, generator: torch.Generator) -> tuple[float, float]:
    """Mean and std of posterior samples over all latent values of ``pixels`` (n, 3, h, w)."""
    latents = torch.cat([vae.encode(chunk).latent_dist.sample(generator) for chunk in pixels.split(64)])
    return latents.mean().item(), latents.std().item()


def held_out_frames(num_frames: int, seed: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """Frames of ``num_frames`` different held-out people, (n, size, size, 3) uint8."""
    rng = np.random.default_rng([seed, 0x5EE])
    return render_frames(HELD_OUT_SEED_START + rng.permutation(100_000)[:num_frames], rng, size)


def evaluate_vae(vae: AutoencoderKL, num_frames: int = 256, seed: int = 1) -> dict[str, float]:
    """Held-out PSNR (dB) at the VAE's own frame size: mean, and the 5th percentile (the worst faces)."""
    vae.eval()
    frames = held_out_frames(num_frames, seed, vae.config.sample_size)
    scores = psnr(reconstruct(vae, frames), frames)
    return {"psnr": float(scores.mean()), "psnr_p5": float(np.percentile(scores, 5)), "frames": num_frames}


def reconstruction_grid(frames: np.ndarray, reconstructions: np.ndarray, columns: int = 8) -> np.ndarray:
    """Rows alternate originals / reconstructions; a 2-px white gap between cells. Returns (H, W, 3) uint8."""
    gap = 2
    n, size = len(frames), frames.shape[1]
    rows = -(-n // columns)
    grid = np.full((2 * rows * (size + gap) + gap, columns * (size + gap) + gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        for k, image in enumerate((frames[i], reconstructions[i])):
            y, x = gap + (2 * r + k) * (size + gap), gap + c * (size + gap)
            grid[y : y + size, x : x + size] = image
    return grid


@torch.no_grad()
def decode_seconds(vae: AutoencoderKL, num_frames: int = 16, repeats: int = 5) -> float:
    """Best-of-``repeats`` wall time to decode ``num_frames`` latents of the VAE's frame size (current threads)."""
    side = vae.config.sample_size // 2 ** (len(vae.config.block_out_channels) - 1)
    latents = torch.randn(num_frames, vae.config.latent_channels, side, side)
    vae.decode(latents)  # warm-up: first calls allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        vae.decode(latents)
        times.append(time.perf_counter() - started)
    return min(times)


# --- the training run -----------------------------------------------------------------------------------------


def train_vae(
    output_dir: str | Path,
    steps: int = 1000,
    resume: bool = False,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    checkpoint_every: int = 250,
    log_every: int = 25,
    seed: int = 0,
    threads: int = 1,
    num_workers: int = 1,
    eval_frames: int = 256,
    scale_frames: int = SCALE_FRAMES,
    max_seconds: float | None = None,
    init_from: str | Path | None = None,
    decoder_only: bool = False,
    expression_weight: float = 0.0,
    image_size: int = IMAGE_SIZE,
    latent_channels: int = 4,
    bf16: bool = False,
) -> dict:
    """Train (or continue) the tiny VAE; writes ``output_dir/vae`` (``save_pretrained``) and returns the report.

    ``max_seconds`` stops early (after a checkpoint) when the wall-time budget is spent. ``init_from``: a VAE folder
    to start from instead of a fresh init; ``decoder_only``: train only the decoder (module docstring);
    ``expression_weight`` > 0: weight the L1 term towards brows, eyes and mouth (``expression_map``; at 64 px the
    expression is a few pixels of them, which the plain L1 leaves smeared). ``image_size`` and ``latent_channels``
    choose the architecture (``vae_config``) of a fresh run; a resumed run keeps the one in ``run.json``.
    ``bf16``: CPU bfloat16 autocast for the networks (``vae_losses``).
    """
    if decoder_only and init_from is None:
        raise ValueError("decoder_only needs init_from: the trained VAE whose encoder (latent space) is kept.")
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    started = time.time()

    # 1. Model, optimiser, and the state of a previous run
    run_file = output / RUN_FILE
    if resume and run_file.is_file():
        architecture = json.loads(run_file.read_text())
    else:
        architecture = vae_config(image_size, latent_channels)
        run_file.write_text(json.dumps(architecture, indent=2) + "\n")
    if init_from is None:
        vae = AutoencoderKL(**architecture)
        with torch.no_grad():  # conv_out gives (mean, logvar) stacked on channels
            vae.encoder.conv_out.bias[vae.config.latent_channels :] = INITIAL_LOGVAR
    else:
        vae = AutoencoderKL.from_pretrained(init_from)
    if decoder_only:
        for part in (vae.encoder, vae.quant_conv):
            part.requires_grad_(False)
    trainable = [parameter for parameter in vae.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    checkpoint = output / CHECKPOINT_DIR
    first_step = resume_step(checkpoint, vae, optimizer) if resume else 0

    # 2. Data: one worker renders the next batches while this process trains
    size = vae.config.sample_size
    stream = RenderedFaces(batch_size, seed, first_step, expression_weight, size)
    loader = DataLoader(stream, batch_size=None, num_workers=num_workers, prefetch_factor=4 if num_workers else None)
    generator = torch.Generator().manual_seed(seed + first_step)

    # 3. Training loop
    log = CsvLog(output / LOG_FILE, LOG_COLUMNS, append=resume)
    vae.train()
    step = first_step
    running = dict.fromkeys(("loss", "l1", "gradient", "kl"), 0.0)
    for pixels, weights in loader:
        if step >= steps:
            break
        set_learning_rate(optimizer, learning_rate * cosine_share(step, steps, WARMUP_STEPS, FINAL_LR_SHARE))
        losses = vae_losses(vae, pixels, generator, weights, bf16)
        loss = total_loss(losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        step += 1

        running["loss"] += loss.item() / log_every
        for name, value in losses.items():
            running[name] += value.item() / log_every
        if step % log_every == 0:
            row = [step, *(round(running[k], 6) for k in LOG_COLUMNS[1:5])]
            row += [f"{optimizer.param_groups[0]['lr']:.2e}", round(time.time() - started, 1)]
            log.write(row)
            print(dict(zip(LOG_COLUMNS, row, strict=True)), flush=True)
            running = dict.fromkeys(running, 0.0)
        out_of_time = max_seconds is not None and time.time() - started > max_seconds
        if checkpoint_due(step, steps, checkpoint_every) or out_of_time:
            save_checkpoint(checkpoint, vae, optimizer, step)
        if out_of_time:
            print(f"stopping at step {step}: {max_seconds:.0f} s budget spent")
            break

    # 4. scaling_factor = 1 / std of training latents (diffusers convention), evaluation, outputs
    vae.eval()
    rng = np.random.default_rng([seed, 0x5CA1E])
    train_pixels = to_pixels(render_frames(rng.integers(0, HELD_OUT_SEED_START, scale_frames), rng, size))
    mean, std = latent_std(vae, train_pixels, torch.Generator().manual_seed(seed))
    if not decoder_only:  # a kept encoder keeps the scale the diffusion net was trained with
        vae.register_to_config(scaling_factor=1.0 / std)
    vae.save_pretrained(output / "vae")

    report = {
        "steps": step,
        "train_seconds": round(time.time() - started, 1),
        "latent_mean": mean,
        "latent_std": std,
        "scaling_factor": vae.config.scaling_factor,
        "decoder_only": decoder_only,
        "expression_weight": expression_weight,
        "bf16": bf16,
        "held_out": evaluate_vae(vae, eval_frames),
        "decode_16_frames_seconds": decode_seconds(vae),
        "decode_threads": torch.get_num_threads(),
    }
    frames = held_out_frames(16, seed=2, size=size)
    Image.fromarray(reconstruction_grid(frames, reconstruct(vae, frames))).save(output / "reconstructions.png")
    write_report(output, report)
    print(json.dumps(report, indent=2))
    return report
