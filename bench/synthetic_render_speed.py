"""How fast does the synthetic world render? One minute of 128 x 128 video + 16 kHz audio on one core.

Issue 4 asks for <= 10 s. Times ``make_sample`` (speech synthesis, labels, all frames and the reference image)
and, separately, encoding the result to the dataset format (H.264 + AAC via the bundled ffmpeg).

Run::

    python -m bench.synthetic_render_speed --output /tmp/synth_work/render_speed.json
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy/torch load their thread pools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

from memo_model.data.synthetic.dataset_writer import write_sample  # noqa: E402
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START  # noqa: E402
from memo_model.data.synthetic.sample import make_sample  # noqa: E402
from memo_model.data.synthetic.speech import FPS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    num_frames = int(args.seconds * FPS)
    make_sample(0, 0, 30, args.size)  # warm-up: imports, filter design, caches

    render_times = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        sample = make_sample(HELD_OUT_SEED_START + repeat, repeat, num_frames, args.size)
        render_times.append(time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        write_sample(Path(root), "speed", sample, 0, args.size)
        write_seconds = time.perf_counter() - started
    result = {
        "video_seconds": args.seconds,
        "size": args.size,
        "frames": num_frames,
        "render_seconds": [round(t, 2) for t in render_times],
        "render_seconds_best": round(min(render_times), 2),
        "encode_and_write_seconds": round(write_seconds, 2),
        "threads": 1,
        "note": "machine shared with other jobs; best of repeats is the least disturbed",
    }
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
