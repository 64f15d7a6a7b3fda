"""Training speed with and without the VAE latent cache (memo_model/data/latent_cache.py).

Runs the real training loop (``memo_model.training.train.train``) of one config twice for the same number of
steps, once encoding the frames at every step and once from the latent cache, and reads the loop's own
``log.csv``: seconds per step over the first steps (videos still being decoded into memory on the plain path) and
over the last ones (steady state), plus the one-off time to build the cache.

    python -m bench.training_step                                    # MEMO-Tiny's expression fine-tune config
    python -m bench.training_step --config configs/memo_tiny_stage2.yaml --steps 250 --steady-from 170

Results go to bench/results/training_step.json (one entry per config and step counts); the runs' outputs to
``--output`` (not committed).
"""

import argparse
import csv
import os
import time
from dataclasses import replace
from pathlib import Path

from bench.results_file import folder_name, record_run

ROOT = Path(__file__).resolve().parents[1]


def elapsed_by_step(log: Path) -> dict[int, float]:
    with log.open() as handle:
        return {int(row["step"]): float(row["elapsed_s"]) for row in csv.DictReader(handle)}


def seconds_per_step(elapsed: dict[int, float], first: int, last: int) -> float:
    return (elapsed[last] - elapsed[first]) / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/memo_tiny_stage2_expression.yaml")
    parser.add_argument("--steps", type=int, default=250, help="steps of each run (a multiple of 10)")
    parser.add_argument("--steady-from", type=int, default=170, help="steady state: from this step to the last")
    parser.add_argument("--output", default="runs/bench_training_step")
    parser.add_argument("--results", default=str(ROOT / "bench/results/training_step.json"))
    args = parser.parse_args()

    import torch
    from diffusers import AutoencoderKL

    from memo_model.config import load_yaml
    from memo_model.data.latent_cache import cache_latents, latent_folder
    from memo_model.training.train import TrainConfig, train

    base = load_yaml(TrainConfig, args.config)
    output = Path(args.output)

    # The cache, built once (timed on its own; the cached run then finds it complete)
    vae = AutoencoderKL.from_pretrained(base.model.vae).requires_grad_(False).eval()
    folder = latent_folder(base.data.root, vae, base.data.resolution)
    already = len(list(folder.glob("*.safetensors"))) if folder.is_dir() else 0
    started = time.perf_counter()
    cache_latents(base.data.root, vae, base.data.resolution, log=print)
    cache_seconds = time.perf_counter() - started
    cache_mb = sum(path.stat().st_size for path in folder.glob("*.safetensors")) / 2**20
    del vae

    runs = {}
    for name, cached in (("encode_every_step", False), ("latent_cache", True)):
        config = replace(
            base,
            output_dir=str(output / name),
            max_steps=args.steps,
            checkpoint_every=10 * args.steps,  # no checkpoint inside the timed steps (the final one comes after)
            log_every=10,
            data=replace(base.data, cache_latents=cached),
        )
        (output / name / "log.csv").unlink(missing_ok=True)
        torch.manual_seed(0)
        train(config)
        elapsed = elapsed_by_step(output / name / "log.csv")
        runs[name] = {
            "s_per_step_first": round(seconds_per_step(elapsed, 1, args.steady_from), 3),
            "s_per_step_steady": round(seconds_per_step(elapsed, args.steady_from, args.steps), 3),
        }
        print(name, runs[name])

    plain, fast = runs["encode_every_step"], runs["latent_cache"]
    entry = {
        "config": folder_name(args.config, ROOT),
        "steps": args.steps,
        "steady_from": args.steady_from,
        "batch_size": base.batch_size,
        "past_frames": list(base.data.past_frames),
        **runs,
        "speedup_steady": round(plain["s_per_step_steady"] / fast["s_per_step_steady"], 2),
        "speedup_first": round(plain["s_per_step_first"] / fast["s_per_step_first"], 2),
        "cache_build_s": round(cache_seconds, 1),
        "cache_takes_already_there": already,
        "cache_mb": round(cache_mb, 1),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    record_run(args.results, "training_step", entry, key=lambda run: (run["config"], run["steps"], run["steady_from"]))
    print(entry)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
