"""Does the denoiser's mouth follow the audio? A one-step probe on held-out training-format clips.

For each held-out clip: noise its true latents to σ, let the diffusion net predict the clean latents
``ẑ_0 = z_t − σ v̂`` with the clip's own audio, another clip's audio and no audio, decode, read the mouth opening
with the synthetic-world analyzer, and correlate it (each clip's mean removed) with the ground-truth mouth track.
The VAE reconstruction of the real frames gives the ceiling of the measure. Own audio high and the other two low
means the mouth comes from the audio; all three equal means the audio is ignored.

    python bench/lipsync_probe.py                                   # the bundled MEMO-Tiny
    python bench/lipsync_probe.py --weights runs/memo-tiny/stage2/weights --sigmas 0.5 0.8

Needs a held-out dataset folder with cached audio features (docs/TRAINING.md, ``data/memo-tiny/heldout``).
Results are appended (one entry per weights folder) to bench/results/lipsync_probe.json.
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

CLIP = 16
AUDIO_MODES = ("own", "other", "none")


def mouth_opening(analyzer, pixels: torch.Tensor) -> np.ndarray:
    """pixels (f, 3, H, W) in [0, 1] -> the analyzer's mouth opening per frame."""
    from memo_model.data.synthetic.analyzer import analyze_frames
    from memo_model.evaluation.evaluate import to_analyzer_input

    frames = (pixels.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return analyze_frames(analyzer, to_analyzer_input(frames, analyzer.config.image_size))["mouth_open"]


def held_out_clips(root: Path, count: int, seed: int) -> list[dict]:
    """``count`` clips of the dataset (cycling through its takes), each with its ground-truth mouth track."""
    from memo_model.data.dataset import TalkingFaceDataset
    from memo_model.vision.face import ThumbnailEmbedder

    dataset = TalkingFaceDataset(root, 64, CLIP, CLIP, ThumbnailEmbedder(4), seed=seed)
    clips = []
    for i in range(count):
        index, dataset.epoch = i % len(dataset), i // len(dataset)
        item = dataset[index]
        # the dataset's first draw is the clip start: repeat it to find the labels of the same frames
        rng = np.random.default_rng([dataset.seed, dataset.epoch, index])
        row = dataset.rows[index]
        usable = min(len(dataset._video(index)), len(np.load(root / row["audio_features"], allow_pickle=False)))
        start = int(rng.integers(0, usable - CLIP + 1))
        labels = json.loads((root / row["labels"]).read_text())
        item["mouth_open"] = np.asarray(labels["mouth_open"][start : start + CLIP])
        clips.append(item)
    return clips


def centred_r(readings: list[np.ndarray], truth: list[np.ndarray]) -> float:
    measured = np.concatenate([r - r.mean() for r in readings])
    reference = np.concatenate([t - t.mean() for t in truth])
    return round(float(np.corrcoef(measured, reference)[0, 1]), 3)


@torch.no_grad()
def probe(weights: str, root: Path, count: int, sigmas: list[float], seed: int) -> dict:
    from diffusers import AutoencoderKL

    from memo_model.data.synthetic.analyzer import load_analyzer
    from memo_model.loading import load_components
    from memo_model.training.train import encode

    nets = {name: net.float().eval() for name, net in load_components(weights).items()}
    vae = AutoencoderKL.from_pretrained(Path(weights) / "vae").eval()
    analyzer = load_analyzer()
    clips = held_out_clips(root, count, seed)
    generator = torch.Generator().manual_seed(seed)

    def decode(latents: torch.Tensor) -> torch.Tensor:  # (1, c, f, h, w) -> (f, 3, H, W) in [0, 1]
        pixels = vae.decode(latents[0].transpose(0, 1) / vae.config.scaling_factor).sample
        return (pixels.clamp(-1, 1) + 1) / 2

    readings: dict[str, list[np.ndarray]] = {"vae_reconstruction": []}
    for number, clip in enumerate(clips):
        latents = encode(vae, clip["pixels"], sample=False).transpose(0, 1)[None]  # (1, c, f, h, w)
        stack = torch.cat([clip["reference_pixels"][None], clip["past_pixels"]])
        stack_latents = encode(vae, stack, sample=False).transpose(0, 1)[None]
        faces = nets["image_proj"](clip["face_embedding"][None])
        reference = nets["reference_net"](stack_latents, faces)
        memory = nets["diffusion_net"].write_memory(reference)
        own = nets["audio_proj"](clip["audio_features"][None])
        other = nets["audio_proj"](clips[(number + len(clips) // 2) % len(clips)]["audio_features"][None])
        audio = {"own": own, "other": other, "none": torch.zeros_like(own)}
        readings["vae_reconstruction"].append(mouth_opening(analyzer, decode(latents)))
        noise = torch.randn(latents.shape, generator=generator)
        for sigma in sigmas:
            noisy = sigma * noise + (1 - sigma) * latents
            for mode, tokens in audio.items():
                velocity = nets["diffusion_net"](
                    noisy, torch.tensor([sigma * 1000]), reference, faces, tokens, clip["emotion"][None], memory,
                    use_reference=torch.ones(1, dtype=torch.bool),
                )  # fmt: skip
                readings.setdefault(f"sigma_{sigma:g}_{mode}_audio", []).append(
                    mouth_opening(analyzer, decode(noisy - sigma * velocity))
                )
    truth = [clip["mouth_open"] for clip in clips]
    return {name: centred_r(values, truth) for name, values in readings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ROOT / "assets" / "memo-tiny"), help="a weights folder with vae/")
    parser.add_argument("--data", default=str(ROOT / "data" / "memo-tiny" / "heldout"), help="held-out dataset")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.8])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "lipsync_probe.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "metadata.jsonl").is_file():
        sys.exit(f"No dataset at {root}: make it as docs/TRAINING.md says (synth dataset --held-out, cached features).")

    correlations = probe(args.weights, root, args.clips, args.sigmas, args.seed)
    weights = Path(args.weights).resolve()
    name = str(weights.relative_to(ROOT)) if weights.is_relative_to(ROOT) else str(weights)
    entry = {"weights": name, "clips": args.clips, "seed": args.seed, "mouth_r": correlations}
    path = Path(args.json)
    existing = json.loads(path.read_text()) if path.exists() else {"benchmark": "lipsync_probe", "runs": []}
    existing["runs"] = [run for run in existing["runs"] if run["weights"] != name] + [entry]
    path.write_text(json.dumps(existing, indent=2) + "\n")
    print(f"mouth-opening r against the ground truth, {args.clips} held-out clips ({name}):")
    for name, value in correlations.items():
        print(f"  {name:32s} {value:+.3f}")


if __name__ == "__main__":
    main()
