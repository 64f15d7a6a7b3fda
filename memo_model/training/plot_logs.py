"""Loss curves of training runs (their ``log.csv``), one panel per run, into a PNG.

    python -m memo_model.training.plot_logs runs/memo-tiny/stage1 runs/memo-tiny/stage2_warmup \
        runs/memo-tiny/stage2 --output docs/images/memo_tiny_training_loss.png

A resumed run appends to its log, so rows whose step is not after the previous row's (the steps redone after a
resume) replace the earlier ones. The thin line is the logged loss, the thick one a moving average.
"""

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_log(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses) of a log.csv, the last value kept for steps written twice."""
    by_step: dict[int, float] = {}
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            by_step[int(record["step"])] = float(record["loss"])
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps])


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def plot_runs(runs: list[Path], output: Path, window: int = 10) -> Path:
    figure, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.2), squeeze=False)
    for axis, run in zip(axes[0], runs, strict=True):
        steps, losses = read_log(run / "log.csv")
        axis.plot(steps, losses, color="#9bb7d4", linewidth=0.8, label="logged")
        axis.plot(steps, moving_average(losses, window), color="#1f4e79", linewidth=2, label=f"mean of {window}")
        axis.set_title(run.name)
        axis.set_xlabel("step")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("flow-matching loss")
    axes[0][0].legend()
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding log.csv")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--window", type=int, default=10, help="moving-average window, in logged rows")
    args = parser.parse_args()
    print(plot_runs(args.runs, args.output, args.window))


if __name__ == "__main__":
    main()
