"""bfloat16 autocast on vs off for MEMO-Tiny's whole pipeline on this CPU: time and how far the frames move.

Runs the same request (the bundled example portrait and speech, the model's full-quality steps, fixed seed) in
float32 and under bfloat16 autocast, alternately ``--repeats`` times, and reports the median seconds of each, the
speed-up, the largest and mean frame difference (uint8 levels) and the CPU's bfloat16 support. Writes
``bench/results/precision.json``.

    python -m bench.precision [--seconds 3] [--repeats 3]
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.results_file import record_run
from memo_model.loading import load_pipeline
from memo_model.pipelines.request import GenerationRequest
from memo_model.pipelines.speed import SpeedOptions, cpu_bf16_support

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
RESULTS = ROOT / "bench" / "results" / "precision.json"


def generate(pipeline, request: GenerationRequest) -> tuple[float, np.ndarray]:
    frames = []
    started = time.perf_counter()
    pipeline(request, callback=lambda p: p.frames is not None and frames.append(p.frames))
    return time.perf_counter() - started, np.concatenate(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="audio length generated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipelines = {p: load_pipeline(device="cpu", options=SpeedOptions(precision=p)) for p in ("float32", "bfloat16")}
    times: dict[str, list[float]] = {p: [] for p in pipelines}
    frames: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        request = GenerationRequest(
            image=EXAMPLES / "synthetic_person_1.png",
            audio=EXAMPLES / "speech_1_happy_then_sad.wav",
            preview_seconds=args.seconds,  # the first seconds, at the full-quality steps below
            preview_steps=pipelines["float32"].model_info.default_steps,
            seed=0,
        )
        for repeat in range(args.repeats + 1):  # the first round warms up
            for precision, pipeline in pipelines.items():
                seconds, frames[precision] = generate(pipeline, request.replace(output=Path(folder) / "v.mp4"))
                if repeat:
                    times[precision].append(seconds)
    difference = np.abs(frames["float32"].astype(np.int16) - frames["bfloat16"].astype(np.int16))
    median = {p: statistics.median(t) for p, t in times.items()}
    entry = {
        "case": "memo-tiny pipeline",
        "cpu_bf16_support": cpu_bf16_support(),
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "video_seconds": round(len(frames["float32"]) / 30, 2),
        "float32_seconds": round(median["float32"], 2),
        "bfloat16_seconds": round(median["bfloat16"], 2),
        "speedup": round(median["float32"] / median["bfloat16"], 3),
        "frame_difference_max": int(difference.max()),
        "frame_difference_mean": round(float(difference.mean()), 3),
        "runs": {p: [round(t, 2) for t in ts] for p, ts in times.items()},
    }
    print(json.dumps(entry, indent=2))
    record_run(RESULTS, "precision", entry, key=lambda run: (run["case"], run["cpu_bf16_support"], run["threads"]))


if __name__ == "__main__":
    main()
