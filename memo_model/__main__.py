"""Command line: `python -m memo_model <command> ...` (run with --help for the list)."""

import argparse
import sys


def check_weights(args: argparse.Namespace) -> int:
    """Load a weights folder in the official layout strictly and summarise it."""
    from memo_model.loading import CheckpointError, load_components

    try:
        components = load_components(args.folder)
    except CheckpointError as error:
        print(error, file=sys.stderr)
        return 1
    for name, model in components.items():
        count = sum(p.numel() for p in model.parameters())
        print(f"{name:26s} {type(model).__name__:24s} {count:>14,d} parameters")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m memo_model", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-weights", help="load a folder in the official layout and list its components")
    check.add_argument("folder", help="folder with reference_net/, diffusion_net/, image_proj/, audio_proj/, misc/")
    check.set_defaults(func=check_weights)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
