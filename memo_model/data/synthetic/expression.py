"""Facial expressions of the synthetic world: one face-parameter vector per selectable emotion.

A frame's expression is a weight vector over ``SELECTABLE_EMOTIONS`` (one-hot inside a segment, a smooth
blend across a segment change); the face parameters are the weighted sum of the rows of
``EXPRESSION_TABLE``, so blending is linear and every intermediate face is valid.

Each emotion moves several features at once, following the usual facial action units, so that it stays
readable when speech moves the mouth:

- angry: brows lowered and pulled together (V), narrowed eyes, pressed lips, flushed skin
- disgusted: sneer (raised upper lip on one side), wrinkled nose, lowered brows, squint
- fearful: brows raised and pulled together, wide eyes, lips stretched sideways, pale skin
- happy: broad smile with teeth, raised cheeks (squinting lower lids), slightly raised brows
- neutral: rest face
- other: skeptical look — one brow up and one down, lopsided smirk, eyes glancing sideways
- sad: inner brow corners raised, drooping lids, downturned mouth, gaze down
- surprised: brows high, eyes wide open, jaw dropped into a round "O"
"""

import numpy as np

from memo_model.audio.emotion import EMOTION_LABELS, SELECTABLE_EMOTIONS

EXPRESSION_PARAMETERS = (
    "brow_raise",  # both brows up (+) / down (-)
    "brow_inner",  # inner brow ends up (+, worry) / down (-, anger)
    "brow_asymmetry",  # left brow up and right brow down (skeptical)
    "eye_open",  # added to the eye opening (1 = rest)
    "lower_lid",  # cheek raise pushing the lower lid up
    "mouth_corner",  # corners up (+, smile) / down (-)
    "mouth_width",  # relative widening of the mouth
    "jaw_open",  # opening that does not come from speech
    "teeth",  # how much teeth show when the lips part
    "sneer",  # upper lip raised on one side
    "mouth_asymmetry",  # one corner up, the other flat (smirk)
    "gaze_x",  # iris offset, fraction of eye width
    "gaze_y",
    "nose_wrinkle",
    "flush",  # + red flush, - pale
)
_P = {name: i for i, name in enumerate(EXPRESSION_PARAMETERS)}

_EXPRESSIONS: dict[str, dict[str, float]] = {
    "angry": {"brow_raise": -0.8, "brow_inner": -1.2, "eye_open": -0.3, "mouth_corner": -0.5, "mouth_width": -0.15,
              "teeth": 0.6, "flush": 1.0},
    "disgusted": {"brow_raise": -0.5, "brow_inner": -0.4, "eye_open": -0.35, "lower_lid": 0.4, "mouth_corner": -0.6,
                  "sneer": 1.0, "nose_wrinkle": 1.0, "teeth": 0.4, "flush": -0.3},
    "fearful": {"brow_raise": 0.8, "brow_inner": 0.9, "eye_open": 0.55, "mouth_corner": -0.5, "mouth_width": 0.3,
                "jaw_open": 0.2, "teeth": 0.9, "flush": -1.0},
    "happy": {"brow_raise": 0.2, "lower_lid": 0.6, "eye_open": -0.15, "mouth_corner": 1.0, "mouth_width": 0.3,
              "jaw_open": 0.15, "teeth": 1.0, "flush": 0.3},
    "neutral": {},
    "other": {"brow_asymmetry": 1.0, "mouth_asymmetry": 1.0, "gaze_x": 0.55, "eye_open": -0.1},
    "sad": {"brow_inner": 1.2, "brow_raise": 0.0, "eye_open": -0.3, "mouth_corner": -1.0, "mouth_width": -0.1,
            "gaze_y": 0.5, "flush": -0.4},
    "surprised": {"brow_raise": 1.2, "eye_open": 0.75, "jaw_open": 0.55, "mouth_width": -0.3, "teeth": 0.3},
}  # fmt: skip

EXPRESSION_TABLE = np.zeros((len(SELECTABLE_EMOTIONS), len(EXPRESSION_PARAMETERS)), dtype=np.float32)
for _row, _label in enumerate(SELECTABLE_EMOTIONS):
    for _name, _value in _EXPRESSIONS[_label].items():
        EXPRESSION_TABLE[_row, _P[_name]] = _value


def one_hot_expression(emotion: int) -> np.ndarray:
    """Weights over SELECTABLE_EMOTIONS for an index into EMOTION_LABELS. Shape (8,)."""
    if not 0 <= emotion < len(SELECTABLE_EMOTIONS):
        raise ValueError(
            f"Emotion index {emotion} cannot be rendered; use one of {list(range(len(SELECTABLE_EMOTIONS)))} "
            f"({', '.join(SELECTABLE_EMOTIONS)}), not {EMOTION_LABELS[-1]!r}."
        )
    weights = np.zeros(len(SELECTABLE_EMOTIONS), dtype=np.float32)
    weights[emotion] = 1.0
    return weights


def expression_parameters(weights: np.ndarray) -> dict[str, float]:
    """Face parameters for expression weights of shape (8,) (they should sum to 1)."""
    values = np.asarray(weights, dtype=np.float32) @ EXPRESSION_TABLE
    return {name: float(values[i]) for i, name in enumerate(EXPRESSION_PARAMETERS)}
