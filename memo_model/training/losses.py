"""The rectified-flow objective (paper §3 Eq. 1, §4.2 Eq. 5; docs/CHECKPOINT.md §4.1), as pure functions.

Noising follows the paper / SD3: ``z_t = (1 − t) z_0 + t ε`` with t = σ ∈ (0, 1] (σ = timestep / 1000). The
network predicts the velocity ``v = ε − z_0``. Two weightings of the same regression are offered:

- ``"official"`` (default): the official code's loss, the mean squared error of the implied clean latents,
  ``ẑ_0 = z_t − σ v̂`` → ``‖ẑ_0 − z_0‖² = σ² ‖v̂ − v‖²``. The paper's figures — loss "converges and fluctuates
  around 0.03", spikes filtered above 0.1 — are on this scale, so the robust filter's threshold is too.
- ``"paper"``: Eq. 1 read literally, ``λ(t) ‖ε̂ − ε‖²`` with ``λ(t) = 1 / (1 − t)²`` and ``ε̂ = z_t + (1 − t) v̂``,
  which equals the plain velocity error ``‖v̂ − v‖²`` (the SD3 objective).

Timesteps are drawn logit-normal (SD3, ``weighting_scheme: logit_normal``, mean 0, std 1) and snapped to the
scheduler's 1000 training timesteps, as the official code does.

Legend: b batch, c latent channels, f frames, h w latent size.
"""

from typing import Literal

import torch

NUM_TRAIN_TIMESTEPS = 1000  # FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
SPIKE_THRESHOLD = 0.1  # paper §4.3: drop samples whose loss jumps above 0.1 (loss normally ~0.03)

Weighting = Literal["official", "paper"]


def sample_sigmas(
    batch: int,
    generator: torch.Generator | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
) -> torch.Tensor:
    """Logit-normal σ per sample, snapped to the training grid: u = sigmoid(N(mean, std)), t = grid[floor(u·N)].

    The grid is the scheduler's training timesteps 1000, 999, ..., 1 (so σ = 1 at index 0 and 0.001 at the end).
    Returns σ (b,) in (0, 1].
    """
    u = torch.sigmoid(mean + std * torch.randn(batch, generator=generator))
    index = (u * num_train_timesteps).long().clamp(max=num_train_timesteps - 1)
    timesteps = torch.linspace(num_train_timesteps, 1, num_train_timesteps)
    return timesteps[index] / num_train_timesteps


def add_noise(latents: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """z_t = σ ε + (1 − σ) z_0, with σ (b,) broadcast over (b, c, f, h, w)."""
    sigma = sigmas.view(-1, *([1] * (latents.dim() - 1))).to(latents.dtype)
    return sigma * noise + (1.0 - sigma) * latents


def _unit_mean(value_map: torch.Tensor) -> torch.Tensor:
    """(b, 1, h, w) non-negative map divided by its spatial mean per sample."""
    return value_map / value_map.mean(dim=(2, 3), keepdim=True).clamp(min=1e-8)


def emphasis_weights(maps: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """Per-pixel loss weights ``(1 + Σ sᵢ·mapᵢ) / (1 + Σ sᵢ)`` from (map, strength) pairs, maps (b, 1, h, w) of
    mean 1: 1 on average per sample, so the loss keeps the scale the spike filter's threshold is set for.
    Returns (b, 1, 1, h, w)."""
    total = 1.0 + sum(strength for _, strength in maps)
    weights = 1.0 + sum(strength * value_map for value_map, strength in maps)
    return (weights / total).unsqueeze(2)


def motion_map(latents: torch.Tensor) -> torch.Tensor:
    """What moves within the clip: the variance over frames (mean over channels), mean 1 per sample.

    latents: (b, c, f, h, w), the clean clip -> (b, 1, h, w). On talking faces it is the mouth (and blinks): a few
    latent pixels out of 256 for MEMO-Tiny, which the plain mean barely feels (the mouth's variance is ~40× the
    mean on MEMO-Tiny's training clips, its std only ~7×, hence the variance).
    """
    return _unit_mean(latents.float().var(dim=2).mean(dim=1, keepdim=True))


def reference_difference_map(latents: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Where the clip differs from its reference image: mean squared difference over frames and channels,
    mean 1 per sample. latents (b, c, f, h, w), reference (b, c, h, w) -> (b, 1, h, w).

    The references are the same person with another emotion (emotion-decoupled sampling), so the map lights up
    the expression — brows, eyes, mouth corners — which holds still for a second and more and so is missing from
    ``motion_map``; the mouth and head motion show in it too.
    """
    difference = (latents.float() - reference.float().unsqueeze(2)).square().mean(dim=(1, 2))
    return _unit_mean(difference.unsqueeze(1))


def motion_weights(latents: torch.Tensor, strength: float) -> torch.Tensor:
    """Loss weights that favour what moves within the clip — an addition for MEMO-Tiny, not the paper's.

    ``emphasis_weights`` of ``motion_map``; ``strength`` 0 gives ones (the paper's loss). Returns (b, 1, 1, h, w).
    """
    return emphasis_weights([(motion_map(latents), strength)])


def flow_matching_loss(
    velocity: torch.Tensor,
    latents: torch.Tensor,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    weighting: Weighting = "official",
    pixel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample loss (b,), computed in float32 (see the module docstring for the two weightings).

    ``pixel_weights`` (broadcastable to the latents, e.g. ``motion_weights``) weight each latent value's error.
    """
    velocity, latents, noise = velocity.float(), latents.float(), noise.float()
    squared = (velocity - (noise - latents)).square()
    if pixel_weights is not None:
        squared = squared * pixel_weights.float()
    error = squared.flatten(1).mean(dim=1)  # ‖v̂ − v‖² per sample
    if weighting == "paper":
        return error
    if weighting == "official":
        return sigmas.float().square().to(error.device) * error
    raise ValueError(f"Unknown loss weighting {weighting!r}; use 'official' or 'paper'.")


def filter_spikes(per_sample: torch.Tensor, threshold: float | None = SPIKE_THRESHOLD) -> tuple[torch.Tensor, int]:
    """The robust training loss (paper §4.3): mean over samples at or below ``threshold``; also how many were dropped.

    Dropped samples contribute nothing; if all are dropped the loss is a zero that still has a graph.
    """
    if threshold is None:
        return per_sample.mean(), 0
    keep = per_sample.detach() <= threshold
    kept = int(keep.sum())
    return (per_sample * keep).sum() / max(kept, 1), per_sample.numel() - kept
