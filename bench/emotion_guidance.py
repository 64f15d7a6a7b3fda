"""How strongly should the emotion guidance push? Expression, lip-sync and identity against the emotion scale.

The pipeline's guidance (memo_model/pipelines/guidance.py) gives the emotion label its own scale: the step from
the reference+audio prediction to the full one is multiplied by it. This benchmark generates the held-out takes of
the evaluation with their true emotion segments as overrides, once per emotion scale (reference and audio scales
stay at the model's default), and reads every frame with the synthetic-world analyzer:

- **expression**: share of frames whose read expression is the requested one (the evaluation's override accuracy);
- **lip-sync**: correlation of the read mouth opening with the take's ground truth, at offset 0;
- **identity**: mean similarity of the frames' identity embeddings to the portrait's.

    python -m bench.emotion_guidance                                   # the bundled MEMO-Tiny, scales 1.5 3 5 8
    python -m bench.emotion_guidance --scales 1.5 4 --samples 8 --weights runs/memo-tiny/stage2/weights

Results are appended (one entry per weights folder and take set) to bench/results/emotion_guidance.json; videos
and the held-out data go to ``--output``.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.results_file import folder_name, record_run

ROOT = Path(__file__).resolve().parents[1]


def measure(pipeline, analyzer, rows: list[dict], generated: dict, scale: float) -> dict:
    """Mean expression accuracy, lip-sync r and identity similarity of one scale's videos."""
    from memo_model.evaluation.metrics import identity_similarity

    from memo_model.evaluation.evaluate import expression_of, lip_sync_of, mean_of, read_frames

    resolution = pipeline.model_info.resolution
    expression, lipsync, identity = [], [], []
    for row in rows:
        labels = json.loads(Path(row["labels"]).read_text())
        frames, _ = generated[f"{row['id']}_emotion{scale:g}"]
        readings = read_frames(frames, analyzer, resolution)
        expression.append(expression_of(readings, labels["segments"]))
        lipsync.append(lip_sync_of(readings, labels["mouth_open"])["correlation"])
        portrait = np.asarray(Image.open(row["reference"]).convert("RGB"))[None]
        reference = read_frames(portrait, analyzer, resolution)["identity"][0]
        identity.append(float(identity_similarity(readings["identity"], reference).mean()))
    return {
        "emotion_scale": scale,
        "expression_accuracy": round(mean_of(expression), 4),
        "expression_by_take": [round(value, 3) for value in expression],
        "lipsync_r": round(mean_of(lipsync), 4),
        "identity_similarity": round(mean_of(identity), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", help="weights folder (default: the bundled MEMO-Tiny)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.5, 3.0, 5.0, 8.0], help="emotion scales")
    parser.add_argument("--samples", type=int, default=4, help="held-out takes (the evaluation's first ones)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each take")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the takes and the generation")
    parser.add_argument("--workers", type=int, default=2, help="generating processes")
    parser.add_argument("--output", default="runs/emotion_guidance", help="folder for the videos and the takes")
    parser.add_argument("--results", default=str(ROOT / "bench/results/emotion_guidance.json"))
    args = parser.parse_args()

    from memo_model.data.synthetic.analyzer import load_analyzer
    from memo_model.evaluation.evaluate import EvaluationConfig, generate_all, held_out_samples, request_segments
    from memo_model.loading import load_pipeline
    from memo_model.pipelines.emotions import EmotionOverrides
    from memo_model.pipelines.request import GenerationRequest

    output = Path(args.output)
    pipeline = load_pipeline(args.weights)
    default = pipeline.model_info.default_guidance
    rows = held_out_samples(output / "data", args.samples, args.seconds, args.seed)
    requests = {}
    for scale in args.scales:
        for row in rows:
            truth = json.loads(Path(row["labels"]).read_text())["segments"]
            name = f"{row['id']}_emotion{scale:g}"
            requests[name] = GenerationRequest(
                image=row["reference"],
                audio=row["audio"],
                output=output / "videos" / f"{name}.mp4",
                seed=args.seed,
                steps=args.steps,
                reference_guidance=default,
                audio_guidance=default,
                emotion_guidance=scale,
                emotions=EmotionOverrides(segments=request_segments(truth)),
            )
    config = EvaluationConfig(output=str(output), weights=args.weights, workers=args.workers)
    started = time.perf_counter()
    timings: dict = {}
    generated = generate_all(pipeline, requests, config, timings, print)
    analyzer = load_analyzer()
    by_scale = [measure(pipeline, analyzer, rows, generated, scale) for scale in args.scales]
    for entry in by_scale:
        print(
            f"emotion scale {entry['emotion_scale']:>4g}: expression {entry['expression_accuracy']:.3f}  "
            f"lip-sync r {entry['lipsync_r']:.3f}  identity {entry['identity_similarity']:.3f}"
        )
    record_run(
        args.results,
        "emotion_guidance",
        {
            "weights": folder_name(args.weights, ROOT) if args.weights else "bundled MEMO-Tiny",
            "takes": {"samples": args.samples, "seconds": args.seconds, "seed": args.seed},
            "steps": args.steps,
            "reference_and_audio_scale": default,
            "by_scale": by_scale,
            "wall_s": round(time.perf_counter() - started, 1),
            "cpu_count": os.cpu_count(),
        },
        key=lambda run: (run["weights"], run["takes"]["samples"], run["takes"]["seconds"], run["takes"]["seed"]),
    )
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
