"""Small resumable checkpoints for single-model runs (MEMO-Tiny's VAE and emotion head, ``memo_model/tiny/``).

A checkpoint folder (``CHECKPOINT_DIR`` in the run folder) holds the model's weights and the optimiser's per-parameter
state (e.g. Adam moments) as safetensors, with the step in the file's metadata; the optimiser's hyper-parameters come
from the run itself; ``loop.resume_step`` restores it. (The diffusion stages use accelerate's own states instead, see
``train.py``.)
"""

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

CHECKPOINT_DIR = "checkpoint"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / MODEL_FILE)
    moments = {
        f"{index}.{name}": value
        for index, state in optimizer.state_dict()["state"].items()
        for name, value in state.items()
    }
    save_file(moments, folder / OPTIMIZER_FILE, metadata={"step": str(step)})


def has_checkpoint(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file() and (folder / OPTIMIZER_FILE).is_file()


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore weights and optimiser state in place; returns the step the checkpoint was written at."""
    model.load_state_dict(load_file(folder / MODEL_FILE))
    with safe_open(folder / OPTIMIZER_FILE, "pt") as handle:
        step = int(handle.metadata()["step"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(folder / OPTIMIZER_FILE).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return step
