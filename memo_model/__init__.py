"""MEMO: memory-guided, emotion-aware diffusion for audio-driven talking video."""

from memo_model.audio.emotion import EMOTION_LABELS

__all__ = ["EMOTION_LABELS"]
__version__ = "0.1.0"
