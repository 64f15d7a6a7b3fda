"""Real-time factor of a full-quality generation and of a preview: wall seconds per second of video.

Runs the pipeline exactly as the CLI and the app do — one ``GenerationRequest`` on a bundled example portrait and
speech — once to warm up, then ``--repeats`` times, and reports the median and the best run. "Full quality" is
the request's defaults for the active model (its steps and guidance); a preview is what the app's Preview button
asks for (the first ``preview_seconds``, in whole clips, at the model's preview steps). Before and after each mode
it measures the machine's matmul speed (GFLOP/s): on a shared machine that shows how much other work slowed a run.

    python -m bench.realtime                      # bundled MEMO-Tiny -> bench/results/realtime.json
    python -m bench.realtime --steps 10 20        # full quality at other step counts too
    python -m bench.realtime --long               # also full quality on the four bundled speeches joined (20 s)
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = ROOT / "assets" / "examples"


def timed_runs(pipeline, request, repeats: int) -> tuple[float, float, float]:
    """(median and best wall seconds, seconds of video) of ``repeats`` runs after one warm-up run. The best run is
    the one least slowed by other work on a shared machine."""
    result = pipeline(request)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = pipeline(request)
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), result.duration


def joined_speech(folder: Path) -> Path:
    """The bundled speeches one after another in one wav (4 + 5 + 5 + 6 s)."""
    import numpy as np
    import soundfile as sf

    parts = [sf.read(path, dtype="float32") for path in sorted(EXAMPLES.glob("speech_*.wav"))]
    path = folder / "joined_speech.wav"
    sf.write(path, np.concatenate([audio for audio, _ in parts]), parts[0][1])
    return path


def machine_gflops(size: int = 512, repeats: int = 20) -> float:
    """Float32 matmul throughput right now: a yardstick for other tenants' load on a shared machine."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return round(2 * size**3 * repeats / (time.perf_counter() - started) / 1e9, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="a weights folder (default: the bundled MEMO-Tiny)")
    parser.add_argument("--audio", default=str(EXAMPLES / "speech_1_happy_then_sad.wav"))
    parser.add_argument("--image", default=str(EXAMPLES / "synthetic_person_1.png"))
    parser.add_argument("--steps", type=int, nargs="*", default=[], help="extra full-quality step counts")
    parser.add_argument("--long", action="store_true", help="also the four bundled speeches joined (20 s)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "realtime.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from memo_model.loading import load_pipeline
    from memo_model.pipelines.guidance import guidance_plan
    from memo_model.pipelines.request import LIMITS, GenerationRequest

    pipeline = load_pipeline(args.weights, device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        base = GenerationRequest(image=args.image, audio=args.audio, output=Path(folder) / "out.mp4")
        modes = [("full quality (defaults)", base)]
        if args.long:
            modes.append(("full quality, 20 s of speech", base.replace(audio=joined_speech(Path(folder)))))
        modes += [(f"full quality, {steps} steps", base.replace(steps=steps)) for steps in args.steps]
        modes.append(("preview (app button)", base.replace(preview_seconds=float(LIMITS["preview_seconds"].default))))
        for name, request in modes:
            gflops_before = machine_gflops()
            wall, best, video_seconds = timed_runs(pipeline, request, args.repeats)
            gflops = (gflops_before, machine_gflops())
            passes = len(guidance_plan(*request.guidance_scales(pipeline.model_info.default_guidance)))
            rows.append(
                {
                    "mode": name,
                    "steps": pipeline.model_info.steps_for(request),
                    "guidance_passes": passes,
                    "video_seconds": round(video_seconds, 3),
                    "wall_seconds": round(wall, 2),
                    "real_time_factor": round(wall / video_seconds, 2),
                    "best_wall_seconds": round(best, 2),
                    "best_real_time_factor": round(best / video_seconds, 2),
                    "machine_gflops_before_after": gflops,
                }
            )
            print(
                f"{name:28s} {rows[-1]['steps']:3d} steps  {wall:7.1f} s for {video_seconds:5.2f} s "
                f"-> {rows[-1]['real_time_factor']:5.2f}x real time (best {best / video_seconds:.2f}x; "
                f"matmul {gflops[0]}/{gflops[1]} GFLOP/s)"
            )
    entry = {
        "benchmark": "realtime",
        "model": pipeline.model_info.name,
        "threads": args.threads,
        "repeats": args.repeats,
        "audio": Path(args.audio).name,
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(entry, indent=2) + "\n")


if __name__ == "__main__":
    main()
