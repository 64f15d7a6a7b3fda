"""``python -m memo_model synth ...``: generate, look at and measure the synthetic world.

Actions::

    synth dataset --output /tmp/synth_work/train --samples 200 [--held-out] [--size 128] [--seconds 3 8]
    synth contact-sheet --output docs/images/synthetic_contact_sheet.png [--identities 24]
    synth score --video v.mp4 [--audio a.wav] [--labels l.json] [--reference r.png]

``memo_model/__main__.py`` registers this with ``add_synth_parser(subparsers)``. The face analyzer that scores the
world is one of MEMO-Tiny's trained parts: ``train-analyzer`` and ``evaluate-analyzer`` live in ``tiny/cli.py``.
"""

import argparse
import json

from memo_model.data.synthetic.identity import HELD_OUT_SEED_START


def _dataset(args: argparse.Namespace) -> None:
    from memo_model.data.synthetic.dataset_writer import DatasetSpec, write_dataset

    spec = DatasetSpec(
        num_samples=args.samples,
        seconds=tuple(args.seconds),
        size=args.size,
        first_identity=HELD_OUT_SEED_START if args.held_out else 0,
        num_identities=args.identities,
        seed=args.seed,
        background=args.background,
        decoupled_share=args.decoupled_share,
    )
    root = write_dataset(args.output, spec, progress=True)
    print(f"Wrote {args.samples} samples to {root}")


def _contact_sheet(args: argparse.Namespace) -> None:
    from memo_model.data.synthetic.contact_sheet import save_contact_sheet

    print(f"Wrote {save_contact_sheet(args.output, args.identities, args.size)}")


def _score(args: argparse.Namespace) -> None:
    from memo_model.data.synthetic.analyzer import load_analyzer, score_video

    scores = score_video(args.video, args.audio, args.labels, args.reference, analyzer=load_analyzer(args.analyzer))
    print(json.dumps(scores, indent=2))


def add_synth_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth`` and its actions; each action sets ``func(args)``."""
    synth = subparsers.add_parser("synth", help="synthetic talking-face world: datasets, contact sheets, scores")
    actions = synth.add_subparsers(dest="synth_action", required=True)

    dataset = actions.add_parser("dataset", help="write a synthetic dataset (videos, audio, labels, metadata)")
    dataset.add_argument("--output", required=True, help="dataset root folder")
    dataset.add_argument("--samples", type=int, default=16)
    dataset.add_argument("--seconds", type=float, nargs=2, default=(3.0, 8.0), metavar=("MIN", "MAX"))
    dataset.add_argument("--size", type=int, default=128, help="square frame side in pixels (even)")
    dataset.add_argument("--identities", type=int, default=200, help="how many identity seeds to draw from")
    dataset.add_argument("--held-out", action="store_true", help="use only held-out identity seeds")
    dataset.add_argument("--background", choices=("none", "noise", "music", "mixed"), default="none")
    dataset.add_argument(
        "--decoupled-share",
        type=float,
        default=0.0,
        help="share of takes (0-1) whose speech is spoken with other emotions than the face shows",
    )
    dataset.add_argument("--seed", type=int, default=0)
    dataset.set_defaults(func=_dataset)

    sheet = actions.add_parser("contact-sheet", help="PNG grid of identities x emotions")
    sheet.add_argument("--output", required=True)
    sheet.add_argument("--identities", type=int, default=24)
    sheet.add_argument("--size", type=int, default=128)
    sheet.set_defaults(func=_contact_sheet)

    score = actions.add_parser("score", help="lip-sync, expression and identity scores of one video")
    score.add_argument("--video", required=True)
    score.add_argument("--audio", default=None)
    score.add_argument("--labels", default=None, help="labels JSON with ground truth / requested segments")
    score.add_argument("--reference", default=None, help="reference image of the person")
    score.add_argument("--analyzer", default=None)
    score.set_defaults(func=_score)
    return synth
