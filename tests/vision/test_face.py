"""vision.face: real-photo face crops, faces of every skin tone, small and turned, every image mode and orientation,
and clear errors and warnings."""

import importlib.util
import io
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memo_model.data.synthetic import FaceRenderer, FaceState, render_frame, sample_identity
from memo_model.data.synthetic.identity import SKIN_TONES
from memo_model.data.synthetic.renderer import render_background
from memo_model.errors import ImageInputError, InputError, SetupError
from memo_model.vision import face
from memo_model.vision.face import (
    InsightFaceEmbedder,
    centre_square,
    detect_faces,
    face_crop_box,
    load_image,
    prepare_portrait,
)

# skimage.data.astronaut() (NASA, public domain), resized to 256×256: a real portrait for an offline detector.
ASTRONAUT = Path(__file__).parents[1] / "fixtures" / "astronaut_256.jpg"
RESOLUTION = 128  # small model size keeps the tests fast; the crop logic does not depend on it
EXIF_ORIENTATION = 0x0112
# One held-out identity per skin-tone band (between neighbouring SKIN_TONES anchors), lightest to darkest; the last
# is as dark as the darkest anchor. Seeds from 6 000 000: never trained on.
BAND_SEEDS = (6_000_001, 6_000_018, 6_000_007, 6_000_009, 6_000_002, 6_000_216)
PORTRAIT_SIZE = 256


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB")


def contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def test_face_found_and_whole_head_cropped(astronaut):
    portrait = prepare_portrait(ASTRONAUT, resolution=RESOLUTION)

    assert portrait.warnings == []
    assert portrait.image.size == (RESOLUTION, RESOLUTION) and portrait.image.mode == "RGB"
    assert portrait.original_size == (256, 256)
    left, top, right, bottom = portrait.face_box
    assert 70 < (left + right) / 2 < 150 and 40 < (top + bottom) / 2 < 100  # her face, not the flag or the suit
    assert contains(portrait.crop_box, portrait.face_box)
    crop_side = portrait.crop_box[2] - portrait.crop_box[0]
    assert crop_side == portrait.crop_box[3] - portrait.crop_box[1]
    assert crop_side >= 1.7 * (right - left)  # room for hair and chin around the brow-to-chin face box


def on_face(box, identity, size: int, offset=(0, 0)) -> bool:
    """The box's centre lies on the head outline's box of a frontal, untilted identity drawn at ``size`` px."""
    centre_x = (box[0] + box[2]) / 2 - offset[0]
    centre_y = (box[1] + box[3]) / 2 - offset[1]
    return abs(centre_x / size - 0.5) < identity.face_width and abs(centre_y / size - 0.5) < identity.face_height


def test_the_band_seeds_span_the_skin_tones():
    skins = [np.asarray(sample_identity(seed).skin) for seed in BAND_SEEDS]
    assert all(a.mean() > b.mean() for a, b in zip(skins[:-1], skins[1:], strict=True))  # lightest to darkest
    assert np.linalg.norm(skins[-1] - SKIN_TONES[-1]) < 8


@pytest.mark.parametrize("seed", BAND_SEEDS, ids=[f"band{band}" for band in range(1, len(BAND_SEEDS) + 1)])
def test_faces_of_every_skin_tone_are_found(seed):
    identity = sample_identity(seed)
    boxes = detect_faces(Image.fromarray(FaceRenderer(identity, PORTRAIT_SIZE)(FaceState())))
    assert len(boxes) == 1 and on_face(boxes[0], identity, PORTRAIT_SIZE), boxes


def test_a_synthetic_portrait_is_cropped_as_the_renderer_frames_it():
    """MEMO-Tiny was trained on whole renderer frames: a crop of the default scale keeps (nearly) the whole frame."""
    portrait = prepare_portrait(FaceRenderer(sample_identity(BAND_SEEDS[-1]), PORTRAIT_SIZE)(FaceState()))
    assert portrait.warnings == []
    assert portrait.crop_box[2] - portrait.crop_box[0] >= 0.85 * PORTRAIT_SIZE


def test_a_turned_and_tilted_dark_face_is_found():
    identity = sample_identity(BAND_SEEDS[-1])
    turned = FaceRenderer(identity, PORTRAIT_SIZE)(FaceState(yaw=1.0, roll=20.0))
    boxes = detect_faces(Image.fromarray(turned))
    assert len(boxes) == 1
    centre_x, centre_y = (boxes[0][0] + boxes[0][2]) / 2, (boxes[0][1] + boxes[0][3]) / 2
    assert (
        abs(centre_x - PORTRAIT_SIZE / 2) < 0.3 * PORTRAIT_SIZE
        and abs(centre_y - PORTRAIT_SIZE / 2) < 0.3 * PORTRAIT_SIZE
    )


def test_a_small_dark_face_is_found():
    """A face 40 px wide in a 256 px picture (the Haar detector missed faces under ~30 px and most dark ones)."""
    identity = sample_identity(BAND_SEEDS[-1])
    side, frame_side, offset = 256, round(40 / (2 * identity.face_width)), (150, 30)
    picture = render_background(identity, side)
    below = np.ascontiguousarray(picture[offset[1] : offset[1] + frame_side, offset[0] : offset[0] + frame_side])
    picture[offset[1] : offset[1] + frame_side, offset[0] : offset[0] + frame_side] = render_frame(
        identity, FaceState(), frame_side, below
    )
    boxes = detect_faces(Image.fromarray(picture))
    assert len(boxes) == 1 and on_face(boxes[0], identity, frame_side, offset), boxes


@pytest.mark.parametrize("pattern", ["noise", "blurred_noise", "checker", "stripes"])
def test_no_box_on_a_face_free_picture(pattern):
    rng = np.random.default_rng(0)
    if pattern in ("noise", "blurred_noise"):
        pixels = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if pattern == "blurred_noise":
            image = image.resize((32, 32)).resize((256, 256), Image.Resampling.BICUBIC)
    else:  # the renderer's background textures, without the person
        seed = next(s for s in range(6_000_000, 6_001_000) if sample_identity(s).background_pattern == pattern)
        image = Image.fromarray(render_background(sample_identity(seed), 256))
    assert detect_faces(image) == []


def test_exif_rotated_photo_gives_the_same_crop(tmp_path, astronaut):
    upright = tmp_path / "upright.png"
    astronaut.save(upright)
    rotated = tmp_path / "rotated.png"  # stored sideways, EXIF says "rotate 90° clockwise to display" (6)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    astronaut.transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif)

    expected, got = prepare_portrait(upright, RESOLUTION), prepare_portrait(rotated, RESOLUTION)
    assert got.original_size == expected.original_size
    assert got.face_box == expected.face_box and got.crop_box == expected.crop_box
    np.testing.assert_array_equal(np.asarray(got.image), np.asarray(expected.image))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "CMYK", "P", "I;16"])
def test_every_image_mode_becomes_rgb_and_the_face_is_found(astronaut, mode):
    if mode == "I;16":
        image = Image.fromarray(np.asarray(astronaut.convert("L"), dtype=np.uint16) * 257)
    elif mode == "P":
        image = astronaut.quantize(colors=64)
    else:
        image = astronaut.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF")  # TIFF keeps every one of these modes
    portrait = prepare_portrait(buffer.getvalue(), resolution=RESOLUTION)
    assert portrait.image.mode == "RGB" and portrait.face_box is not None, portrait.warnings


def test_in_memory_images_and_arrays(astronaut):
    for source in (astronaut.convert("YCbCr"), np.asarray(astronaut), np.asarray(astronaut.convert("L"))):
        assert prepare_portrait(source, resolution=RESOLUTION).face_box is not None


def test_transparent_pixels_sit_on_the_background(astronaut):
    rgba = astronaut.convert("RGBA")
    alpha = np.full((256, 256), 255, np.uint8)
    alpha[:, :10] = 0
    rgba.putalpha(Image.fromarray(alpha))
    loaded = np.asarray(load_image(rgba))
    assert (loaded[:, :10] == 255).all()
    assert (np.asarray(load_image(rgba, background=(0, 128, 0)))[:, :10] == (0, 128, 0)).all()


def test_blank_image_falls_back_to_a_centre_crop_with_a_warning():
    portrait = prepare_portrait(np.full((300, 200, 3), 180, np.uint8), resolution=RESOLUTION)
    assert portrait.face_box is None and portrait.crop_box == (0, 50, 200, 250) == centre_square((200, 300))
    assert any("No face found" in w for w in portrait.warnings)


def test_several_faces_use_the_largest(astronaut):
    head = astronaut.crop((40, 0, 180, 140))
    canvas = Image.new("RGB", (400, 400), "white")
    canvas.paste(head.resize((200, 200)), (0, 0))
    canvas.paste(head.resize((260, 260)), (140, 140))
    portrait = prepare_portrait(canvas, resolution=RESOLUTION)
    assert portrait.face_box[0] > 140  # the big copy at the bottom right
    assert any("Found 2 faces" in w for w in portrait.warnings)


def test_tiny_face_is_warned_about(astronaut):
    canvas = Image.new("RGB", (320, 320), (120, 120, 120))
    canvas.paste(astronaut.resize((200, 200)), (110, 110))  # a face of ~40 px, an eighth of the picture
    portrait = prepare_portrait(canvas, resolution=512)
    assert portrait.face_box is not None
    assert any("The face is small" in w for w in portrait.warnings)


def test_official_whole_image_resize_is_available(astronaut):
    portrait = prepare_portrait(astronaut.resize((256, 180)), resolution=RESOLUTION, crop_to_face=False)
    assert portrait.crop_box == (0, 0, 256, 180) and portrait.image.size == (RESOLUTION, RESOLUTION)


def test_huge_images_are_downscaled_and_absurd_ones_refused():
    portrait = prepare_portrait(Image.new("RGB", (5000, 1000), "gray"), resolution=RESOLUTION)
    assert max(portrait.full_image.size) == 4096 and portrait.original_size == (5000, 1000)
    assert any("reduced to 4096×819" in w for w in portrait.warnings)
    with pytest.raises(ImageInputError, match="resize it to at most 4096 px"):
        load_image(Image.new("1", (12_000, 9_000)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"GIF89a but not really", "not an image"),
        (b"%PDF-1.7 nope", "not an image"),
        (np.random.default_rng(0).bytes(5000), "not an image"),
    ],
    ids=["empty", "fake-gif", "pdf", "random"],
)
def test_non_images_raise_input_errors(tmp_path, content, message):
    path = tmp_path / "upload.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_image(path)


def test_damaged_and_tiny_images(astronaut, tmp_path):
    buffer = io.BytesIO()
    astronaut.save(buffer, format="PNG")
    with pytest.raises(ImageInputError, match="damaged"):
        load_image(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageInputError, match=r"only 40×50 pixels — use a photo at least 64×64"):
        load_image(astronaut.resize((40, 50)))
    with pytest.raises(ImageInputError, match="No image file"):
        load_image(tmp_path / "missing.png")


def test_face_crop_box_stays_inside_the_image():
    assert face_crop_box((0, 0, 50, 50), (400, 300), crop_scale=2.0) == (0, 0, 100, 100)
    assert face_crop_box((350, 250, 400, 300), (400, 300), crop_scale=2.0) == (300, 200, 400, 300)
    assert face_crop_box((0, 0, 200, 200), (400, 300), crop_scale=2.0) == (0, 0, 300, 300)  # shrunk to fit


def test_detection_time_does_not_grow_with_the_picture(astronaut):
    """Pictures are resized to at most 640 px for the detector (~1 s), never run at full size (~30 s at 2048 px)."""
    big = astronaut.resize((2048, 2048))
    detect_faces(big)
    start = time.perf_counter()
    assert len(detect_faces(big)) == 1
    assert time.perf_counter() - start < 10.0


@pytest.fixture
def fresh_detector():
    face._face_detector.cache_clear()
    yield
    face._face_detector.cache_clear()


def test_missing_detector_package_says_what_to_install(monkeypatch, fresh_detector):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib raises ImportError
    with pytest.raises(SetupError, match="pip install dlib-bin==") as missing:
        detect_faces(Image.new("RGB", (64, 64)))
    assert "face_recognition_models==" in str(missing.value)


def test_missing_detector_model_says_where_it_comes_from(monkeypatch, fresh_detector):
    monkeypatch.setattr(face, "DETECTOR_PACKAGE", "no_such_model_package")
    with pytest.raises(SetupError, match="mmod_human_face_detector.dat"):
        prepare_portrait(Image.new("RGB", (64, 64)))


def test_insightface_embedder_explains_what_is_missing(tmp_path):
    """No local model pack: one message saying where to put it, before insightface could try a download."""
    with pytest.raises(SetupError, match="misc/face_analysis") as missing:
        InsightFaceEmbedder(tmp_path)(Image.new("RGB", (64, 64)))
    assert "--face-analysis" in str(missing.value) and "no face detection" in str(missing.value)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "glintr100.onnx").write_bytes(b"")
    with pytest.raises(SetupError, match="no face detection") as detector:  # a recogniser alone is not a pack
        InsightFaceEmbedder(tmp_path)(Image.new("RGB", (64, 64)))
    assert "recognition" not in str(detector.value)
    (tmp_path / "models" / "scrfd_10g_bnkps.onnx").write_bytes(b"")
    if importlib.util.find_spec("insightface") is not None:
        pytest.skip("insightface is installed here")
    with pytest.raises(SetupError, match="insightface and onnxruntime"):
        InsightFaceEmbedder(tmp_path)(Image.new("RGB", (64, 64)))
