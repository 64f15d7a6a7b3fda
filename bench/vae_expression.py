"""How much expression survives a VAE round trip? The ceiling of expression accuracy for any denoiser in its latents.

Every 4th frame of the held-out takes is encoded (posterior mean) and decoded by the VAE and read by the
synthetic-world analyzer at the VAE's own frame size (64 px for MEMO-Tiny v1, 128 px for v2), exactly as the
evaluation reads generated frames; the read expression is compared with the take's per-frame ground truth, and the
mouth opening read on the round trip is correlated with the one read on the real frames (Pearson r). The real
frames, read the same way, are the analyzer's own ceiling.

    python -m bench.vae_expression                                   # the bundled MEMO-Tiny VAE
    python -m bench.vae_expression --vae assets/memo-tiny-v2/vae --data data/v2/heldout

Needs a held-out dataset folder (docs/TRAINING.md: ``synth dataset --held-out``). Results are kept (one entry per
VAE folder or ``--label``) in bench/results/vae_expression.json.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from bench.results_file import folder_name, record_run

ROOT = Path(__file__).resolve().parents[1]

STRIDE = 4  # every 4th frame: neighbours are near copies


@torch.no_grad()
def measure(vae_folder: str, root: Path, takes: int) -> dict:
    from diffusers import AutoencoderKL

    from memo_model.audio.emotion import SELECTABLE_EMOTIONS
    from memo_model.data.synthetic.analyzer import load_analyzer
    from memo_model.data.synthetic.dataset_writer import read_metadata, read_video
    from memo_model.evaluation.scoring import at_resolution, read_frames

    vae = AutoencoderKL.from_pretrained(vae_folder).eval()
    resolution = vae.config.sample_size  # takes rendered larger are brought down first, as the evaluation does
    analyzer = load_analyzer()
    truth, real, decoded, real_mouth, decoded_mouth = [], [], [], [], []
    for row in list(read_metadata(root))[:takes]:
        frames = at_resolution(read_video(row["video"])[::STRIDE], resolution)
        labels = np.asarray(json.loads(Path(row["labels"]).read_text())["emotion"])[::STRIDE][: len(frames)]
        pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
        round_trip = vae.decode(vae.encode(pixels).latent_dist.mean).sample
        round_trip = ((round_trip.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        truth.append(labels)
        real_reading = read_frames(frames, analyzer, resolution)
        decoded_reading = read_frames(round_trip, analyzer, resolution)
        real.append(real_reading["expression"])
        decoded.append(decoded_reading["expression"])
        real_mouth.append(real_reading["mouth_open"])
        decoded_mouth.append(decoded_reading["mouth_open"])
    truth, real, decoded = (np.concatenate(values) for values in (truth, real, decoded))
    real_mouth, decoded_mouth = np.concatenate(real_mouth), np.concatenate(decoded_mouth)
    per_emotion = {
        label: round(float(np.mean(decoded[truth == index] == index)), 3)
        for index, label in enumerate(SELECTABLE_EMOTIONS)
        if (truth == index).any()
    }
    return {
        "resolution": resolution,
        "frames": int(len(truth)),
        "real_frames": round(float(np.mean(real == truth)), 4),
        "vae_round_trip": round(float(np.mean(decoded == truth)), 4),
        "vae_round_trip_per_emotion": per_emotion,
        "mouth_open_r": round(float(np.corrcoef(real_mouth, decoded_mouth)[0, 1]), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", default=str(ROOT / "assets" / "memo-tiny" / "vae"), help="a diffusers VAE folder")
    parser.add_argument("--data", default=str(ROOT / "data" / "memo-tiny" / "heldout"), help="held-out dataset")
    parser.add_argument("--takes", type=int, default=24)
    parser.add_argument("--label", default=None, help="name of this entry (default: the VAE folder)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "vae_expression.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    if not (root / "metadata.jsonl").is_file():
        sys.exit(f"No dataset at {root}: make it as docs/TRAINING.md says (synth dataset --held-out).")

    results = measure(args.vae, root, args.takes)
    name = args.label or folder_name(args.vae, ROOT)
    entry = {"vae": name, "takes": args.takes, "stride": STRIDE, **results}
    record_run(args.json, "vae_expression", entry, key=lambda run: run["vae"])
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
