"""`python -m memo_model evaluate`: the paper §5 measures and the Table 2 memory ablation on held-out synthetic people.

Register with ``add_evaluate_parser(subparsers)``; see ``memo_model/evaluation/evaluate.py`` for what is measured.
"""

import argparse

from memo_model.evaluation.evaluate import PARTS, EvaluationConfig


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"choose a comma-separated subset of {','.join(PARTS)}; got {text!r}")
    return parts


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from memo_model.evaluation.evaluate import evaluate
    from memo_model.evaluation.report import write_report
    from memo_model.loading import load_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    config = EvaluationConfig(
        output=args.output,
        samples=args.samples,
        seconds=args.seconds,
        long_seconds=args.long_seconds,
        window_seconds=args.window_seconds,
        steps=args.steps,
        seed=args.seed,
        parts=args.parts,
        weights=args.weights,
        device=args.device,
        workers=args.workers,
        guidance=None if args.guidance is None else tuple(args.guidance),
    ).validate()
    pipeline = load_pipeline(args.weights, device=args.device)
    result = evaluate(pipeline, config)
    json_path, markdown_path = write_report(result, args.output)
    print(markdown_path.read_text())
    print(f"wrote {json_path} and {markdown_path}")
    return 0


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` command to ``python -m memo_model``."""
    defaults = EvaluationConfig(output="")
    parser = subparsers.add_parser(
        "evaluate", help="lip-sync, expression, identity drift, Fréchet distance and the memory ablation"
    )
    parser.add_argument("--output", required=True, help="folder for evaluation.json, evaluation.md, videos and data")
    parser.add_argument("--weights", help="weights folder or hub id (default: the bundled MEMO-Tiny)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--samples", type=int, default=defaults.samples, help="held-out takes to generate")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="length of each held-out take")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="denoising steps per clip")
    parser.add_argument(
        "--long-seconds",
        type=float,
        default=defaults.long_seconds,
        help="identity is compared between the first window and the window starting here (one long video)",
    )
    parser.add_argument("--window-seconds", type=float, default=defaults.window_seconds, help="identity window")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for the data and the generation")
    parser.add_argument(
        "--parts", type=_parts, default=PARTS, help=f"comma-separated subset of {','.join(PARTS)} (default: all)"
    )
    parser.add_argument(
        "--guidance",
        type=float,
        nargs=3,
        metavar=("REFERENCE", "AUDIO", "EMOTION"),
        help="guidance scales for every video (default: the model's)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="videos generated at once, one process each with (CPU cores / workers) torch threads (default: 1)",
    )
    parser.set_defaults(func=_evaluate)
    return parser
