"""Contact sheet: a grid of rendered identities x emotions, for looking at the synthetic world.

Each row is one person, each column one selectable emotion (labelled on top), so a glance shows whether
people are distinct and emotions readable. Used for ``docs/images/synthetic_contact_sheet.png``.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from memo_model.audio.emotion import SELECTABLE_EMOTIONS
from memo_model.data.synthetic.expression import one_hot_expression
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START, sample_identity
from memo_model.data.synthetic.renderer import FaceRenderer, FaceState

_LABEL_HEIGHT = 14  # pixels for the column titles


def contact_sheet(identity_seeds: list[int], size: int = 128, mouth_open: float = 0.25) -> np.ndarray:
    """RGB grid of shape (label + rows * size, columns * size, 3): rows = identities, columns = emotions."""
    rows = []
    for seed in identity_seeds:
        renderer = FaceRenderer(sample_identity(seed), size)
        row = [
            renderer(FaceState(mouth_open=mouth_open, expression=one_hot_expression(e)))
            for e in range(len(SELECTABLE_EMOTIONS))
        ]
        rows.append(np.concatenate(row, axis=1))
    grid = np.concatenate(rows, axis=0)
    header = Image.new("RGB", (grid.shape[1], _LABEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for column, label in enumerate(SELECTABLE_EMOTIONS):
        draw.text((column * size + 4, 1), label, fill=(0, 0, 0))
    return np.concatenate([np.asarray(header), grid], axis=0)


def save_contact_sheet(
    path: str | Path, num_identities: int = 24, size: int = 128, first_seed: int = HELD_OUT_SEED_START
) -> Path:
    """Write a contact sheet PNG of held-out identities (never trained on) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(list(range(first_seed, first_seed + num_identities)), size)
    Image.fromarray(sheet).save(path, optimize=True)
    return path
