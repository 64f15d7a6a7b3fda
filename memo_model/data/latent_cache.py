"""VAE latents of a dataset's frames, computed once instead of at every training step.

The VAE is frozen in both training stages, so encoding a take's frames gives the same posterior every time the take is
drawn. On MEMO-Tiny's stage-2 runs (16 frames to generate, a reference and up to 48 past frames, batch 2) encoding was
a third of each step, and the cache makes steps 1.5x faster (1.8x while the plain path still decodes videos;
``bench/training_step.py``). Building it costs ~7.5 minutes (446 MB) for MEMO-Tiny's 32-minute dataset, so it pays for
itself after ~600 steps, or at once when the runs of several stages share a dataset. The cache stores each frame's
posterior *mean and standard deviation*, so the training targets are still fresh posterior samples (``mean + std · ε``,
the same distribution as ``vae.encode(x).latent_dist.sample()``) while the reference and the past frames use the mean,
as the uncached path does. ``TalkingFaceDataset(latents=folder)`` reads it.

Layout, next to the dataset's other caches: ``latents/<resolution>px-<vae fingerprint>/<row id>.safetensors``
with ``mean`` and ``std`` (T, c, h, w), and ``reference_mean`` (1, c, h, w) when the row has a reference image.
The fingerprint is a hash of the VAE's config and encoder weights: a VAE with another encoder gets its own folder,
never a stale one (a decoder-only fine-tune keeps the cache). Values are unscaled (multiply by
``vae.config.scaling_factor``, as ``training.train.encode`` does).

Legend: T frames of a take, c latent channels, h w latent size.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from memo_model.data.dataset import decode_video, read_reference, read_rows, to_pixels

LATENTS_DIR = "latents"


def encoder_fingerprint(vae) -> str:
    """Short hash of what decides the posterior: the encoder's (and quant_conv's) weights and the architecture.

    Config keys starting with "_" (the folder it was loaded from, the diffusers version) are left out: the same
    VAE read from another path keeps its cache.
    """
    architecture = {key: value for key, value in dict(vae.config).items() if not key.startswith("_")}
    digest = hashlib.sha256(json.dumps(architecture, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        if name.startswith(("encoder.", "quant_conv.")):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def latent_folder(root: str | Path, vae, resolution: int) -> Path:
    return Path(root) / LATENTS_DIR / f"{resolution}px-{encoder_fingerprint(vae)}"


@torch.no_grad()
def posterior(vae, frames: np.ndarray, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, H, W, 3) uint8 -> posterior mean and std, each (n, c, h, w) float32 on the CPU."""
    device = next(vae.parameters()).device
    means, stds = [], []
    for start in range(0, len(frames), batch_size):
        distribution = vae.encode(to_pixels(frames[start : start + batch_size]).to(device)).latent_dist
        means.append(distribution.mean.float().cpu().contiguous())
        stds.append(distribution.std.float().cpu().contiguous())
    return torch.cat(means), torch.cat(stds)


def cache_latents(root: str | Path, vae, resolution: int, batch_size: int = 64, log=None) -> Path:
    """Encode every row's frames (and reference image) that has no cache file yet; returns the cache folder."""
    root = Path(root)
    folder = latent_folder(root, vae, resolution)
    folder.mkdir(parents=True, exist_ok=True)
    rows = read_rows(root)
    missing = [row for row in rows if not (folder / f"{row['id']}.safetensors").is_file()]
    for done, row in enumerate(missing, start=1):
        mean, std = posterior(vae, decode_video(root / row["video"], resolution), batch_size)
        tensors = {"mean": mean, "std": std}
        if row.get("reference"):
            reference = read_reference(root, row, resolution)[None]  # as the dataset reads it
            tensors["reference_mean"] = posterior(vae, reference, batch_size)[0]
        partial = folder / f"{row['id']}.safetensors.partial"
        save_file(tensors, str(partial))
        partial.replace(folder / f"{row['id']}.safetensors")  # a killed run leaves no half-written cache file
        if log is not None and (done % 50 == 0 or done == len(missing)):
            log(f"latent cache: {done}/{len(missing)} takes encoded into {folder}")
    return folder
