"""Does the denoiser follow its conditions? A one-step probe of the audio (mouth) and the emotion label (expression).

For each held-out clip: noise its true latents to σ, let the diffusion net predict the clean latents
``ẑ_0 = z_t − σ v̂`` under changed conditions, decode, and read the frames with the synthetic-world analyzer:

- **audio** — the clip's own audio, another clip's audio, no audio (label: the clip's own). The mouth opening is
  correlated (each clip's mean removed) with the ground-truth mouth track: own high and the other two low means
  the mouth comes from the audio; all three equal means the audio is ignored.
- **emotion label** — the clip's own label, a wrong one (the next selectable emotion, as the evaluation's
  wrong-override control), no label (audio: the clip's own). The share of frames whose read expression is the
  clip's label and the wrong label: a model that follows labels reads the wrong label when given it; a model
  that takes its expression from the speech reads the clip's own whatever the label says.

The VAE reconstruction of the real frames gives the ceiling of both measures.

    python bench/conditioning_probe.py                                   # the bundled MEMO-Tiny
    python bench/conditioning_probe.py --weights runs/memo-tiny/stage2/weights --sigmas 0.5 0.8

Needs a held-out dataset folder with cached audio features (docs/TRAINING.md, ``data/memo-tiny/heldout``).
Results are appended (one entry per weights folder) to bench/results/conditioning_probe.json.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.results_file import folder_name, record_run  # noqa: E402

CLIP = 16


def read(analyzer, pixels: torch.Tensor) -> dict[str, np.ndarray]:
    """pixels (f, 3, H, W) in [0, 1] -> the analyzer's readings per frame."""
    from memo_model.data.synthetic.analyzer import analyze_frames
    from memo_model.evaluation.evaluate import to_analyzer_input

    frames = (pixels.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return analyze_frames(analyzer, to_analyzer_input(frames, analyzer.config.image_size))


def wrong_label(emotion: int) -> int:
    """The next selectable emotion after ``emotion`` (the evaluation's wrong-override rule)."""
    from memo_model.evaluation.evaluate import wrong_segments

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
    from diffusers import AutoencoderKL

    from memo_model.audio.emotion import NO_EMOTION
    from memo_model.data.synthetic.analyzer import load_analyzer
    from memo_model.training.train import encode
    from memo_model.weights import load_components

    nets = {name: net.float().eval() for name, net in load_components(weights).items()}
    vae = AutoencoderKL.from_pretrained(Path(weights) / "vae").eval()
    analyzer = load_analyzer()
    clips = held_out_clips(root, count, seed)
    own_labels = [int(clip["emotion"]) for clip in clips]
    wrong_labels = [wrong_label(label) for label in own_labels]
    generator = torch.Generator().manual_seed(seed)

    def decode(latents: torch.Tensor) -> torch.Tensor:  # (1, c, f, h, w) -> (f, 3, H, W) in [0, 1]
        pixels = vae.decode(latents[0].transpose(0, 1) / vae.config.scaling_factor).sample
        return (pixels.clamp(-1, 1) + 1) / 2

    mouths: dict[str, list[np.ndarray]] = {"vae_reconstruction": []}
    expressions: dict[str, list[np.ndarray]] = {"vae_reconstruction": []}
    for number, clip in enumerate(clips):
        latents = encode(vae, clip["pixels"], sample=False).transpose(0, 1)[None]  # (1, c, f, h, w)
        stack = torch.cat([clip["reference_pixels"][None], clip["past_pixels"]])
        stack_latents = encode(vae, stack, sample=False).transpose(0, 1)[None]
        faces = nets["image_proj"](clip["face_embedding"][None])
        reference = nets["reference_net"](stack_latents, faces)
        memory = nets["diffusion_net"].write_memory(reference)
        own = nets["audio_proj"](clip["audio_features"][None])
        other = nets["audio_proj"](clips[(number + len(clips) // 2) % len(clips)]["audio_features"][None])
        conditions = {  # name: (audio tokens, emotion label)
            "own_audio": (own, own_labels[number]),
            "other_audio": (other, own_labels[number]),
            "no_audio": (torch.zeros_like(own), own_labels[number]),
            "wrong_label": (own, wrong_labels[number]),
            "no_label": (own, NO_EMOTION),
        }
        real = read(analyzer, decode(latents))
        mouths["vae_reconstruction"].append(real["mouth_open"])
        expressions["vae_reconstruction"].append(real["expression"])
        noise = torch.randn(latents.shape, generator=generator)
        for sigma in sigmas:
            noisy = sigma * noise + (1 - sigma) * latents
            for name, (tokens, emotion) in conditions.items():
                velocity = nets["diffusion_net"](
                    noisy, torch.tensor([sigma * 1000]), reference, faces, tokens, torch.tensor([emotion]), memory,
                    use_reference=torch.ones(1, dtype=torch.bool),
                )  # fmt: skip
                readings = read(analyzer, decode(noisy - sigma * velocity))
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
