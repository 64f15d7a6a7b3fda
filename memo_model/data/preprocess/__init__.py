"""The data pipeline for real talking videos (paper §4.4 and appendix F), as composable steps.

scenes.py (cuts, clips < 30 s) → faces.py (one face, crop ×1.1, resize) → quality.py (sharpness, exposure,
resolution, optional IQA) → lipsync.py (offline mouth/audio correlation, or SyncNet) → review.py (a person's
decisions) → writer.py (the synthetic dataset's on-disk format). pipeline.py composes them (sharded, resumable);
cli.py is ``python -m memo_model preprocess``. Each step has an offline default and takes a stronger model.
See docs/DATA_PIPELINE.md.
"""

from memo_model.data.preprocess.clip import Clip, Rejection, Step, reject
from memo_model.data.preprocess.faces import FaceCrop, VideoFaceDetector
from memo_model.data.preprocess.lipsync import (
    AnalyzerLipSyncScorer,
    LipSyncFilter,
    MouthDarknessScorer,
    SyncNetScorer,
    SyncScore,
)
from memo_model.data.preprocess.pipeline import (
    PreprocessConfig,
    Preprocessor,
    build_steps,
    find_videos,
    merge_shards,
    shard,
)
from memo_model.data.preprocess.quality import PyIQAModel, QualityFilter
from memo_model.data.preprocess.review import ReviewFilter, apply_review, read_decisions, write_review_list
from memo_model.data.preprocess.scenes import HistogramCutDetector, PySceneDetectCutDetector, split_scenes
from memo_model.data.preprocess.writer import DatasetWriter

__all__ = [
    "AnalyzerLipSyncScorer",
    "Clip",
    "DatasetWriter",
    "FaceCrop",
    "VideoFaceDetector",
    "HistogramCutDetector",
    "LipSyncFilter",
    "MouthDarknessScorer",
    "PreprocessConfig",
    "Preprocessor",
    "PyIQAModel",
    "PySceneDetectCutDetector",
    "QualityFilter",
    "Rejection",
    "ReviewFilter",
    "Step",
    "SyncNetScorer",
    "SyncScore",
    "apply_review",
    "build_steps",
    "find_videos",
    "merge_shards",
    "read_decisions",
    "reject",
    "shard",
    "split_scenes",
    "write_review_list",
]
