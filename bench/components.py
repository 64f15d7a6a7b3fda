"""Per-step time of one 16-frame clip: what a clip of generation spends where.

Times the pipeline's own steps (``MemoPipeline.prepare_clip`` and the steps it is made of, ``predict_velocity``,
``decode_clip``, ``next_past_frames``) on synthetic inputs of the right shapes: the audio features of one clip, the
audio projection, the reference net on the past frames (once per clip, for the face conditions the guidance passes
need; the portrait's features are the video's, computed once), the memory write, one denoiser call with 1, 2 and 3
guidance passes batched, the VAE decode of 16 frames and the encode of the past frames; for MEMO-Tiny also the
emotion detector over 10 s of audio. Each number is the median of ``--repeats`` runs after one warm-up run.

    python -m bench.components --model memo-tiny                        # the bundled weights, 64 px
    python -m bench.components --model official --resolution 256       # the official architecture, random weights
    python -m bench.components --model official --resolution 512 --faces 1 --passes 1 --repeats 1 --no-warmup

``--faces 1`` runs the reference net, the memory write and the denoiser for the portrait's face only (one guidance
pass): at 512² the official memory of one face is about 7 GB, and two faces' next to 10.6 GB of weights do not fit
in 24 GB. The per-clip total for two passes is then estimated from the one-face parts (each doubled, as batched
passes cost at 256²: 1.99×) and stored under a name that says so.

Results are appended (one entry per model/resolution) to bench/results/components.json.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.results_file import record_run
from memo_model.pipelines.request import OFFICIAL_GUIDANCE

ROOT = Path(__file__).resolve().parents[1]
CLIP = 16

# (reference, audio, emotion) scales whose guidance plan has this many passes (guidance.py): 1 is the full pass
# alone (the portrait's face only), 2 the official single scale (unconditional + full), 3 adds reference+audio.
GUIDANCE_FOR_PASSES = {
    1: (1.0, 1.0, 1.0),
    2: (OFFICIAL_GUIDANCE,) * 3,
    3: (OFFICIAL_GUIDANCE, OFFICIAL_GUIDANCE, 2.0),
}
GUIDANCE_FOR_FACES = {1: GUIDANCE_FOR_PASSES[1], 2: GUIDANCE_FOR_PASSES[2]}  # distinct face conditions


def median_seconds(function, repeats: int, warmup: bool = True) -> float:
    if warmup:
        function()  # first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4)


def bundled_parts(weights: str | None):
    """MEMO-Tiny as shipped (or another weights folder): networks, VAE, mel features and the emotion head."""
    from memo_model.loading import load_pipeline

    pipeline = load_pipeline(weights, device="cpu")
    return pipeline, pipeline.model_info.resolution


def official_parts(resolution: int, folder: Path):
    """The official networks, an SD-sized VAE and wav2vec2-base, all with random weights (no download)."""
    from diffusers import AutoencoderKL
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from memo_model.audio.features import Wav2Vec2Features
    from memo_model.models.presets import build_components
    from memo_model.pipelines.pipeline_memo import MemoPipeline, ModelInfo
    from memo_model.vision.face import ThumbnailEmbedder

    torch.manual_seed(0)
    components = build_components("official")
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(folder / "wav2vec2")
    pipeline = MemoPipeline(
        vae=vae,
        reference_net=components["reference_net"],
        diffusion_net=components["diffusion_net"],
        image_proj=components["image_proj"],
        audio_proj=components["audio_proj"],
        audio_features=Wav2Vec2Features(folder / "wav2vec2"),
        identity_embedder=ThumbnailEmbedder(size=4),  # unused: face tokens are made from a random embedding
        model_info=ModelInfo("official (random weights)", "memory", resolution=resolution),
    )
    return pipeline, resolution


@dataclass(frozen=True)
class SyntheticClip:
    """The inputs of one clip, random but of the right shapes (shared with bench/optimisations.py)."""

    waveform: np.ndarray  # one clip of audio
    audio_clip: torch.Tensor  # its audio features (f, window, layers, channels)
    face_embedding: torch.Tensor  # (1, d)
    portrait: torch.Tensor  # (1, 3, H, W) in [-1, 1]
    past: object  # PastFrames: p latents that are not the portrait, so the reference net runs on them
    sample: torch.Tensor  # (1, c, 16, h, w) noisy latents


def synthetic_clip(pipeline, resolution: int, past_frames: int = CLIP) -> SyntheticClip:
    from memo_model.audio.io import SAMPLE_RATE
    from memo_model.pipelines.pipeline_memo import PastFrames

    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)
    latent = resolution // pipeline.latent_factor
    channels, dtype = pipeline.vae.config.latent_channels, pipeline.dtype
    waveform = (0.1 * rng.standard_normal(int(CLIP / 30 * SAMPLE_RATE))).astype(np.float32)
    return SyntheticClip(
        waveform=waveform,
        audio_clip=next(iter(pipeline.audio_features.iter_clips(waveform, 30))),
        face_embedding=torch.randn(1, pipeline.image_proj.config.clip_embeddings_dim, generator=generator),
        portrait=torch.rand(1, 3, resolution, resolution, generator=generator) * 2 - 1,
        past=PastFrames(torch.randn(past_frames, channels, latent, latent, generator=generator).to(dtype), False),
        sample=pipeline.prepare_latents(resolution, resolution, generator).to(dtype),
    )


@torch.no_grad()
def clip_conditions(pipeline, clip: SyntheticClip, guidance: tuple[float, float, float]):
    """What the pipeline's denoiser calls read for ``clip`` under ``guidance`` (``MemoPipeline.prepare_clip``)."""
    passes = pipeline.prepare_guidance(clip.face_embedding, guidance)
    reference, _ = pipeline.prepare_reference(clip.portrait, passes, len(clip.past.latents))
    conditions, _ = pipeline.prepare_clip(passes, reference, clip.past, clip.audio_clip, emotion=0)
    return conditions


def time_clip(
    pipeline, resolution: int, repeats: int, past_frames: int = CLIP, passes=(1, 2, 3), faces: int = 2, warmup=True
) -> dict:
    from memo_model.audio.io import SAMPLE_RATE

    rng = np.random.default_rng(1)
    results: dict[str, float] = {}

    def timed(function) -> float:
        return median_seconds(function, repeats, warmup)

    def progress(part: str) -> None:  # minute-long parts at 512²: say what runs and how much memory is held
        print(f"  [{time.strftime('%H:%M:%S')}] {part} (RSS {resident_gb():.1f} GB)", file=sys.stderr, flush=True)

    with torch.no_grad():
        progress("inputs of one clip")
        clip = synthetic_clip(pipeline, resolution, past_frames)
        results["audio_features"] = timed(lambda: next(iter(pipeline.audio_features.iter_clips(clip.waveform, 30))))
        results["audio_proj"] = timed(lambda: pipeline.audio_tokens(clip.audio_clip))
        progress("reference net")
        guidance = pipeline.prepare_guidance(clip.face_embedding, GUIDANCE_FOR_FACES[faces])
        reference, _ = pipeline.prepare_reference(clip.portrait, guidance, past_frames)
        results[reference_key(faces)] = timed(lambda: pipeline.reference_stacks(guidance, reference, clip.past))
        progress("memory write")
        stacks = pipeline.reference_stacks(guidance, reference, clip.past)
        written = []

        def write_memory() -> None:  # one memory at a time: at 512² each is gigabytes
            written.clear()
            written.append(pipeline.write_memory(guidance, stacks, None))

        results["memory_write"] = timed(write_memory)
        written.clear()
        stacks = reference = None
        t = torch.tensor(500.0)
        for count in passes:
            progress(f"denoiser, {count} pass(es)")
            conditions = clip_conditions(pipeline, clip, GUIDANCE_FOR_PASSES[count])
            if faces == 1:  # memory-bound mode: the reference net's weights are not needed any more
                pipeline.reference_net.to("meta")
            results[denoiser_key(count)] = timed(lambda c=conditions: pipeline.predict_velocity(c, clip.sample, t))
            conditions = None  # frees the memory (gigabytes at 512²) before the next count's
        latents = torch.randn(1, pipeline.vae.config.latent_channels, CLIP, *clip.sample.shape[-2:])
        progress("VAE decode")
        results["vae_decode_16"] = timed(lambda: pipeline.decode_clip(latents.to(pipeline.dtype)))
        frames = torch.rand(CLIP, 3, resolution, resolution)
        progress("VAE encode")
        results[f"vae_encode_{past_frames}"] = timed(lambda: pipeline.next_past_frames(clip.past, frames))
        if pipeline.emotion_detector is not None:
            ten_seconds = (0.1 * rng.standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
            from memo_model.audio.emotion import detect_emotions

            results["emotion_detection_10s_audio"] = timed(
                lambda: detect_emotions(ten_seconds, pipeline.emotion_detector)
            )
    return results


def resident_gb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def reference_key(faces: int) -> str:
    return f"reference_net_{faces}_face{'s' if faces > 1 else ''}"


def denoiser_key(passes: int) -> str:
    return f"denoiser_{passes}_pass{'es' if passes > 1 else ''}"


def clip_total(times: dict, steps: int, passes: int) -> float:
    """Seconds per clip as the loop spends them: per-clip parts once, the denoiser ``steps`` times."""
    once = ("audio_features", "audio_proj", reference_key(2), "memory_write", "vae_decode_16")
    encode = next(v for k, v in times.items() if k.startswith("vae_encode"))
    return round(sum(times[k] for k in once) + encode + steps * times[denoiser_key(passes)], 3)


def clip_total_from_one_face(times: dict, steps: int, passes: int) -> float:
    """The same total when only one face was timed: the face-dependent parts scale with the number of passes."""
    faces = min(passes, 2)
    scaled = dict(times)
    scaled[reference_key(2)] = faces * times[reference_key(1)]
    scaled["memory_write"] = faces * times["memory_write"]
    scaled[denoiser_key(passes)] = passes * times[denoiser_key(1)]
    return clip_total(scaled, steps, passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("memo-tiny", "official"), default="memo-tiny")
    parser.add_argument("--resolution", type=int, default=256, help="official only; MEMO-Tiny runs at 64 px")
    parser.add_argument("--weights", help="memo-tiny only: a weights folder (default: the bundled one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="for the per-clip total")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--passes", type=int, nargs="+", default=[1, 2, 3], help="guidance passes to time the denoiser with"
    )
    parser.add_argument(
        "--faces", type=int, choices=(1, 2), default=2, help="1: the portrait's face only (memory-bound sizes)"
    )
    parser.add_argument("--no-warmup", action="store_true", help="time first calls too (for minute-long calls)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "components.json"))
    args = parser.parse_args()
    if args.faces == 1 and max(args.passes) > 1:
        parser.error("--faces 1 times one guidance pass: use --passes 1 (more passes would copy the face's memory)")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        if args.model == "memo-tiny":
            pipeline, resolution = bundled_parts(args.weights)
        else:
            pipeline, resolution = official_parts(args.resolution, Path(folder))
        times = time_clip(
            pipeline, resolution, args.repeats, passes=tuple(args.passes), faces=args.faces, warmup=not args.no_warmup
        )
    entry = {
        "model": args.model,
        "resolution": resolution,
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": not args.no_warmup,
        "faces": args.faces,
        "seconds": times,
        **(
            {
                f"clip_seconds_{args.steps}_steps_{count}_passes": clip_total(times, args.steps, count)
                for count in args.passes
                if count > 1
            }
            if args.faces == 2
            else {
                f"clip_seconds_{args.steps}_steps_2_passes_estimated_from_1_face": clip_total_from_one_face(
                    times, args.steps, 2
                )
            }
        ),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    record_run(args.json, "components", entry, key=lambda run: (run["model"], run["resolution"]))

    print(f"{args.model} at {resolution} px, {args.threads} thread(s), median of {args.repeats}:")
    for name, value in times.items():
        print(f"  {name:32s} {value * 1000:10.1f} ms")
    for key in entry:
        if key.startswith("clip_seconds"):
            print(f"  {key:32s} {entry[key]:10.2f} s")


if __name__ == "__main__":
    main()
