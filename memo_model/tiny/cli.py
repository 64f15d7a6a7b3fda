"""CLI for training MEMO-Tiny's separately trained parts: the VAE (vae.py), the audio emotion detector head
(emotion_head.py) and the face analyzer that scores the synthetic world (analyzer.py).

``memo_model/__main__.py`` registers these with ``add_train_parts_parser(subparsers)``::

    python -m memo_model train-vae --output /tmp/tiny_parts/vae_run --steps 1000 [--resume]
    python -m memo_model train-emotion --output /tmp/tiny_parts/emotion_run --steps 3000 [--resume]
    python -m memo_model train-analyzer --output assets/analyzer [--steps 3000]
    python -m memo_model evaluate-analyzer [--analyzer assets/analyzer]

Each writes its model folder (``OUTPUT/vae`` or ``OUTPUT/classifier``), a checkpoint, ``log.csv`` and
``report.json``; docs/TRAINING.md records the runs behind the bundled weights.
"""

import argparse
import json


def _train_vae(args: argparse.Namespace) -> int:
    from memo_model.tiny.vae import train_vae

    train_vae(
        args.output,
        steps=args.steps,
        resume=args.resume,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        threads=args.threads,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None,
        init_from=args.init_from,
        decoder_only=args.decoder_only,
        expression_weight=args.expression_weight,
        image_size=args.size,
        latent_channels=args.latent_channels,
        bf16=args.bf16,
    )
    return 0


def _train_emotion(args: argparse.Namespace) -> int:
    from memo_model.tiny.emotion_head import train_emotion

    train_emotion(
        args.output,
        steps=args.steps,
        resume=args.resume,
        per_emotion=args.per_emotion,
        talks=args.talks,
        seed=args.seed,
        threads=args.threads,
    )
    return 0


def _train_analyzer(args: argparse.Namespace) -> int:
    from memo_model.tiny.analyzer import train_analyzer

    report = train_analyzer(
        args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        num_identities=args.identities,
        seed=args.seed,
        threads=args.threads,
    )
    print(json.dumps(report, indent=2))
    return 0


def _evaluate_analyzer(args: argparse.Namespace) -> int:
    from memo_model.data.synthetic.analyzer import load_analyzer
    from memo_model.tiny.analyzer import evaluate_analyzer

    print(json.dumps(evaluate_analyzer(load_analyzer(args.analyzer), num_videos=args.videos), indent=2))
    return 0


def add_train_parts_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train-vae``, ``train-emotion``, ``train-analyzer``, ``evaluate-analyzer``; each sets ``func``."""
    vae = subparsers.add_parser("train-vae", help="train MEMO-Tiny's VAE (64 or 128 px) on synthetic renders")
    vae.add_argument("--output", required=True, help="run folder: vae/, checkpoint/, log.csv, report.json")
    vae.add_argument("--steps", type=int, default=1000)
    vae.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint")
    vae.add_argument("--batch-size", type=int, default=8)
    vae.add_argument("--learning-rate", type=float, default=1e-3, help="peak of the cosine schedule")
    vae.add_argument("--max-minutes", type=float, default=None, help="stop (after a checkpoint) when spent")
    vae.add_argument("--init-from", default=None, help="a VAE folder to start from (e.g. assets/memo-tiny/vae)")
    vae.add_argument(
        "--decoder-only",
        action="store_true",
        help="train the decoder only; keeps the latent space (needs --init-from)",
    )
    vae.add_argument(
        "--expression-weight", type=float, default=0.0, help="> 0: weight the L1 loss towards brows, eyes and mouth"
    )
    vae.add_argument("--size", type=int, default=64, choices=(64, 128), help="frame size (a fresh run's architecture)")
    vae.add_argument("--latent-channels", type=int, default=4, help="latent channels (a fresh run's architecture)")
    vae.add_argument("--bf16", action="store_true", help="bfloat16 autocast (fast on CPUs with AVX512-BF16 or AMX)")
    vae.add_argument("--seed", type=int, default=0)
    vae.add_argument("--threads", type=int, default=1, help="torch threads (one more process renders frames)")
    vae.set_defaults(func=_train_vae)

    emotion = subparsers.add_parser("train-emotion", help="train MEMO-Tiny's audio emotion detector head")
    emotion.add_argument("--output", required=True, help="run folder: classifier/, checkpoint/, log.csv, report.json")
    emotion.add_argument("--steps", type=int, default=3000)
    emotion.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint")
    emotion.add_argument("--per-emotion", type=int, default=150, help="training windows per emotion")
    emotion.add_argument("--talks", type=int, default=150, help="6 s multi-emotion talks cut into detector windows")
    emotion.add_argument("--seed", type=int, default=0)
    emotion.add_argument("--threads", type=int, default=1)
    emotion.set_defaults(func=_train_emotion)

    train = subparsers.add_parser("train-analyzer", help="train the face analyzer on renders")
    train.add_argument("--output", default="assets/analyzer")
    train.add_argument("--steps", type=int, default=3000)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--identities", type=int, default=1500, help="training identity seeds 0..N-1")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1, help="torch threads (one more process renders)")
    train.set_defaults(func=_train_analyzer)

    evaluate = subparsers.add_parser("evaluate-analyzer", help="held-out accuracy of an analyzer")
    evaluate.add_argument("--analyzer", default=None, help="folder with config.json + model.safetensors")
    evaluate.add_argument("--videos", type=int, default=24)
    evaluate.set_defaults(func=_evaluate_analyzer)
