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
- ``threads``: torch's CPU threads for a run. ``"auto"`` (the default) uses only the cores other processes leave
  free at the start of the run (``free_cores``), never more than torch's thread count: on a 2-core machine beside
  one busy process, a denoiser call took 0.035 s on 1 thread and 0.086 s on 2, which wait at every operation for
  the one the scheduler has put aside — and their times vary 20-fold, so no estimate can hold.
- ``cpu_offload``: for GPUs too small for every component at once. Components wait in CPU memory and move to the
  GPU one at a time, when they run (``ModelOffload``); peak GPU memory is then the largest component plus its
  activations, at the cost of a host-to-device copy per component and clip.
"""

import contextlib
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from memo_model.hardware import cpu_bf16_support

FINAL_SIGMA = 1e-3  # diffusers' FlowMatch sigma_min (1 / num_train_timesteps): the last step's σ
PRECISIONS = ("auto", "float32", "bfloat16")
LOADAVG = Path("/proc/loadavg")  # its 4th field: tasks runnable now / all tasks (Linux)
LOAD_READINGS, LOAD_INTERVAL = 5, 0.005  # median of 5 readings 5 ms apart


@dataclass(frozen=True)
class SpeedOptions:
    """How a ``MemoPipeline`` runs (see the module docstring); the defaults are the measured best on CPU."""

    reuse_final_velocity: bool = True
    channels_last: bool = False
    compile: bool = False
    cpu_offload: bool = False
    precision: str = "auto"
    threads: int | str = "auto"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}.")
        if self.threads != "auto" and not (isinstance(self.threads, int) and self.threads >= 1):
            raise ValueError(f"threads must be 'auto' or a positive number; got {self.threads!r}.")


def free_cores() -> int | None:
    """The cores this process may use that no other process is running on right now: its CPUs less the runnable
    tasks of other processes (``/proc/loadavg`` less this process's own runnable threads, the median of a few
    readings); ``None`` where that count is unknown (not Linux)."""
    try:
        others = []
        for _ in range(LOAD_READINGS):
            runnable = int(LOADAVG.read_text().split()[3].split("/")[0])
            others.append(runnable - _own_runnable_threads())
            time.sleep(LOAD_INTERVAL)
    except (OSError, IndexError, ValueError):
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus - max(0, round(statistics.median(others))))


def _own_runnable_threads() -> int:
    """Threads of this process in state R (running or runnable), the one reading included."""
    count = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            count += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue  # the thread ended while being read
    return count


@contextlib.contextmanager
def cpu_threads(options: SpeedOptions, device: torch.device):
    """Run with ``options.threads`` torch threads (``"auto"``: the free cores, at most torch's current count), then
    restore torch's count; yields the number used. GPUs: torch's count unchanged."""
    before = torch.get_num_threads()
    if device.type != "cpu":
        yield before
        return
    threads = options.threads if options.threads != "auto" else min(before, free_cores() or before)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


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
