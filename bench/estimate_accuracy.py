"""How close the time estimate comes to the run it predicts, on this machine under whatever load it has.

Runs ``--runs`` requests of different lengths, steps, guidance passes, preview or full quality and paste-back
through one pipeline — as the app does: the estimate first (``estimate_time``), then the run, then ``learn`` from
it — and records each run's estimate, actual seconds and error (estimate / actual - 1), the error the estimate would
have had without the correction learned from earlier runs, and the load average around each run.

    python -m bench.estimate_accuracy [--runs 10] [--threads 2]     # -> bench/results/estimate_accuracy.json
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from bench.results_file import record_run
from memo_model.audio.io import SAMPLE_RATE, load_audio
from memo_model.loading import load_pipeline
from memo_model.pipelines.emotions import EmotionOverrides
from memo_model.pipelines.estimate import estimate_time, learn
from memo_model.pipelines.request import GenerationRequest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
RESULTS = ROOT / "bench" / "results" / "estimate_accuracy.json"

# (portrait, audio seconds, steps or None for the model's, guidance scales, preview, paste-back, an override)
PLAN = [
    ("synthetic_person_1.png", 4.0, None, (None, None, None), False, None, None),
    ("synthetic_person_2.png", 2.0, 4, (None, None, None), False, None, "happy"),
    ("astronaut.jpg", 3.0, None, (None, None, None), False, True, None),
    ("synthetic_person_3.png", 8.0, None, (1.0, 1.0, 1.0), False, None, None),
    ("synthetic_person_4.png", 6.0, None, (None, None, None), True, None, None),
    ("synthetic_person_1.png", 1.0, 20, (2.0, 2.0, 1.0), False, None, None),
    ("astronaut.jpg", 6.0, 6, (None, None, None), False, False, "sad"),
    ("synthetic_person_2.png", 12.0, 4, (None, None, None), False, None, None),
    ("synthetic_person_3.png", 3.0, None, (2.0, 2.0, 1.0), True, None, None),
    ("synthetic_person_4.png", 5.0, 8, (None, None, None), False, None, "angry"),
]


def speech(folder: Path, seconds: float) -> Path:
    """The bundled speeches joined and cut to ``seconds`` (real speech, so emotion detection does real work)."""
    joined = np.concatenate([load_audio(path) for path in sorted(EXAMPLES.glob("speech_*.wav"))])
    path = folder / f"speech_{seconds:g}s.wav"
    sf.write(path, np.resize(joined, round(seconds * SAMPLE_RATE)), SAMPLE_RATE)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=len(PLAN), help=f"at most {len(PLAN)}")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--weights", default=None, help="weights folder (default: the bundled MEMO-Tiny)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = load_pipeline(args.weights, device="cpu")

    runs = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for index, (image, seconds, steps, scales, preview, paste_back, emotion) in enumerate(PLAN[: args.runs]):
            reference, audio_guidance, emotion_guidance = scales
            request = GenerationRequest(
                image=EXAMPLES / image,
                audio=speech(folder, seconds),
                output=folder / f"run_{index}.mp4",
                steps=steps,
                reference_guidance=reference,
                audio_guidance=audio_guidance,
                emotion_guidance=emotion_guidance,
                preview_seconds=2.0 if preview else None,
                paste_back=paste_back,
                emotions=EmotionOverrides(global_label=emotion),
            )
            load_before = os.getloadavg()[0]
            asked = time.perf_counter()
            estimate = estimate_time(pipeline, request, seconds)
            estimate_seconds = time.perf_counter() - asked
            started = time.perf_counter()
            result = pipeline(request)
            actual = time.perf_counter() - started
            learn(pipeline, estimate, actual)
            run = {
                "portrait": image,
                "audio_seconds": seconds,
                "preview": preview,
                "clips": estimate.clips,
                "steps": estimate.steps,
                "passes": estimate.passes,
                "resolution": list(result.resolution),
                "estimate_seconds": round(estimate.seconds, 2),
                "actual_seconds": round(actual, 2),
                "error": round(estimate.seconds / actual - 1, 3),
                "error_without_learning": round(estimate.seconds / estimate.correction / actual - 1, 3),
                "slowdown": round(estimate.slowdown, 2),
                "threads": estimate.threads,
                "correction": round(estimate.correction, 3),
                "time_to_estimate_seconds": round(estimate_seconds, 2),
                "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
            runs.append(run)
            print(run, flush=True)

    errors = [abs(run["error"]) for run in runs]
    entry = {
        "model": "bundled" if args.weights is None else args.weights,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "runs": runs,
        "largest_error": max(errors),
        "median_error": round(statistics.median(errors), 3),
        "within_30_percent": sum(error <= 0.3 for error in errors),
        "largest_error_without_learning": max(abs(run["error_without_learning"]) for run in runs),
    }
    record_run(RESULTS, "estimate_accuracy", entry, key=lambda run: (run["model"], run["threads"]))
    print({k: v for k, v in entry.items() if k != "runs"})


if __name__ == "__main__":
    main()
