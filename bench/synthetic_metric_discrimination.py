"""Do the synthetic-world metrics discriminate? Scores of matched vs deliberately broken held-out videos.

On freshly rendered samples of held-out identities, with the shipped analyzer:

- lip-sync with the video's own ground truth (and with the audio-only estimate) vs another sample's audio;
  best offset of a video delayed by a known number of frames;
- expression accuracy with the requested label track vs another sample's label track (chance = 1/8);
- identity similarity to the own reference vs another person's reference, and a video that cross-fades into
  another person (drift);
- content and texture Fréchet distances from a set of takes to new takes of the same people (the
  real-vs-real floor), to those takes degraded (blur, noise, a frozen face) and to other people.

Run::

    python -m bench.synthetic_metric_discrimination --output /tmp/synth_work/metric_discrimination.json
"""

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from memo_model.evaluation.metrics import (
    expression_accuracy,
    identity_drift,
    identity_similarity,
    lip_sync,
)

from memo_model.data.synthetic.analyzer import analyze_frames, load_analyzer
from memo_model.data.synthetic.expression import one_hot_expression
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.data.synthetic.renderer import FaceRenderer, FaceState
from memo_model.data.synthetic.sample import make_sample
from memo_model.data.synthetic.speech import mouth_open_from_audio
from memo_model.evaluation.scoring import frechet_distance_between

FRECHET_FRAMES = 150
DELAY_FRAMES = 4  # known lag applied to the video for the offset check
FIRST_IDENTITY = HELD_OUT_SEED_START + 700_000  # a held-out block used by no other check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--analyzer", default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    analyzer = load_analyzer(args.analyzer)
    samples = [make_sample(FIRST_IDENTITY + i, i, args.frames) for i in range(args.samples)]
    readings = [analyze_frames(analyzer, s.frames) for s in samples]
    references = [analyze_frames(analyzer, s.reference[None])["identity"][0] for s in samples]

    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(float(value))

    for i, (sample, reading) in enumerate(zip(samples, readings, strict=True)):
        other = samples[(i + 1) % len(samples)]
        truth = np.array(sample.labels["mouth_open"])
        add("lip_sync_ground_truth", lip_sync(reading["mouth_open"], truth).correlation)
        add(
            "lip_sync_audio_estimate", lip_sync(reading["mouth_open"], mouth_open_from_audio(sample.audio)).correlation
        )
        add("lip_sync_other_audio", lip_sync(reading["mouth_open"], np.array(other.labels["mouth_open"])).correlation)
        add(
            "lip_sync_other_audio_estimate",
            lip_sync(reading["mouth_open"], mouth_open_from_audio(other.audio)).correlation,
        )
        delayed = np.concatenate([np.repeat(sample.frames[:1], DELAY_FRAMES, 0), sample.frames[:-DELAY_FRAMES]])
        add(
            "best_offset_of_delayed_video",
            lip_sync(analyze_frames(analyzer, delayed)["mouth_open"], truth).best_offset,
        )

        add(
            "expression_accuracy_requested",
            expression_accuracy(reading["expression"], np.array(sample.labels["emotion"])),
        )
        add(
            "expression_accuracy_wrong_track",
            expression_accuracy(reading["expression"], np.array(other.labels["emotion"])),
        )

        own = identity_similarity(reading["identity"], references[i])
        add("identity_similarity_own_reference", own.mean())
        add(
            "identity_similarity_other_reference",
            identity_similarity(reading["identity"], references[(i + 1) % len(samples)]).mean(),
        )
        fade = np.linspace(0, 1, args.frames)[:, None, None, None]
        morph = ((1 - fade) * sample.frames + fade * other.frames).astype(np.uint8)
        drift = identity_drift(identity_similarity(analyze_frames(analyzer, morph)["identity"], references[i]))
        add("crossfade_to_other_person_start", drift["start"])
        add("crossfade_to_other_person_end", drift["end"])

    # Fréchet distances need like-for-like sets: the same people in new takes is the "real vs real" baseline.
    takes_a = [make_sample(FIRST_IDENTITY + i, 100 + i, FRECHET_FRAMES).frames for i in range(args.samples)]
    takes_b = [make_sample(FIRST_IDENTITY + i, 200 + i, FRECHET_FRAMES).frames for i in range(args.samples)]
    others = [make_sample(FIRST_IDENTITY + 50 + i, 300 + i, FRECHET_FRAMES).frames for i in range(args.samples)]
    rng = np.random.default_rng(0)
    frozen = []
    for i in range(args.samples):  # the new takes with lips shut, head still, no blinks: a lifeless "generator"
        sample = make_sample(FIRST_IDENTITY + i, 200 + i, FRECHET_FRAMES, render=False)
        renderer = FaceRenderer(sample.identity)
        frozen.append(
            np.stack([renderer(FaceState(expression=one_hot_expression(e))) for e in sample.labels["emotion"]])
        )
    candidates = {
        "same_takes": takes_a,
        "same_people_new_takes": takes_b,
        "new_takes_blurred_sigma_0.8": [np.stack([cv2.GaussianBlur(f, (0, 0), 0.8) for f in v]) for v in takes_b],
        "new_takes_blurred_sigma_1.5": [np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in v]) for v in takes_b],
        "new_takes_noise_sigma_12": [
            np.clip(v + rng.normal(0, 12, v.shape), 0, 255).astype(np.uint8) for v in takes_b
        ],
        "new_takes_frozen_face": frozen,
        "other_people": others,
    }
    frechet = {name: frechet_distance_between(takes_a, videos, analyzer) for name, videos in candidates.items()}
    result = {
        "samples": len(samples),
        "frames_per_sample": args.frames,
        "held_out_identities_from": FIRST_IDENTITY,
        "mean": {k: round(float(np.mean(v)), 4) for k, v in rows.items()},
        "min": {k: round(float(np.min(v)), 4) for k, v in rows.items()},
        "max": {k: round(float(np.max(v)), 4) for k, v in rows.items()},
        "delay_frames_applied": DELAY_FRAMES,
        "frechet_vs_takes": {k: {m: round(x, 3) for m, x in v.items()} for k, v in frechet.items()},
        "frechet_frames_per_set": args.samples * FRECHET_FRAMES,
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
