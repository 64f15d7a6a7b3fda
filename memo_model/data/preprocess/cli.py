"""``python -m memo_model preprocess ...``: the real-video data pipeline (paper appendix F) from the command line.

Actions::

    preprocess run   --input VIDEOS_DIR --output DATASET_DIR [--rank R --world-size W] [--resolution 512]
                     [--fps 30] [--crop-scale 1.1] [--review review.csv] [--cut-detector histogram|pyscenedetect]
                     [--lip-sync offline|analyzer|syncnet|none] [--syncnet-weights PATH] [--iqa hyperiqa]
                     [--face-embedder thumbnail|insightface --insightface-dir DIR] [--audio-features none|mel]
    preprocess merge DATASET_DIR                    # metadata.rank*.jsonl → metadata.jsonl + review.csv
    preprocess review DATASET_DIR [--decisions review.csv]   # apply a person's keep = no decisions

The lead's ``memo_model/__main__.py`` registers this with ``add_preprocess_parser(subparsers)``.
"""

import argparse
import json
import logging

from memo_model.data.preprocess.faces import PAPER_CROP_SCALE
from memo_model.data.preprocess.lipsync import OFFLINE_MIN_CONFIDENCE, PAPER_SYNC_C_THRESHOLD
from memo_model.data.preprocess.pipeline import DEFAULT_FPS


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from memo_model.data.preprocess.lipsync import AnalyzerLipSyncScorer, MouthDarknessScorer, SyncNetScorer
    from memo_model.data.preprocess.pipeline import PreprocessConfig, Preprocessor, build_steps
    from memo_model.data.preprocess.quality import PyIQAModel
    from memo_model.data.preprocess.review import read_decisions
    from memo_model.data.preprocess.scenes import HistogramCutDetector, PySceneDetectCutDetector
    from memo_model.data.preprocess.writer import DatasetWriter
    from memo_model.vision.face import InsightFaceEmbedder, ThumbnailEmbedder

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    min_confidence = args.min_lip_sync_confidence
    if args.lip_sync == "syncnet":
        scorer = SyncNetScorer(args.syncnet_weights)
        min_confidence = PAPER_SYNC_C_THRESHOLD if min_confidence is None else min_confidence
    elif args.lip_sync == "analyzer":
        scorer = AnalyzerLipSyncScorer(args.analyzer)
    else:
        scorer = MouthDarknessScorer()
    if min_confidence is None:
        min_confidence = OFFLINE_MIN_CONFIDENCE if args.lip_sync != "none" else float("-inf")
    config = PreprocessConfig(
        resolution=args.resolution, fps=args.fps, crop_scale=args.crop_scale, min_lip_sync_confidence=min_confidence
    )
    decisions = read_decisions(args.review) if args.review and Path(args.review).exists() else None
    steps = build_steps(
        config, iqa=PyIQAModel(args.iqa) if args.iqa else None, lip_sync_scorer=scorer, review_decisions=decisions
    )
    if args.lip_sync == "none":
        steps = [step for step in steps if step.name != "lip_sync"]
    embedder = InsightFaceEmbedder(args.insightface_dir) if args.face_embedder == "insightface" else None
    extractor = None
    if args.audio_features == "mel":
        from memo_model.audio.features import MelFeatures

        extractor = MelFeatures()
    writer = DatasetWriter(args.output, embedder=embedder or ThumbnailEmbedder(size=4), feature_extractor=extractor)
    cuts = PySceneDetectCutDetector() if args.cut_detector == "pyscenedetect" else HistogramCutDetector()
    preprocessor = Preprocessor(args.output, steps, writer, cuts, config, rank=args.rank)
    print(json.dumps(preprocessor.run(args.input, args.world_size), indent=2))


def _merge(args: argparse.Namespace) -> None:
    from memo_model.data.preprocess.pipeline import merge_shards

    print(json.dumps(merge_shards(args.dataset), indent=2))


def _review(args: argparse.Namespace) -> None:
    from pathlib import Path

    from memo_model.data.preprocess.review import REVIEW_FILE, apply_review

    kept, dropped = apply_review(args.dataset, args.decisions or Path(args.dataset) / REVIEW_FILE)
    print(json.dumps({"kept": kept, "dropped": dropped}))


def add_preprocess_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``preprocess`` and its actions (run, merge, review); each action sets ``func(args)``."""
    preprocess = subparsers.add_parser("preprocess", help="real talking videos → training dataset (appendix F)")
    actions = preprocess.add_subparsers(dest="preprocess_action", required=True)

    run = actions.add_parser("run", help="cut, filter and write one shard of a folder of videos")
    run.add_argument("--input", required=True, help="folder of raw videos (searched recursively)")
    run.add_argument("--output", required=True, help="dataset root folder")
    run.add_argument("--rank", type=int, default=0, help="this machine's shard, in [0, --world-size)")
    run.add_argument("--world-size", type=int, default=1, help="how many shards the corpus is split into")
    run.add_argument("--resolution", type=int, default=512, help="square training resolution of the head crop")
    run.add_argument("--fps", type=int, default=DEFAULT_FPS, help="frame rate all clips are resampled to")
    run.add_argument(
        "--crop-scale",
        type=float,
        default=PAPER_CROP_SCALE,
        help="crop side / face-box side: 1.1 for head boxes (paper), ~1.8 for the default detector's (brows to chin)",
    )
    run.add_argument("--review", default=None, help="an edited review list: clips marked keep = no are skipped")
    run.add_argument("--cut-detector", choices=("histogram", "pyscenedetect"), default="histogram")
    run.add_argument("--lip-sync", choices=("offline", "analyzer", "syncnet", "none"), default="offline")
    run.add_argument(
        "--min-lip-sync-confidence",
        type=float,
        default=None,
        help=f"default {OFFLINE_MIN_CONFIDENCE} (offline) or {PAPER_SYNC_C_THRESHOLD} (SyncNet)",
    )
    run.add_argument("--syncnet-weights", default=None, help="SyncNet weights for --lip-sync syncnet")
    run.add_argument("--analyzer", default=None, help="face analyzer folder for --lip-sync analyzer")
    run.add_argument("--iqa", default=None, help="a pyiqa metric (e.g. hyperiqa) added to the quality filter")
    run.add_argument("--face-embedder", choices=("thumbnail", "insightface"), default="thumbnail")
    run.add_argument("--insightface-dir", default=None, help="checkpoint's misc/face_analysis folder")
    run.add_argument(
        "--audio-features",
        choices=("none", "mel"),
        default="none",
        help="cache per-frame audio features (wav2vec2 from Python: DatasetWriter(feature_extractor=))",
    )
    run.set_defaults(func=_run)

    merge = actions.add_parser("merge", help="concatenate the shards' metadata parts into metadata.jsonl")
    merge.add_argument("dataset")
    merge.set_defaults(func=_merge)

    review = actions.add_parser("review", help="apply the keep column of an edited review list")
    review.add_argument("dataset")
    review.add_argument("--decisions", default=None, help="edited review CSV (default DATASET/review.csv)")
    review.set_defaults(func=_review)
    return preprocess
