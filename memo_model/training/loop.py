"""What the training loops share: the learning-rate schedule, ``log.csv``, when to checkpoint, resuming, the report.

Each trainer keeps its own flat loop, top to bottom: the paper's two stages (``train.py``) and MEMO-Tiny's own parts
(``memo_model/tiny/``: the VAE, the emotion head, the face analyzer). These are the pieces they have in common, so
that each is decided once.
"""

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from memo_model.training.checkpoints import MODEL_FILE, load_checkpoint

LOG_FILE = "log.csv"
REPORT_FILE = "report.json"


# --- the learning rate ------------------------------------------------------------------------------------------


def cosine_share(step: int, steps: int, warmup_steps: int = 0, final_share: float = 0.0) -> float:
    """The share of the peak learning rate for the update after ``step`` updates (0-based) of a ``steps``-long run.

    A cosine decay from 1 at step 0 to ``final_share`` at ``steps`` (and after it), multiplied by a linear warm-up
    from 1 / ``warmup_steps`` to 1 over the first ``warmup_steps`` updates (none when 0).
    """
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    progress = min(step, steps) / max(steps, 1)
    return warmup * (final_share + (1 - final_share) * 0.5 * (1 + np.cos(np.pi * progress)))


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate


# --- the run folder: log, checkpoints, report --------------------------------------------------------------------


class CsvLog:
    """A run's ``log.csv``: the header, then one row per ``write``, on disk at once (a stopped run keeps its log).

    ``append``: continue the file when it exists (a resumed run); otherwise it starts anew.
    """

    def __init__(self, path: Path, columns: Sequence[str], append: bool):
        self.path = path
        if not (append and path.is_file()):
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerow(columns)

    def write(self, row: Sequence) -> None:
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(row)


def checkpoint_due(step: int, steps: int, every: int) -> bool:
    """A checkpoint every ``every`` steps and one at the last step, so a finished run can be continued."""
    return step % every == 0 or step == steps


def resume_step(checkpoint: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore a single-model run from its checkpoint folder (checkpoints.py) in place; returns the step to go on."""
    if not (checkpoint / MODEL_FILE).is_file():
        raise FileNotFoundError(f"No checkpoint in {checkpoint} to resume from — run once without --resume.")
    step = load_checkpoint(checkpoint, model, optimizer)
    print(f"resumed from step {step}")
    return step


def write_report(folder: Path, report: dict) -> None:
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
