"""Wall time and peak memory of the whole pipeline against audio length (bundled MEMO-Tiny by default).

Each length runs in a fresh process so that peak RSS belongs to that run alone. Time should grow linearly with
the audio length; peak memory should stay flat (frames are streamed, the memory is constant-size). Few steps keep
the 300 s run short: the denoiser's cost per step does not depend on the length, so the scaling is the same.

    python -m bench.pipeline_length --seconds 5 60 300 --steps 2          # bench/results/pipeline_length.json
    python -m bench.pipeline_length --weights random-tiny --seconds 10 60  # the untrained test model
    OMP_NUM_THREADS=1 python -m bench.pipeline_length ...                  # torch on one thread
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(weights: str, seconds: float, steps: int, workdir: str) -> dict:
    """Runs inside the child process: one generation, then its own measurements."""
    import numpy as np
    import soundfile as sf
    import torch
    from PIL import Image

    from memo_model.loading import load_pipeline
    from memo_model.pipelines.request import GenerationRequest

    work = Path(workdir)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    voice = np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    sf.write(work / "speech.wav", (0.3 * voice + 0.01 * rng.standard_normal(len(t))).astype(np.float32), 16000)
    Image.open(ROOT / "tests" / "fixtures" / "astronaut_256.jpg").convert("RGB").save(work / "portrait.png")

    pipeline = load_pipeline(None if weights == "bundled" else weights, device="cpu")
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    request = GenerationRequest(
        image=work / "portrait.png", audio=work / "speech.wav", output=work / f"out_{seconds:g}.mp4", steps=steps
    )
    started = time.perf_counter()
    result = pipeline(request)
    wall = time.perf_counter() - started
    return {
        "audio_seconds": seconds,
        "frames": result.num_frames,
        "clips": len(result.clip_emotions.used),
        "steps": steps,
        "wall_seconds": round(wall, 2),
        "seconds_per_clip": round(wall / len(result.clip_emotions.used), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
        "load_average_1min": round(__import__("os").getloadavg()[0], 2),
        "rss_after_loading_mb": round(rss_loaded, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--weights", default="bundled", help="bundled, random-tiny or a weights folder")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "pipeline_length.json"))
    parser.add_argument("--child", nargs=4, metavar=("WEIGHTS", "SECONDS", "STEPS", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        weights, seconds, steps, workdir = args.child
        print(json.dumps(run_one(weights, float(seconds), int(steps), workdir)))
        return

    from memo_model.testing import write_random_tiny_weights

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.weights == "random-tiny":
            weights, model = write_random_tiny_weights(Path(tmp) / "tiny"), "tiny-random (untrained, tests only)"
        elif args.weights == "bundled":
            weights, model = "bundled", "MEMO-Tiny (bundled)"
        else:
            weights, model = args.weights, args.weights
        for seconds in args.seconds:
            child = [
                sys.executable,
                "-m",
                "bench.pipeline_length",
                "--child",
                str(weights),
                str(seconds),
                str(args.steps),
                tmp,
            ]
            output = subprocess.run(child, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    report = {
        "benchmark": "pipeline_length",
        "model": model,
        "steps": args.steps,
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "runs": rows,
    }
    first = rows[0]
    report["ratios_vs_first"] = [
        {
            "audio_seconds": row["audio_seconds"],
            "audio_ratio": round(row["audio_seconds"] / first["audio_seconds"], 2),
            "time_ratio": round(row["wall_seconds"] / first["wall_seconds"], 2),
            "peak_rss_ratio": round(row["peak_rss_mb"] / first["peak_rss_mb"], 3),
        }
        for row in rows[1:]
    ]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"{'audio s':>8} {'clips':>6} {'wall s':>8} {'s/clip':>7} {'peak RSS MB':>12}")
    for row in rows:
        print(f"{row['audio_seconds']:8.0f} {row['clips']:6d} {row['wall_seconds']:8.1f} "
              f"{row['seconds_per_clip']:7.2f} {row['peak_rss_mb']:12.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
