"""Command line: `python -m memo_model <command> ...`.

generate        portrait + audio -> talking video (mp4 + settings JSON)
generate-batch  a JSON-lines file of requests -> one video each, sharded over `accelerate launch` processes
detect-emotion  the emotion segments an audio file would be animated with
check-weights   load a weights folder in the official layout strictly and list its components
export-weights  copy a run's trained networks into a weights folder (official layout)
train           the paper's two training stages (accelerate)
train-vae, train-emotion, train-analyzer, evaluate-analyzer
                MEMO-Tiny's own parts (memo_model/tiny/)
synth           the synthetic talking-face world (datasets, contact sheets, scores)
preprocess      real talking-head videos -> training data (paper appendix F)
evaluate        the evaluation on held-out synthetic takes
"""

import argparse
import json
import math
import signal
import sys
from pathlib import Path

from memo_model.errors import shown
from memo_model.pipelines.emotions import EmotionOverrides
from memo_model.pipelines.guidance import GUIDANCE_LAYOUTS
from memo_model.pipelines.request import LIMITS, GenerationRequest
from memo_model.pipelines.speed import PRECISIONS


def _add_weights_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("weights")
    group.add_argument("--weights", help="folder in the official layout or a hub id (default: the bundled MEMO-Tiny)")
    group.add_argument("--vae", help="VAE folder or hub id (official: stabilityai/sd-vae-ft-mse)")
    group.add_argument("--wav2vec2", help="wav2vec2 folder or hub id (official: facebook/wav2vec2-base-960h)")
    group.add_argument("--emotion2vec", help="emotion2vec_plus_large folder (official path only)")
    group.add_argument("--face-analysis", help="insightface model pack folder (default: WEIGHTS/misc/face_analysis)")
    group.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    speed = parser.add_argument_group("speed (docs/PERFORMANCE.md)")
    speed.add_argument("--cpu-offload", action="store_true", help="small GPUs: one large component on it at a time")
    speed.add_argument("--compile", action="store_true", help="torch.compile the diffusion net (slow first clip)")
    speed.add_argument("--channels-last", action="store_true", help="NHWC convolutions (slower on CPU)")
    speed.add_argument(
        "--exact-final-step", action="store_true", help="run the denoiser at the last step too (σ 0.001 -> 0)"
    )
    speed.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bfloat16 autocast on CPUs with native bfloat16 (AMX, AVX512-BF16), else float32",
    )
    speed.add_argument(
        "--threads",
        type=_threads,
        default="auto",
        help="CPU threads per run; auto: the cores other processes leave free when the run starts",
    )


def _threads(value: str) -> int | str:
    if value == "auto":
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {value!r}")


def _load(args: argparse.Namespace):
    from memo_model.loading import load_pipeline
    from memo_model.pipelines.speed import SpeedOptions

    options = SpeedOptions(
        reuse_final_velocity=not args.exact_final_step,
        channels_last=args.channels_last,
        compile=args.compile,
        cpu_offload=args.cpu_offload,
        precision=args.precision,
        threads=args.threads,
    )
    return load_pipeline(
        args.weights,
        device=args.device,
        vae=args.vae,
        wav2vec2=args.wav2vec2,
        emotion2vec=args.emotion2vec,
        face_analysis=args.face_analysis,
        options=options,
    )


def _add_emotion_options(parser: argparse.ArgumentParser) -> None:
    emotion = parser.add_mutually_exclusive_group()
    emotion.add_argument("--emotion", help="one emotion for the whole video (default: detected from the audio)")
    emotion.add_argument(
        "--emotion-segments",
        metavar="FILE.json",
        help='emotions for parts of the video: {"segments": [{"start": 0.0, "end": 2.5, "label": "sad"}]} '
        '(and optionally "global": one for the rest)',
    )


def _emotions(args: argparse.Namespace) -> EmotionOverrides:
    """The emotions chosen on the command line (none: the detected ones)."""
    if args.emotion_segments:
        return EmotionOverrides.load(args.emotion_segments)
    return EmotionOverrides(args.emotion)


def _check_media(request: GenerationRequest) -> None:
    """Decode the portrait and the audio once before the model loads (as the app does on upload): a bad file says
    so in a moment, not after minutes of loading the official weights."""
    from memo_model.audio.io import load_audio
    from memo_model.vision.face import load_image

    load_image(request.image)
    load_audio(request.audio, max_seconds=request.max_audio_seconds)


def generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    request = GenerationRequest(
        image=args.image,
        audio=args.audio,
        output=args.output,
        seed=args.seed,
        steps=args.steps,
        reference_guidance=args.ref_cfg,
        audio_guidance=args.audio_cfg,
        emotion_guidance=args.emotion_cfg,
        emotions=_emotions(args),
        fps=args.fps,
        past_frames=args.past_frames,
        memory_decay=args.memory_decay,
        preview_seconds=args.preview_seconds,
        preview_steps=args.preview_steps,
        guidance_layout=args.guidance_layout,
        paste_back=args.paste_back,
    ).validate()
    _check_media(request)
    pipeline = _load(args)
    bar = tqdm(total=None, unit="step", desc="generating")

    def show(progress) -> None:
        bar.total = progress.num_clips * progress.num_steps
        bar.n = progress.clip * progress.num_steps + progress.step
        bar.set_postfix_str(f"clip {progress.clip + 1}/{progress.num_clips}, ETA {progress.eta:.0f} s")
        bar.refresh()

    try:
        result = pipeline(request, callback=show)
    finally:
        bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    width, height = result.resolution
    what = "the whole portrait" if result.crop_video_path else "the crop"
    print(
        f"{result.video_path}  ({width}×{height}, {what}; {result.num_frames} frames, {result.duration:.2f} s, "
        f"{pipeline.precision})"
    )
    if result.crop_video_path:
        side = pipeline.model_info.resolution_for(request)
        print(f"{result.crop_video_path}  ({side}×{side}, the crop alone)")
    print(f"{result.settings_path}  (settings, emotions, timings)")
    return 0


def generate_batch(args: argparse.Namespace) -> int:
    from memo_model.pipelines.batch import run_batch

    def load(device):
        return _load(argparse.Namespace(**{**vars(args), "device": args.device or str(device)}))

    summary = run_batch(args.jobs, args.output, load)
    return 1 if summary["counts"]["failed"] else 0


def detect_emotion(args: argparse.Namespace) -> int:
    from memo_model.audio.io import load_audio
    from memo_model.pipelines.emotions import detect_track, plan_clip_emotions
    from memo_model.pipelines.request import CLIP_FRAMES

    emotions = _emotions(args)
    pipeline = _load(args)
    if pipeline.emotion_detector is None:
        print("The active model has no emotion detector.", file=sys.stderr)
        return 1
    notes: list[str] = []
    waveform = load_audio(args.audio, notes=notes)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    track = detect_track(waveform, pipeline.emotion_detector, args.fps, CLIP_FRAMES)
    found = plan_clip_emotions(track, emotions, args.fps, CLIP_FRAMES, len(waveform)).segments
    print(f"{'start':>8} {'end':>8}  {'emotion':10} confidence")
    for segment in found:
        print(f"{segment['start']:8.2f} {segment['end']:8.2f}  {segment['label']:10} {segment['confidence']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(list(found), indent=2))
        print(f"wrote {args.json}")
    return 0


def check_weights(args: argparse.Namespace) -> int:
    from memo_model.weights import load_components

    for name, model in load_components(args.folder).items():
        count = sum(p.numel() for p in model.parameters())
        print(f"{name:26s} {type(model).__name__:24s} {count:>14,d} parameters")
    return 0


def export_weights(args: argparse.Namespace) -> int:
    import torch

    from memo_model.weights import export_weights as export

    written = export(args.source, args.target, getattr(torch, args.dtype))
    print(f"wrote {', '.join(written)} ({args.dtype}) and the manifest into {args.target}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from memo_model.training.train import main_from_args

    return main_from_args(args)


def _limited(name: str):
    """argparse type that names the setting and its range when a value is not a (finite) number."""
    limit = LIMITS[name]
    kind = float if isinstance(limit.step, float) and limit.step % 1 else int

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{limit.label} must be a number {limit.span}; got {shown(text)}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """Answers a wrong command line with its one-line error and where to read the options, not the whole usage (the
    usage of ``generate`` alone is over a thousand characters)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists every option.)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m memo_model", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="portrait + audio -> talking video")
    gen.add_argument("--image", required=True, help="portrait (jpg, png, webp, ...)")
    gen.add_argument("--audio", required=True, help="speech (wav, mp3, flac, ogg, m4a, webm)")
    gen.add_argument("--output", help="mp4 path (default: outputs/<image>_<audio>.mp4; never overwritten)")
    gen.add_argument("--seed", type=_limited("seed"), default=LIMITS["seed"].default)
    gen.add_argument("--steps", type=_limited("steps"), help="denoising steps (default: the model's; official 20)")
    for flag, name in (("--ref-cfg", "reference_guidance"), ("--audio-cfg", "audio_guidance"),
                       ("--emotion-cfg", "emotion_guidance")):  # fmt: skip
        gen.add_argument(flag, type=_limited(name), help=f"{LIMITS[name].help} (default: the model's; official 3.5)")
    _add_emotion_options(gen)
    gen.add_argument("--fps", type=_limited("fps"), default=LIMITS["fps"].default)
    gen.add_argument("--past-frames", type=_limited("past_frames"), default=LIMITS["past_frames"].default)
    gen.add_argument("--memory-decay", type=_limited("memory_decay"), help=LIMITS["memory_decay"].help)
    gen.add_argument(
        "--preview-seconds",
        type=_limited("preview_seconds"),
        help="only the first S seconds (whole clips), fewer steps",
    )
    gen.add_argument("--preview-steps", type=_limited("preview_steps"), help="preview steps (default: the model's)")
    gen.add_argument(
        "--paste-back",
        action=argparse.BooleanOptionalAction,
        help="blend the animated crop into the whole portrait as the main video, the crop alone beside it as "
        "<name>-crop.mp4 (default: when the picture is larger than the crop)",
    )
    gen.add_argument(
        "--guidance-layout",
        choices=GUIDANCE_LAYOUTS,
        default="per-sample",
        help="official: the official inference's tiled guidance batch (docs/CHECKPOINT.md §1.6.1)",
    )
    _add_weights_options(gen)
    gen.set_defaults(func=generate)

    batch = commands.add_parser(
        "generate-batch",
        help="a JSON-lines file of requests -> one video each (resumable, sharded under accelerate launch)",
        description="One GenerationRequest per line of JOBS.jsonl (as GenerationRequest.to_dict() writes it, plus "
        'an optional "name": the file stem, default job-<line>) -> DIR/<name>.mp4 and DIR/<name>.json. Under '
        "`accelerate launch ... -m memo_model generate-batch ...` job i runs on rank i mod world size. Files appear "
        "only when a job is complete; run the same command again to skip finished jobs and retry failed ones "
        "(DIR/<name>.error.json). DIR/summary.json lists every job's status. Exit code 1 when a job failed.",
    )
    batch.add_argument("jobs", metavar="JOBS.jsonl", help="one request (JSON object) per line")
    batch.add_argument("--output", required=True, metavar="DIR", help="folder for the videos, sidecars and summary")
    _add_weights_options(batch)
    batch.set_defaults(func=generate_batch)

    detect = commands.add_parser(
        "detect-emotion", help="print the emotion segments of an audio file (detected, then any overrides)"
    )
    detect.add_argument("--audio", required=True)
    detect.add_argument("--json", help="also write the segments to this JSON file")
    detect.add_argument("--fps", type=int, default=LIMITS["fps"].default)
    _add_emotion_options(detect)
    _add_weights_options(detect)
    detect.set_defaults(func=detect_emotion)

    check = commands.add_parser("check-weights", help="load a folder in the official layout and list its components")
    check.add_argument("folder", help="folder with reference_net/, diffusion_net/, image_proj/, audio_proj/, misc/")
    check.set_defaults(func=check_weights)

    export = commands.add_parser("export-weights", help="copy a run's trained networks into a weights folder")
    export.add_argument("source", help="a weights folder in the official layout (e.g. runs/.../weights)")
    export.add_argument("target", help="folder to write into (e.g. assets/memo-tiny)")
    export.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    export.set_defaults(func=export_weights)

    train = commands.add_parser("train", help="train MEMO from a YAML run config (see configs/)")
    train.add_argument("--config", required=True, help="YAML file of memo_model.training.train.TrainConfig")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of output_dir")
    train.add_argument(
        "--max-steps",
        type=int,
        help="stop at this step instead of the config's (weights are written; --resume goes on)",
    )
    train.set_defaults(func=_train)

    from memo_model.data.preprocess.cli import add_preprocess_parser
    from memo_model.data.synthetic.cli import add_synth_parser
    from memo_model.evaluation.cli import add_evaluate_parser
    from memo_model.tiny.cli import add_train_parts_parser

    add_train_parts_parser(commands)
    add_synth_parser(commands)
    add_preprocess_parser(commands)
    add_evaluate_parser(commands)
    return parser


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from memo_model.errors import InputError, SetupError
    from memo_model.weights import CheckpointError

    for stream in (sys.stdout, sys.stderr):  # Linux file names need not be UTF-8: escape them, never crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # as Ctrl-C: the partial video and its sidecar are kept
    try:
        return args.func(args)
    except (InputError, SetupError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path that cannot be read or written: permissions, a full disk, a name too long
        where = f" {str(error.filename)[:200]}" if error.filename else ""
        print(
            f"error: could not use{where}: {error.strerror or error} — check the path, its permissions and the "
            "free space.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM; pipeline_memo.Interrupted carries what was kept
        result = getattr(stop, "result", None)
        if result is None:
            print("stopped", file=sys.stderr)
        elif result.num_frames:
            crop = f" (the crop alone in {result.crop_video_path})" if result.crop_video_path else ""
            kept = f"{result.duration:.1f} s kept with its audio in {result.video_path}{crop}"
            print(f"stopped: {kept}", file=sys.stderr)
        else:
            print(f"stopped before the first clip was finished (settings: {result.settings_path})", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
