"""Synthetic identities: everything about a person that stays fixed across a video, sampled from one seed.

``sample_identity(seed)`` is a pure function of the seed, so an identity is fully described by one integer
(``identity_seed`` in ``metadata.jsonl``). Training identities and held-out identities are disjoint seed
ranges (see ``TRAIN_SEEDS`` / ``HELD_OUT_SEEDS``), the synthetic analogue of unseen test subjects.

All geometry is in face units: fractions of the image side, so one identity renders at any square size.
"""

from dataclasses import dataclass

import numpy as np

# Seeds below HELD_OUT_SEED_START are used for training the analyzer and the MEMO-Tiny model;
# seeds at or above it are never trained on, so they measure generalisation to new people.
HELD_OUT_SEED_START = 1_000_000
TRAIN_SEEDS = range(0, HELD_OUT_SEED_START)
HELD_OUT_SEEDS = range(HELD_OUT_SEED_START, 2 * HELD_OUT_SEED_START)

HAIR_STYLES = ("buzz", "crop", "side_part", "long", "bob", "curly", "bun", "spiky", "bald")
BACKGROUND_PATTERNS = ("plain", "stripes", "dots", "checker", "rings")

# RGB anchors; skin tones are interpolated between neighbouring anchors so tones form a continuum.
SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 125], [198, 134, 96], [160, 102, 66], [112, 70, 44], [80, 50, 32]],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [
        [25, 20, 18],  # black
        [60, 38, 24],  # dark brown
        [105, 68, 40],  # brown
        [150, 70, 35],  # auburn
        [215, 180, 110],  # blonde
        [190, 85, 40],  # red
        [150, 150, 150],  # grey
        [225, 225, 220],  # white
        [60, 90, 200],  # dyed blue
        [220, 90, 160],  # dyed pink
        [60, 160, 90],  # dyed green
    ],
    dtype=np.float32,
)
# Natural hair colours are far more common than dyed ones.
HAIR_COLOUR_WEIGHTS = np.array([5, 5, 4, 2, 3, 2, 2, 1, 0.6, 0.6, 0.6])
EYE_COLOURS = np.array(
    [[70, 45, 25], [40, 28, 20], [60, 110, 190], [70, 130, 70], [120, 100, 50], [110, 120, 130]], dtype=np.float32
)


@dataclass(frozen=True)
class Identity:
    """A person's fixed appearance. Colours are RGB floats in [0, 255]; lengths are in face units."""

    seed: int
    face_width: float  # half-width of the head outline
    face_height: float  # half-height of the head outline
    jaw_taper: float  # 0 = round jaw, larger = pointed chin
    squareness: float  # superellipse exponent: 2 = ellipse, larger = squarer head
    skin: tuple[float, float, float]
    hair_style: str
    hair: tuple[float, float, float]
    hair_volume: float
    eye_colour: tuple[float, float, float]
    eye_spacing: float  # half-distance between eye centres
    eye_size: float  # scales eye width and height
    brow_thickness: float
    brow_colour: tuple[float, float, float]
    nose_length: float
    nose_width: float
    mouth_width: float  # half-width of the neutral mouth
    lip_colour: tuple[float, float, float]
    lip_thickness: float
    background_top: tuple[float, float, float]
    background_bottom: tuple[float, float, float]
    background_angle: float  # gradient direction in radians
    background_pattern: str
    pattern_scale: float
    shirt: tuple[float, float, float]
    glasses: bool
    glasses_colour: tuple[float, float, float]
    glasses_round: bool
    earrings: bool
    earring_colour: tuple[float, float, float]
    freckles: bool


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    clipped = np.clip(values, 0, 255)
    return (float(clipped[0]), float(clipped[1]), float(clipped[2]))


def _random_colour(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=3).astype(np.float32)


def sample_identity(seed: int) -> Identity:
    """The identity for ``seed``; the same seed always gives the same person."""
    rng = np.random.default_rng([seed, 0x1D])  # stream tag keeps identity draws apart from speech draws

    tone_position = rng.uniform(0, len(SKIN_TONES) - 1)
    low = int(np.floor(tone_position))
    high = min(low + 1, len(SKIN_TONES) - 1)
    skin = SKIN_TONES[low] + (SKIN_TONES[high] - SKIN_TONES[low]) * (tone_position - low)
    skin = skin + rng.normal(0, 6, size=3)  # small per-person tint so equal tones still differ

    hair_index = rng.choice(len(HAIR_COLOURS), p=HAIR_COLOUR_WEIGHTS / HAIR_COLOUR_WEIGHTS.sum())
    hair = HAIR_COLOURS[hair_index] * rng.uniform(0.85, 1.15)
    eye = EYE_COLOURS[rng.integers(len(EYE_COLOURS))] * rng.uniform(0.85, 1.15)
    brow = hair * 0.75 if hair_index < 8 else np.array([60, 45, 35], dtype=np.float32)

    background_top = _random_colour(rng, 40, 235)
    background_bottom = np.clip(background_top + rng.normal(0, 50, size=3), 0, 255)
    shirt = _random_colour(rng, 20, 230)

    lip = skin * np.array([0.85, 0.55, 0.55]) + np.array([30, 0, 10])
    return Identity(
        seed=seed,
        face_width=float(rng.uniform(0.22, 0.28)),
        face_height=float(rng.uniform(0.30, 0.35)),
        jaw_taper=float(rng.uniform(0.0, 0.3)),
        squareness=float(rng.uniform(2.0, 3.2)),
        skin=_rgb(skin),
        hair_style=str(rng.choice(HAIR_STYLES)),
        hair=_rgb(hair),
        hair_volume=float(rng.uniform(0.8, 1.25)),
        eye_colour=_rgb(eye),
        eye_spacing=float(rng.uniform(0.095, 0.12)),
        eye_size=float(rng.uniform(0.85, 1.15)),
        brow_thickness=float(rng.uniform(0.016, 0.028)),
        brow_colour=_rgb(brow),
        nose_length=float(rng.uniform(0.07, 0.12)),
        nose_width=float(rng.uniform(0.022, 0.04)),
        mouth_width=float(rng.uniform(0.065, 0.085)),
        lip_colour=_rgb(lip),
        lip_thickness=float(rng.uniform(0.010, 0.02)),
        background_top=_rgb(background_top),
        background_bottom=_rgb(background_bottom),
        background_angle=float(rng.uniform(0, 2 * np.pi)),
        background_pattern=str(rng.choice(BACKGROUND_PATTERNS)),
        pattern_scale=float(rng.uniform(0.06, 0.16)),
        shirt=_rgb(shirt),
        glasses=bool(rng.random() < 0.25),
        glasses_colour=_rgb(_random_colour(rng, 0, 200)),
        glasses_round=bool(rng.random() < 0.5),
        earrings=bool(rng.random() < 0.25),
        earring_colour=_rgb(np.array([230, 190, 60]) if rng.random() < 0.6 else _random_colour(rng, 150, 255)),
        freckles=bool(rng.random() < 0.15),
    )
