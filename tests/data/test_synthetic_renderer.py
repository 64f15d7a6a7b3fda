"""Renderer of the synthetic world: determinism, sizes, distinct people, readable expressions, mouth and lids."""

import numpy as np
import pytest

from memo_model.audio.emotion import SELECTABLE_EMOTIONS
from memo_model.data.synthetic.expression import EXPRESSION_TABLE, one_hot_expression
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START, sample_identity
from memo_model.data.synthetic.renderer import FaceRenderer, FaceState, render_frame

# Face-unit boxes (x0, y0, x1, y1) around the mouth and the image-left eye at rest pose.
MOUTH_BOX = (0.38, 0.62, 0.62, 0.82)
EYE_BOX = (0.33, 0.42, 0.47, 0.50)


def crop(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    size = image.shape[0]
    x0, y0, x1, y1 = (int(round(v * size)) for v in box)
    return image[y0:y1, x0:x1].astype(np.float32)


@pytest.mark.parametrize("size", [64, 128, 256])
def test_render_is_deterministic_and_sized(size):
    identity = sample_identity(7)
    state = FaceState(mouth_open=0.5, mouth_shape=0.3, yaw=0.2, roll=2.0, expression=one_hot_expression(3))
    first = render_frame(identity, state, size)
    second = render_frame(sample_identity(7), state, size)
    assert first.shape == (size, size, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)


def test_sizes_render_the_same_picture():
    identity = sample_identity(3)
    small = render_frame(identity, FaceState(), 64).astype(np.float32)
    large = render_frame(identity, FaceState(), 256).astype(np.float32)
    downsampled = large.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(small - downsampled).mean() < 6  # same geometry, only rasterisation differs


def test_identities_are_distinct():
    seeds = range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + 40)
    images = np.stack([render_frame(sample_identity(s), FaceState(), 64).astype(np.float32) for s in seeds])
    differences = np.abs(images[:, None] - images[None]).mean(axis=(2, 3, 4))
    off_diagonal = differences[~np.eye(len(images), dtype=bool)]
    assert off_diagonal.min() > 3  # no two of 40 people look alike
    styles = {sample_identity(s).hair_style for s in seeds}
    assert len(styles) >= 6


def test_every_expression_is_distinct():
    assert len({tuple(row) for row in EXPRESSION_TABLE}) == len(SELECTABLE_EMOTIONS)
    renderer = FaceRenderer(sample_identity(11), 128)
    faces = [renderer(FaceState(expression=one_hot_expression(e))).astype(np.float32) for e in range(8)]
    for i in range(8):
        for j in range(i + 1, 8):
            # Differences are confined to a small face area, so even 1 grey level on average is a clear change.
            assert np.abs(faces[i] - faces[j]).mean() > 1.0, (SELECTABLE_EMOTIONS[i], SELECTABLE_EMOTIONS[j])


def test_expression_blend_lies_between_the_endpoints():
    renderer = FaceRenderer(sample_identity(5), 128)
    sad, happy = one_hot_expression(6), one_hot_expression(3)
    ends = [renderer(FaceState(expression=w)).astype(np.float32) for w in (sad, happy)]
    middle = renderer(FaceState(expression=0.5 * sad + 0.5 * happy)).astype(np.float32)
    distance_between_ends = np.abs(ends[0] - ends[1]).mean()
    assert np.abs(middle - ends[0]).mean() < distance_between_ends
    assert np.abs(middle - ends[1]).mean() < distance_between_ends


def test_mouth_opening_follows_the_state():
    renderer = FaceRenderer(sample_identity(21), 128)
    closed = crop(renderer(FaceState(mouth_open=0.0)), MOUTH_BOX)
    changed = []
    for opening in (0.25, 0.5, 0.75, 1.0):
        mouth = crop(renderer(FaceState(mouth_open=opening)), MOUTH_BOX)
        changed.append(int((np.abs(mouth - closed).sum(-1) > 60).sum()))  # pixels moved by the opening lips
    assert changed == sorted(changed) and changed[0] > 10 and changed[-1] > 2 * changed[0]


def test_blink_closes_the_eye():
    renderer = FaceRenderer(sample_identity(2), 128)
    white = [int((crop(renderer(FaceState(blink=b)), EYE_BOX).min(-1) > 225).sum()) for b in (0.0, 1.0)]
    assert white[0] > 20 and white[1] < white[0] / 4


def test_too_small_size_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        FaceRenderer(sample_identity(0), 8)
