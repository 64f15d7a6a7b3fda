"""MEMO: memory-guided, emotion-aware diffusion for audio-driven talking video.

Public API: ``load_pipeline``, ``MemoPipeline``, ``GenerationRequest`` (its emotions an ``EmotionOverrides``),
``EMOTION_LABELS``. The heavy parts (torch, diffusers) are imported on first use, so ``import memo_model`` stays
cheap.
"""

from memo_model.audio.emotion import EMOTION_LABELS

__all__ = ["EMOTION_LABELS", "EmotionOverrides", "GenerationRequest", "MemoPipeline", "load_pipeline"]
__version__ = "0.1.0"

_LAZY = {
    "load_pipeline": "memo_model.loading",
    "MemoPipeline": "memo_model.pipelines.pipeline_memo",
    "GenerationRequest": "memo_model.pipelines.request",
    "EmotionOverrides": "memo_model.pipelines.emotions",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'memo_model' has no attribute {name!r}")
