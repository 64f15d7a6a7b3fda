"""A whole generation beside one busy process: torch's threads on every core vs only the free ones (``auto``).

Starts one CPU-bound process (a neighbour's job), then alternates the same full-quality run of the bundled model
with ``SpeedOptions(threads=N)`` (N = this machine's CPUs) and ``SpeedOptions(threads="auto")``, ``--repeats``
times each, and reports every wall time and which thread count ``auto`` chose.

    python -m bench.threads_under_load [--repeats 2]     # -> bench/results/threads_under_load.json
"""

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.results_file import record_run
from memo_model.loading import load_pipeline
from memo_model.pipelines.request import GenerationRequest
from memo_model.pipelines.speed import SpeedOptions

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
RESULTS = ROOT / "bench" / "results" / "threads_under_load.json"


def _busy() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    modes = (cpus, "auto")
    pipelines = {mode: load_pipeline(None, device="cpu", options=SpeedOptions(threads=mode)) for mode in modes}
    neighbour = multiprocessing.Process(target=_busy, daemon=True)
    neighbour.start()
    times: dict[str, list[float]] = {str(mode): [] for mode in pipelines}
    chosen = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for repeat in range(args.repeats + 1):  # the first round warms both up and is not counted
                for mode, pipeline in pipelines.items():
                    request = GenerationRequest(
                        image=EXAMPLES / "synthetic_person_1.png",
                        audio=EXAMPLES / "speech_1_happy_then_sad.wav",
                        output=Path(folder) / f"{mode}_{repeat}.mp4",
                    )
                    started = time.perf_counter()
                    result = pipeline(request)
                    seconds = time.perf_counter() - started
                    if repeat:
                        times[str(mode)].append(round(seconds, 2))
                        if mode == "auto":
                            chosen.append(json.loads(result.settings_path.read_text())["threads"])
                    print(mode, round(seconds, 2), flush=True)
    finally:
        neighbour.terminate()
    entry = {
        "cpus": cpus,
        "busy_neighbours": 1,
        "video_seconds": result.duration,
        "wall_seconds": times,
        "auto_chose_threads": chosen,
        "speedup_of_auto": round(statistics.median(times[str(cpus)]) / statistics.median(times["auto"]), 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    record_run(RESULTS, "threads_under_load", entry, key=lambda run: run["cpus"])
    print(entry)


if __name__ == "__main__":
    main()
