"""Which emotion each clip is generated with: detected from the audio, then the person's overrides.

Official behaviour (docs/CHECKPOINT.md §1.4): one label per 16-frame clip, the majority of its frame labels, each
frame labelled from a 3 s window of the original audio. Overrides (a global emotion and per-segment ones, see
``memo_model.audio.emotion``) replace labels clip by clip.
"""

from dataclasses import dataclass, field

import numpy as np

from memo_model.audio.emotion import (
    EMOTION_LABELS,
    EmotionOverrides,
    EmotionTrack,
    apply_overrides,
    clip_labels,
    detect_emotions,
    emotion_index,
    segments,
)
from memo_model.audio.features import padded_frame_count
from memo_model.audio.io import SAMPLE_RATE

FALLBACK_EMOTION = "neutral"  # used for every clip when a model has no detector and nobody chose an emotion


@dataclass(frozen=True)
class ClipEmotions:
    """Per clip: the detected label index (None without a detector) and the one used; the segments shown to people."""

    detected: tuple[int | None, ...]
    used: tuple[int, ...]
    segments: tuple[dict, ...]  # the used labels as segments (start, end, label, confidence, probabilities)
    detected_segments: tuple[dict, ...]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def name(index):
            return None if index is None else EMOTION_LABELS[index]

        return {
            "detected_per_clip": [name(i) for i in self.detected],
            "used_per_clip": [name(i) for i in self.used],
            "segments": list(self.segments),
            "detected_segments": list(self.detected_segments),
        }


def plan_emotions(waveform: np.ndarray, detector, request, clip_length: int) -> ClipEmotions:
    """Detect (when the model has a detector), apply the request's overrides, and describe the result."""
    fps = request.fps
    num_frames = padded_frame_count(len(waveform), fps, clip_length)
    num_clips = num_frames // clip_length
    duration = len(waveform) / SAMPLE_RATE
    overrides = EmotionOverrides(request.emotion, request.emotion_segments)
    warnings = []
    if detector is not None:
        track = detect_emotions(waveform, detector, fps=fps, num_frames=num_frames)
        detected = clip_labels(track.frame_labels, clip_length)
        detected_segments = tuple(s.to_dict() for s in segments(track, clip_length))
    else:
        fallback = emotion_index(FALLBACK_EMOTION)
        detected = np.full(num_clips, fallback)
        probabilities = np.zeros((num_frames, len(EMOTION_LABELS)), dtype=np.float32)
        probabilities[:, fallback] = 1.0
        track = EmotionTrack.from_probabilities(probabilities, fps)
        detected_segments = ()
        if overrides.global_label is None:
            warnings.append(f"This model has no emotion detector: clips use '{FALLBACK_EMOTION}' unless you choose.")
    used = apply_overrides(detected, overrides, fps, clip_length, duration=duration)
    used_segments = tuple(s.to_dict() for s in segments(track, clip_length, labels=used))
    return ClipEmotions(
        detected=tuple(int(i) for i in detected) if detector is not None else (None,) * num_clips,
        used=tuple(int(i) for i in used),
        segments=used_segments,
        detected_segments=detected_segments,
        warnings=warnings,
    )
