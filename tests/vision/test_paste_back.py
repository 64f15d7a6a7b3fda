from pathlib import Path

import numpy as np
from PIL import Image

from memo_model.vision.face import prepare_portrait
from memo_model.vision.paste_back import PasteBack, feather_mask, output_size, wanted

ASTRONAUT = Path(__file__).parents[1] / "fixtures" / "astronaut_256.jpg"


def test_output_size_is_even_and_capped():
    assert output_size((642, 482)) == (642, 482)
    assert output_size((643, 480)) == (644, 480)
    assert output_size((4032, 3024), max_side=1920) == (1920, 1440)
    assert output_size((100, 3000), max_side=1920) == (64, 1920)


def test_feather_fades_inside_the_picture_and_not_at_its_border():
    mask = feather_mask((0, 20, 50, 70), (100, 100), feather=0.2)[..., 0]
    assert mask.shape == (50, 50)
    assert mask[25, 25] == 1.0
    assert mask[25, 0] == 1.0  # the box's left side is the picture's left border: no seam to hide
    assert mask[0, 25] < 0.05 and mask[-1, 25] < 0.05 and mask[25, -1] < 0.05
    assert np.all(np.diff(mask[:25, 25]) >= 0)  # rises monotonically from the edge inwards
    assert mask[3, -4] == mask[-4, -4] == 0.0  # head-shaped: corners inside the picture stay its own, never a square
    assert mask[3, 3] > 0.1  # ... but towards the border side the head reaches the edge
    assert mask[18:33, 18:33].min() == 1.0  # the face in the middle is all generated


def test_frames_land_in_the_box_and_leave_the_rest_untouched():
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    box = (40, 20, 100, 80)
    paste = PasteBack(background, box, feather_mask(box, (160, 120)))
    frames = np.full((2, 32, 32, 3), 200, dtype=np.uint8)
    out = paste(frames)
    assert out.shape == (2, 120, 160, 3) and paste.size == (160, 120)
    outside = np.ones((120, 160), dtype=bool)
    outside[20:80, 40:100] = False
    assert np.array_equal(out[:, outside], np.repeat(background[None], 2, axis=0)[:, outside])
    assert np.all(out[:, 50, 70] == 200)  # the centre of the box is the generated frame
    edge = out[0, 20, 70].astype(int)
    assert np.abs(edge - background[20, 70]).max() <= 4  # the box edge is still the picture


def test_from_a_real_portrait():
    portrait = prepare_portrait(ASTRONAUT, resolution=64)
    assert wanted(portrait)
    paste = PasteBack.from_portrait(portrait)
    assert paste.size == output_size(portrait.original_size)
    frames = np.asarray(portrait.image)[None]
    out = paste(frames)[0]
    # Pasting the model's own input back gives the picture again, up to two resamplings
    error = np.abs(out.astype(float) - paste.background.astype(float)).mean()
    assert error < 6, error


def test_the_size_follows_the_picture_as_given_even_when_it_was_reduced_first():
    """A picture over MAX_IMAGE_SIDE reaches the model reduced; the video's size still follows the picture itself, so
    it is known from the picture alone before any face is found."""
    portrait = prepare_portrait(Image.new("RGB", (5001, 999), "gray"), resolution=64)
    assert portrait.full_image.size != portrait.original_size == (5001, 999)
    paste = PasteBack.from_portrait(portrait)
    assert paste.size == output_size((5001, 999)) == (1920, 384)
    assert paste.box[2] <= 1920 and paste.box[3] <= 384


def test_whole_picture_crops_need_no_paste_back():
    image = Image.open(ASTRONAUT).convert("RGB")
    assert not wanted(prepare_portrait(image, resolution=64, crop_to_face=False))
