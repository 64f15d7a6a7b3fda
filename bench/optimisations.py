"""Each inference optimisation on vs off, on one clip of MEMO-Tiny (or another weights folder).

Every row times the same work both ways, alternately (median of ``--repeats`` after a warm-up), and reports the
largest absolute difference of the outputs, so a speed-up that changes results shows up. Rows run the pipeline's
own steps (``MemoPipeline.reference_stacks``, ``predict_velocity``, ``decode_clip``, a whole generation) on the
conditions its ``prepare_clip`` made; a side that is no pipeline setting calls the same networks the other way
(two calls instead of one, a face per pass, all frames at once):

- ``guidance_batching``: two guidance passes in one denoiser call vs two calls of one pass;
- ``reference_per_clip``: the reference net once per clip vs once per denoising step (x ``--steps``);
- ``reference_reuse``: reference features for the 2 distinct faces vs one per pass (3 passes);
- ``sdpa``: PyTorch's scaled_dot_product_attention (diffusers AttnProcessor2_0) vs the explicit softmax(QKᵀ)V;
- ``channels_last``: the denoiser's convolutions in channels-last memory format vs contiguous;
- ``torch_compile``: ``torch.compile`` of the denoiser (steady state; the compile time is reported apart);
- ``vae_decode_batch``: 16 frames decoded in batches of 8 (the pipeline's bound) vs all at once;
- ``portrait_features_once``: the reference net on the past frames only, joined to the portrait's features computed
  once per video, vs the reference net on [portrait, past frames] every clip;
- ``final_velocity_reuse``: a whole generation (the bundled 5 s example, the model's steps) with the last
  Euler step (σ 0.001 -> 0) reusing the previous velocity vs calling the denoiser there too; the difference is in
  uint8 frame levels.

    python -m bench.optimisations                     # writes bench/results/optimisations.json

The memory write's batched matmul against the three-operand einsum it replaced (5.6x per clip) was measured while
the einsum was kept here as a frozen copy of the write; the copy is gone, the number stays in docs/PERFORMANCE.md.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from bench.components import GUIDANCE_FOR_PASSES, clip_conditions, synthetic_clip

ROOT = Path(__file__).resolve().parents[1]


def timed_pair(on, off, repeats: int) -> tuple[float, object, float, object]:
    """Median seconds and output of ``on`` and ``off``, run alternately after a warm-up of each, so that a change
    in the machine's load (it is shared) hits both sides alike."""
    outputs = [on(), off()]
    times: list[list[float]] = [[], []]
    for _ in range(repeats):
        for side, function in enumerate((on, off)):
            started = time.perf_counter()
            outputs[side] = function()
            times[side].append(time.perf_counter() - started)
    return statistics.median(times[0]), outputs[0], statistics.median(times[1]), outputs[1]


def max_difference(a, b) -> float:
    if isinstance(a, torch.Tensor):
        return float((a.float() - b.float()).abs().max())
    if hasattr(a, "layers"):  # ReferenceFeatures
        return max(max_difference(x, y) for x, y in zip(a.layers, b.layers, strict=True))
    raise TypeError(type(a))


def row(name: str, on, off, repeats: int, note: str = "", off_factor: float = 1.0) -> dict:
    on_seconds, on_output, off_seconds, off_output = timed_pair(on, off, repeats)
    off_seconds *= off_factor
    return {
        "optimisation": name,
        "on_seconds": round(on_seconds, 4),
        "off_seconds": round(off_seconds, 4),
        "speedup": round(off_seconds / on_seconds, 2),
        "max_abs_difference": max_difference(on_output, off_output),
        "note": note,
    }


def final_velocity_row(weights, repeats: int) -> dict:
    """The whole pipeline on the bundled 5 s example with and without reusing the last step's velocity."""
    import tempfile

    import numpy as np

    from memo_model.loading import load_pipeline
    from memo_model.pipelines.request import GenerationRequest
    from memo_model.pipelines.speed import SpeedOptions

    examples = ROOT / "assets" / "examples"
    folder = Path(tempfile.mkdtemp())

    def generate(reuse: bool):
        pipeline = load_pipeline(weights, device="cpu", options=SpeedOptions(reuse_final_velocity=reuse))
        request = GenerationRequest(
            image=examples / "synthetic_person_1.png", audio=examples / "speech_1_happy_then_sad.wav"
        )

        def run():
            frames = []
            pipeline(
                request.replace(output=folder / "out.mp4"),
                callback=lambda p: p.frames is not None and frames.append(p.frames),
            )
            return torch.from_numpy(np.concatenate(frames).astype(np.float32))

        return run

    steps = load_pipeline(weights, device="cpu").model_info.default_steps
    return row(
        "final_velocity_reuse",
        generate(True),
        generate(False),
        repeats,
        f"whole 5 s generation at {steps} steps: {steps - 1} vs {steps} denoiser calls per clip; diff in uint8 levels",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="weights folder (default: the bundled MEMO-Tiny)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "optimisations.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

    from memo_model.loading import load_pipeline
    from memo_model.pipelines.speed import SpeedOptions

    pipeline = load_pipeline(args.weights, device="cpu")
    net, resolution = pipeline.diffusion_net, pipeline.model_info.resolution
    rows = []
    with torch.no_grad():
        clip = synthetic_clip(pipeline, resolution)
        two_passes = clip_conditions(pipeline, clip, GUIDANCE_FOR_PASSES[2])  # unconditional, full
        unconditional = clip_conditions(pipeline, clip, (0.0, 0.0, 0.0))  # the unconditional pass alone
        full = clip_conditions(pipeline, clip, GUIDANCE_FOR_PASSES[1])  # the full pass alone
        t = torch.tensor(500.0)

        def denoise(conditions=two_passes, on=pipeline):
            return on.predict_velocity(conditions, clip.sample, t)

        rows.append(
            row(
                "guidance_batching",
                denoise,
                lambda: torch.cat([denoise(unconditional), denoise(full)]),
                args.repeats,
                "one denoiser call with 2 passes vs 2 calls; per step",
            )
        )
        passes = pipeline.prepare_guidance(clip.face_embedding, GUIDANCE_FOR_PASSES[3])  # 3 passes, 2 faces
        reference, _ = pipeline.prepare_reference(clip.portrait, passes, len(clip.past.latents))
        rows.append(
            row(
                "reference_per_clip",
                lambda: pipeline.reference_stacks(passes, reference, clip.past),
                lambda: pipeline.reference_stacks(passes, reference, clip.past),
                args.repeats,
                f"reference net once per clip vs once per step: off = {args.steps} x the on time",
                off_factor=args.steps,
            )
        )
        per_pass = passes.faces[passes.condition_index]  # (3, m, c): a face per pass, the portrait's twice
        rows.append(
            row(
                "reference_reuse",
                lambda: pipeline.reference_features(clip.past.latents, passes.faces),
                lambda: pipeline.reference_features(clip.past.latents, per_pass).select(torch.tensor([0, 1])),
                args.repeats,
                "3 guidance passes need 2 distinct faces: reference net on 2 vs 3; per clip",
            )
        )

        attention = [
            m for m in net.modules() if isinstance(m, Attention) and isinstance(m.processor, AttnProcessor2_0)
        ]

        def with_processor(processor_class):
            def run():
                for module in attention:
                    module.set_processor(processor_class())
                try:
                    return denoise()
                finally:
                    for module in attention:
                        module.set_processor(AttnProcessor2_0())

            return run

        rows.append(
            row(
                "sdpa",
                with_processor(AttnProcessor2_0),
                with_processor(AttnProcessor),
                args.repeats,
                f"{len(attention)} attention layers (the audio modules' joint attention always uses SDPA); per step",
            )
        )

        def channels_last():
            net.to(memory_format=torch.channels_last)
            try:
                return denoise()
            finally:
                net.to(memory_format=torch.contiguous_format)

        rows.append(row("channels_last", channels_last, denoise, args.repeats, "per step"))

        if not args.skip_compile:
            started = time.perf_counter()
            compiled = load_pipeline(args.weights, device="cpu", options=SpeedOptions(compile=True))
            denoise(on=compiled)
            compile_seconds = time.perf_counter() - started
            rows.append(
                row(
                    "torch_compile",
                    lambda: denoise(on=compiled),
                    denoise,
                    args.repeats,
                    f"per step after compiling; the first call (compile) took {compile_seconds:.0f} s",
                )
            )

        latents = torch.randn(clip.sample.shape, dtype=pipeline.dtype)
        scale = pipeline.vae.config.scaling_factor
        all_at_once = latents[0].transpose(0, 1) / scale  # (f, c, h, w)
        rows.append(
            row(
                "vae_decode_batch",
                lambda: pipeline.decode_clip(latents),
                lambda: (pipeline.vae.decode(all_at_once).sample / 2 + 0.5).clamp(0, 1),
                args.repeats,
                "16 frames in batches of 8 vs one batch of 16; bounds activation memory at 512 px",
            )
        )

        stack = torch.cat([reference.latent, clip.past.latents])  # (1 + p, c, h, w): [portrait, past frames]
        rows.append(
            row(
                "portrait_features_once",
                lambda: pipeline.reference_stacks(passes, reference, clip.past),
                lambda: pipeline.reference_features(stack, passes.faces),
                args.repeats,
                f"reference net on {len(clip.past.latents)} vs {len(stack)} frames; per clip (clip 0: none vs 17)",
            )
        )

    rows.append(final_velocity_row(args.weights, max(1, args.repeats // 2)))

    result = {
        "benchmark": "optimisations",
        "model": args.weights or "bundled MEMO-Tiny",
        "resolution": resolution,
        "threads": args.threads,
        "repeats": args.repeats,
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'optimisation':22s} {'on s':>9s} {'off s':>9s} {'speed-up':>9s} {'max |diff|':>11s}")
    for r in rows:
        print(
            f"{r['optimisation']:22s} {r['on_seconds']:9.4f} {r['off_seconds']:9.4f} {r['speedup']:9.2f} "
            f"{r['max_abs_difference']:11.2e}"
        )


if __name__ == "__main__":
    main()
