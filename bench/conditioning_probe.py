"""Does the denoiser follow its conditions? A one-step probe of the audio (mouth) and the emotion label (expression).

For each held-out clip: noise its true latents to σ, let the diffusion net predict the clean latents
``ẑ_0 = z_t − σ v̂`` under changed conditions, decode, and read the frames with the synthetic-world analyzer. The
conditions are the pipeline's own (``MemoPipeline.prepare_clip`` on the clip's portrait, face embedding, real past
frames and audio; one call of ``predict_velocity``), changed one at a time; "no" audio or label is what an
unconditional guidance pass sees (``pipelines/conditions.py``):

- **audio** — the clip's own audio, another clip's audio, no audio (label: the clip's own). The mouth opening is
  correlated (each clip's mean removed) with the ground-truth mouth track: own high and the other two low means
  the mouth comes from the audio; all three equal means the audio is ignored.
- **emotion label** — the clip's own label, a wrong one (the next selectable emotion, as the evaluation's
  wrong-override control), no label (audio: the clip's own). The share of frames whose read expression is the
  clip's label and the wrong label: a model that follows labels reads the wrong label when given it; a model
  that takes its expression from the speech reads the clip's own whatever the label says.

The VAE reconstruction of the real frames gives the ceiling of both measures.

    python -m bench.conditioning_probe                                   # the bundled MEMO-Tiny
    python -m bench.conditioning_probe --weights runs/memo-tiny/stage2/weights --sigmas 0.5 0.8

Needs a held-out dataset folder with cached audio features (docs/TRAINING.md, ``data/memo-tiny/heldout``).
Results are appended (one entry per weights folder) to bench/results/conditioning_probe.json.
"""

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from bench.results_file import folder_name, record_run

ROOT = Path(__file__).resolve().parents[1]

CLIP = 16


def read(analyzer, pixels: torch.Tensor) -> dict[str, np.ndarray]:
    """pixels (f, 3, H, W) in [0, 1] -> the analyzer's readings per frame."""
    from memo_model.data.synthetic.analyzer import analyze_frames
    from memo_model.evaluation.scoring import to_analyzer_input

    frames = (pixels.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return analyze_frames(analyzer, to_analyzer_input(frames, analyzer.config.image_size))


def wrong_label(emotion: int) -> int:
    """The next selectable emotion after ``emotion`` (the evaluation's wrong-override rule)."""
    from memo_model.evaluation.parts import wrong_segments

    return wrong_segments([{"emotion": emotion}])[0]["emotion"]


def held_out_clips(root: Path, count: int, seed: int) -> list[dict]:
    """``count`` clips of the dataset (cycling through its takes), each with its ground-truth mouth track."""
    from memo_model.data.dataset import TalkingFaceDataset
    from memo_model.vision.face import ThumbnailEmbedder

    dataset = TalkingFaceDataset(root, 64, CLIP, CLIP, ThumbnailEmbedder(4), seed=seed)
    clips = []
    for i in range(count):
        index, dataset.epoch = i % len(dataset), i // len(dataset)
        item = dataset[index]
        labels = json.loads((root / dataset.rows[index]["labels"]).read_text())
        start = int(item["clip_start"])
        item["mouth_open"] = np.asarray(labels["mouth_open"][start : start + CLIP])
        clips.append(item)
    return clips


def centred_r(readings: list[np.ndarray], truth: list[np.ndarray]) -> float:
    measured = np.concatenate([r - r.mean() for r in readings])
    reference = np.concatenate([t - t.mean() for t in truth])
    return round(float(np.corrcoef(measured, reference)[0, 1]), 3)


def share(readings: list[np.ndarray], labels: list[int]) -> float:
    """Share of all frames whose read expression is their clip's entry of ``labels``."""
    return round(float(np.mean(np.concatenate([r == label for r, label in zip(readings, labels, strict=True)]))), 3)


@torch.no_grad()
def probe(weights: str, root: Path, count: int, sigmas: list[float], seed: int) -> dict:
    from memo_model.data.synthetic.analyzer import load_analyzer
    from memo_model.loading import load_pipeline
    from memo_model.pipelines import conditions
    from memo_model.pipelines.pipeline_memo import PastFrames

    pipeline = load_pipeline(weights, device="cpu")
    analyzer = load_analyzer()
    clips = held_out_clips(root, count, seed)
    own_labels = [int(clip["emotion"]) for clip in clips]
    wrong_labels = [wrong_label(label) for label in own_labels]
    generator = torch.Generator().manual_seed(seed)
    drop = torch.zeros(1, dtype=torch.bool)  # a condition dropped as the unconditional guidance pass drops it

    mouths: dict[str, list[np.ndarray]] = {"vae_reconstruction": []}
    expressions: dict[str, list[np.ndarray]] = {"vae_reconstruction": []}
    for number, clip in enumerate(clips):
        latents = rearrange(pipeline.encode(clip["pixels"]), "f c h w -> 1 c f h w")
        # The pipeline's own clip preparation, with the portrait's face and the clip's real past frames
        passes = pipeline.prepare_guidance(clip["face_embedding"][None], guidance=(1.0, 1.0, 1.0))  # the full pass
        reference, _ = pipeline.prepare_reference(clip["reference_pixels"][None], passes)
        past = PastFrames(pipeline.encode(clip["past_pixels"]), are_portrait=False)
        own, _ = pipeline.prepare_clip(passes, reference, past, clip["audio_features"], own_labels[number])
        other_audio = clips[(number + len(clips) // 2) % len(clips)]["audio_features"]
        variants = {  # name: the denoiser's conditions
            "own_audio": own,
            "other_audio": replace(own, audio_tokens=pipeline.audio_tokens(other_audio)),
            "no_audio": replace(own, audio_tokens=conditions.audio_tokens(own.audio_tokens, drop)),
            "wrong_label": replace(own, emotion=torch.tensor([wrong_labels[number]])),
            "no_label": replace(own, emotion=conditions.emotions(own.emotion, drop)),
        }
        real = read(analyzer, pipeline.decode_clip(latents))
        mouths["vae_reconstruction"].append(real["mouth_open"])
        expressions["vae_reconstruction"].append(real["expression"])
        noise = torch.randn(latents.shape, generator=generator)
        for sigma in sigmas:
            noisy = sigma * noise + (1 - sigma) * latents
            for name, clip_conditions in variants.items():
                velocity = pipeline.predict_velocity(clip_conditions, noisy, torch.tensor([sigma * 1000]))
                readings = read(analyzer, pipeline.decode_clip(noisy - sigma * velocity))
                mouths.setdefault(f"sigma_{sigma:g}_{name}", []).append(readings["mouth_open"])
                expressions.setdefault(f"sigma_{sigma:g}_{name}", []).append(readings["expression"])
    truth = [clip["mouth_open"] for clip in clips]
    audio_modes = ("vae_reconstruction", "own_audio", "other_audio", "no_audio")
    label_modes = ("vae_reconstruction", "own_audio", "wrong_label", "no_label")
    return {
        "mouth_r": {name: centred_r(values, truth) for name, values in mouths.items() if name.endswith(audio_modes)},
        "expression_is_clip_label": {
            name: share(values, own_labels) for name, values in expressions.items() if name.endswith(label_modes)
        },
        "expression_is_wrong_label": {
            name: share(values, wrong_labels) for name, values in expressions.items() if name.endswith("wrong_label")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "assets" / "memo-tiny"), help="a weights folder with vae/")
    parser.add_argument("--data", default=str(ROOT / "data" / "memo-tiny" / "heldout"), help="held-out dataset")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.8])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--label", default=None, help="name of this entry (default: the weights folder)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "conditioning_probe.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "metadata.jsonl").is_file():
        sys.exit(
            f"No dataset at {root}: make it as docs/TRAINING.md says (synth dataset --held-out, cached features)."
        )

    results = probe(args.weights, root, args.clips, args.sigmas, args.seed)
    name = args.label or folder_name(args.weights, ROOT)
    entry = {"weights": name, "clips": args.clips, "seed": args.seed, **results}
    record_run(args.json, "conditioning_probe", entry, key=lambda run: run["weights"])
    print(f"{args.clips} held-out clips ({name}):")
    for measure, values in results.items():
        for condition, value in values.items():
            print(f"  {measure:26s} {condition:28s} {value:.3f}")


if __name__ == "__main__":
    main()
