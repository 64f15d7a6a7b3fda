"""Audio emotion: the label set shared by the whole project.

The official MEMO checkpoint uses the nine emotion2vec classes below, in this order (memo issue #23); the
paper's eight emotions are the first eight without "unknown". Index ``len(EMOTION_LABELS)`` (9) is the
"no emotion" row of every Emo-AdaNorm embedding table, used for classifier-free guidance.
"""

EMOTION_LABELS: tuple[str, ...] = (
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "neutral",
    "other",
    "sad",
    "surprised",
    "unknown",
)
NUM_EMOTIONS = len(EMOTION_LABELS)
NO_EMOTION = NUM_EMOTIONS  # index of the unconditional embedding row

# What a person can pick in the UI and what the synthetic world renders: everything but "unknown".
SELECTABLE_EMOTIONS: tuple[str, ...] = EMOTION_LABELS[:-1]


def emotion_index(label: str) -> int:
    """Index of an emotion label; raises a ValueError listing the valid labels."""
    try:
        return EMOTION_LABELS.index(label.strip().lower())
    except ValueError:
        raise ValueError(f"Unknown emotion {label!r}; choose one of: {', '.join(EMOTION_LABELS)}.") from None
