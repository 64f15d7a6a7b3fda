"""How much the guidance batch's layout changes a video: "per-sample" (our default) against "official" (the official
inference's tiled reference rows and face tokens, ``memo_model/pipelines/guidance.py``).

Runs the tensor-level clip loop (``MemoPipeline.run_clips``) on the tiny official-layout checkpoint of the parity
oracle (``../shared/parity``: random weights, 24 x 16 latents), two clips, the official 20 steps and single scale
3.5, the same noise for both layouts, and records the difference of the final latents and of the decoded frames.

    python -m bench.guidance_layout            # writes bench/results/guidance_layout.json
"""

import argparse
import json
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from bench.results_file import record_run
from memo_model.pipelines.pipeline_memo import MemoPipeline
from memo_model.pipelines.request import OFFICIAL_GUIDANCE, OFFICIAL_STEPS
from memo_model.weights import load_components

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT.parent / "shared" / "parity"
RESULTS = ROOT / "bench" / "results" / "guidance_layout.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parity", type=Path, default=PARITY, help="the parity oracle folder")
    parser.add_argument("--steps", type=int, default=OFFICIAL_STEPS)
    parser.add_argument("--guidance", type=float, default=OFFICIAL_GUIDANCE)
    args = parser.parse_args()
    if not (args.parity / "fixtures").is_dir():
        raise SystemExit(f"The parity oracle {args.parity} is absent; pass --parity FOLDER.")
    torch.set_num_threads(1)

    components = load_components(args.parity)
    vae = AutoencoderKL.from_pretrained(args.parity / "vae")
    pipeline = MemoPipeline(
        vae, components["reference_net"], components["diffusion_net"], components["image_proj"],
        components["audio_proj"], audio_features=None, identity_embedder=None,
    )  # fmt: skip
    inputs = load_file(args.parity / "fixtures" / "inputs.safetensors")
    generator = torch.Generator().manual_seed(0)
    height, width = inputs["ref_latents_A"].shape[-2:]
    factor = pipeline.latent_factor
    reference_image = torch.rand(1, 3, height * factor, width * factor, generator=generator) * 2 - 1
    noise = torch.randn(2, vae.config.latent_channels, 16, height, width, generator=generator)
    clips = {}
    started = time.perf_counter()
    for layout in ("per-sample", "official"):
        clips[layout] = list(
            pipeline.run_clips(
                reference_image,
                inputs["face_emb"],
                torch.cat([inputs["audio_emb_a"], inputs["audio_emb_b"]]),
                [int(inputs["emotion_a"]), int(inputs["emotion_b"])],
                guidance=(args.guidance,) * 3,
                steps=args.steps,
                noise=noise,
                guidance_layout=layout,
            )
        )
    per_clip = []
    for ours, official in zip(clips["per-sample"], clips["official"], strict=True):
        latents = (ours.latents - official.latents).abs()
        frames = (ours.frames - official.frames).abs() * 255
        per_clip.append(
            {
                "clip": ours.clip,
                "latent_abs_diff_max": round(latents.max().item(), 4),
                "latent_abs_diff_mean": round(latents.mean().item(), 4),
                "latent_std": round(ours.latents.std().item(), 4),
                "frame_abs_diff_max_255": round(frames.max().item(), 2),
                "frame_abs_diff_mean_255": round(frames.mean().item(), 2),
            }
        )
    entry = {
        "setup": "parity checkpoint, 2 clips, 2 passes",
        "steps": args.steps,
        "guidance": args.guidance,
        "seconds": round(time.perf_counter() - started, 1),
        "clips": per_clip,
    }
    print(json.dumps(entry, indent=2))
    record_run(RESULTS, "guidance_layout", entry, key=lambda run: (run["setup"], run["steps"], run["guidance"]))


if __name__ == "__main__":
    main()
