"""How the pipeline runs, as opposed to what it computes: options that change speed and memory, not results.

Every option here was measured on and off (bench/optimisations.py, docs/PERFORMANCE.md); the defaults are the ones
that helped on the machines we measured. None changes a video beyond numerical noise:

- ``reuse_final_velocity``: the FlowMatch schedule (diffusers defaults, as the official pipeline) ends with an
  Euler step from σ = 0.001 to 0, which moves the latents by a thousandth of one velocity. Reusing the previous
  step's velocity there skips one denoiser call per clip (10 % at 10 steps); frames change by at most 1/255.
- ``channels_last``: convolution weights and activations in NHWC. Slower for MEMO-Tiny on CPU (0.92x).
- ``compile``: ``torch.compile`` on the diffusion net, in place. 1.14x per step for MEMO-Tiny on CPU after a
  206 s compile, so off by default; worth it for long videos on a GPU.
- ``precision``: ``"bfloat16"`` runs the networks under ``torch.autocast`` in bfloat16 (weights stay float32;
  normalisations and softmaxes stay float32 under autocast), ``"float32"`` does not, ``"auto"`` picks bfloat16 on
  CPUs with native bfloat16 (AMX or AVX512-BF16, ``cpu_bf16_support``), where it measured faster: MEMO-Tiny's
  pipeline 1.16x in CPU time on an AVX512-BF16 CPU, the official architecture at 256² 2.35x
  (``python -m bench.precision``), MEMO-Tiny 1.23x on an AMX one; frames within 10/255 of float32 (mean 0.3/255).
  CPUs with neither emulate it, 100x slower: float32 there. GPUs run their own half precision weights
  (``loading.choose_dtype``), so autocast stays off.
- ``cpu_offload``: for GPUs too small for every component at once. Components wait in CPU memory and move to the
  GPU one at a time, when they run (``ModelOffload``); peak GPU memory is then the largest component plus its
  activations, at the cost of a host-to-device copy per component and clip.
"""

import contextlib
from dataclasses import dataclass

import torch

FINAL_SIGMA = 1e-3  # diffusers' FlowMatch sigma_min (1 / num_train_timesteps): the last step's σ
PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class SpeedOptions:
    """How a ``MemoPipeline`` runs (see the module docstring); the defaults are the measured best on CPU."""

    reuse_final_velocity: bool = True
    channels_last: bool = False
    compile: bool = False
    cpu_offload: bool = False
    precision: str = "auto"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}.")


def cpu_bf16_support() -> str | None:
    """The CPU's native bfloat16 support: ``"amx"`` (AMX tiles), ``"avx512_bf16"``, or ``None`` (emulated)."""
    if torch.cpu._is_amx_tile_supported():
        return "amx"
    if torch.cpu._is_avx512_bf16_supported():
        return "avx512_bf16"
    return None


def resolve_precision(options: SpeedOptions, device: torch.device, dtype: torch.dtype) -> str:
    """The autocast precision a pipeline on ``device`` with weights in ``dtype`` runs: "bfloat16" or "float32".

    Half-precision weights (GPUs) already compute in their own dtype: autocast is left off there."""
    if dtype != torch.float32:
        return "float32"
    if options.precision != "auto":
        if options.precision == "bfloat16" and device.type == "cpu" and cpu_bf16_support() is None:
            raise ValueError("This CPU has no native bfloat16 (AMX or AVX512-BF16): it would be ~100x slower.")
        return options.precision
    return "bfloat16" if device.type == "cpu" and cpu_bf16_support() is not None else "float32"


def autocast(device: torch.device, precision: str):
    """The context the networks run in: bfloat16 autocast, or nothing."""
    if precision != "bfloat16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def skips_denoiser(sigma: float, options: SpeedOptions, have_velocity: bool) -> bool:
    """Whether the step at ``sigma`` reuses the previous velocity instead of calling the denoiser."""
    return options.reuse_final_velocity and have_velocity and sigma <= FINAL_SIGMA * 1.001


def denoiser_calls(steps: int, options: SpeedOptions) -> int:
    """Denoiser calls per clip for ``steps`` steps (every FlowMatch schedule of 2+ steps ends at σ 0.001)."""
    return steps - 1 if options.reuse_final_velocity and steps >= 2 else steps


def prepare_modules(modules: dict[str, torch.nn.Module], options: SpeedOptions) -> None:
    """Apply the layout and compile options in place (the modules keep their class and attributes)."""
    if options.channels_last:
        for module in modules.values():
            module.to(memory_format=torch.channels_last)
    if options.compile:
        modules["diffusion_net"].compile()


class ModelOffload:
    """Keeps components in CPU memory and moves each to the execution device when it runs, one at a time.

    ``use(module)`` returns the module, on the execution device; the one used before goes back to the CPU (with
    the execution device on the CPU the moves cost nothing). Unlike accelerate's forward hooks this also covers
    methods other than ``forward`` (``vae.decode``, ``diffusion_net.write_memory``).
    """

    def __init__(self, device: torch.device | str, enabled: bool, storage: torch.device | str = "cpu"):
        self.device, self.storage = torch.device(device), torch.device(storage)
        self.enabled = enabled
        self.active: torch.nn.Module | None = None
        self.moves = 0

    def use(self, module: torch.nn.Module) -> torch.nn.Module:
        if not self.enabled or module is self.active:
            return module
        if self.active is not None:
            self.active.to(self.storage)
        module.to(self.device)
        self.active = module
        self.moves += 1
        return module
