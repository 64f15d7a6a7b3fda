"""A corpus of bad and odd inputs, each answered through both doors: the CLI and the app's API.

Every input is made here, in a temporary folder (no binary files in the repository). Each case says what a person
must see: a refusal in one short message that names the problem and what to do, or success where the input is
odd but valid (with the warning it deserves). The CLI runs in this process (``main([...])``, as ``python -m
memo_model`` does; library warnings are recorded as they would be printed), one case in a real subprocess; the app
runs as ``python app.py`` does (``tests/app/conftest.py``) and is driven through ``gradio_client``. Nothing a
person sees may hold a traceback, a site-packages path, an exception class or a library's message.

Valid inputs are generated with the tiny random model: 1 step, 1 guidance pass, about half a second of audio. Odd
images and odd audio files are generated in pairs, so one video checks two inputs.
"""

import contextlib
import io
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import shown
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageCms

from memo_app.emotion_panel import TABLE_HEADERS
from memo_model.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
FACE = ROOT / "tests" / "fixtures" / "astronaut_256.jpg"  # one frontal face the detector finds
RATE = 16_000
SECONDS = 0.5  # one clip of video: the shortest generation
ONE_PASS = {"reference_guidance": 1.0, "audio_guidance": 1.0, "emotion_strength": 1.0}  # guidance off: 1 pass
CLI_FAST = ["--steps", "1", "--ref-cfg", "1", "--audio-cfg", "1", "--emotion-cfg", "1", "--emotion", "happy"]
CLI_FAST += ["--precision", "float32"]
MAX_MESSAGE = 1500  # characters: one short message, even for a 10 MB value
INTERNALS = re.compile(
    r"Traceback|site-packages|File \"|\b[A-Z]\w*(Error|Exception|Warning)\b\s*[:(]|Could not preprocess|"
    r"not supported between|required positional|has no attribute|invalid literal|could not convert|"
    r"DecompressionBomb|__\w+__|<class "
)


# --- what a person sees ----------------------------------------------------------------------------------------


def assert_for_people(text: str) -> None:
    """No traceback, internal exception text or library warning; short (the progress bar aside)."""
    text = re.sub(r"\r[^\r\n]*", "", text)  # tqdm redraws its bar after carriage returns
    assert not INTERNALS.search(text), text[:3000]
    assert len(text) <= MAX_MESSAGE, text[:3000]


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str  # stderr, with the library warnings that would have been printed


def cli(*args: str) -> CliRun:
    """``python -m memo_model ARGS`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        warnings.simplefilter("always")
        for hidden in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=hidden)  # Python hides these from users by default
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse refuses an option value
            code = exit_.code
    printed = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return CliRun(code, out.getvalue(), err.getvalue() + printed)


def cli_refuses(run: CliRun, message: str) -> None:
    assert run.code == 2, (run.code, run.err[-2000:])
    assert re.search(message, run.err), run.err[-2000:]
    assert_for_people(run.err)


def cli_generates(run: CliRun, notes: tuple[str, ...] = (), face: bool = False) -> None:
    assert run.code == 0, run.err[-2000:]
    video = Path(run.out.split("  (")[0])
    assert video.is_file() and "frames" in run.out, run.out
    for note in notes:
        assert re.search(note, run.err), run.err
    if face:
        assert "No face found" not in run.err, run.err
    assert_for_people(run.err)


def app_error(client: Client, *args, api_name: str, **kwargs) -> str:
    """The gr.Error message the app answers with (the call must fail)."""
    with pytest.raises(AppError) as error:
        client.predict(*args, api_name=api_name, **kwargs)
    message = str(error.value)
    assert_for_people(message)
    return message


def app_refuses(client: Client, message: str, *args, api_name: str, **kwargs) -> None:
    assert re.search(message, app_error(client, *args, api_name=api_name, **kwargs))


# --- the corpus -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One input: ``make(folder)`` writes it and returns its path; ``refused`` is the message (a regex) a person
    gets, None when the input is valid; ``notes`` are warnings a valid input must get; ``face`` says the portrait
    must reach the model with its face (not whitened, not lost)."""

    make: Callable[[Path], Path]
    refused: str | None = None
    notes: tuple[str, ...] = ()
    face: bool = False


def face_image() -> Image.Image:
    return Image.open(FACE).convert("RGB")


def saved(name: str, image: Image.Image | Callable[[], Image.Image], **options) -> Callable[[Path], Path]:
    """A maker that saves a picture (or what a function makes) as ``name``."""

    def make(folder: Path) -> Path:
        path = folder / name
        (image() if callable(image) else image).save(path, **options)
        return path

    return make


def written(name: str, content: bytes | Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content() if callable(content) else content)
        return path

    return make


def grey_levels(scale: float, offset: float = 0.0, dtype=np.float32) -> np.ndarray:
    """The face's grey levels mapped to ``offset + level / 255 * scale``."""
    levels = np.asarray(face_image().convert("L"), dtype=np.float64) / 255.0
    return (offset + levels * scale).astype(dtype)


def sixteen_bit_big_endian() -> Image.Image:
    """Mode I;16B built from its bytes (PIL's convert("I;16B") would clip the levels at 255)."""
    levels = grey_levels(65535, dtype=np.uint16)
    return Image.frombytes("I;16B", levels.shape[::-1], levels.astype(">u2").tobytes())


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, rows: int = 1) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` grey pixels but holds ``rows`` rows of them."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    pixels = png_chunk(b"IDAT", zlib.compress(b"\0" * rows * (width + 1)))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + png_chunk(b"IEND", b"")


def png_with_text_bomb() -> bytes:
    """A small valid PNG with a compressed text chunk that inflates to 20 MB."""
    buffer = io.BytesIO()
    face_image().save(buffer, format="PNG")
    data = buffer.getvalue()
    bomb = png_chunk(b"zTXt", b"note\0\0" + zlib.compress(b" " * 20_000_000, 9))  # PIL reads at most 1 MB
    return data[:33] + bomb + data[33:]  # after the 8-byte signature and the 25-byte IHDR


def face_with_transparent_border() -> Image.Image:
    canvas = Image.new("RGBA", (384, 384), (0, 0, 0, 0))
    canvas.paste(face_image().convert("RGBA"), (64, 64))
    return canvas


def face_palette_with_transparency() -> Image.Image:
    image = face_image().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    image.info["transparency"] = 0
    return image


def jpeg_rotated_by_exif(folder: Path) -> Path:
    """Stored on its side, with the EXIF orientation (6: rotate 90° clockwise to view) that turns it upright."""
    path = folder / "rotated.jpg"
    image = face_image().transpose(Image.Transpose.ROTATE_90)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif.tobytes())
    return path


def jpeg_with_broken_exif(folder: Path) -> Path:
    path = folder / "broken exif.jpg"
    face_image().save(path, exif=b"Exif\0\0MM\0*\0\0\0\x08\xff\xff garbage")
    return path


def face_with_icc(profile: bytes) -> Callable[[], Image.Image]:
    def make() -> Image.Image:
        image = face_image()
        image.info["icc_profile"] = profile
        return image

    return make


def animated_gif(folder: Path) -> Path:
    path = folder / "animated.gif"
    frames = [face_image(), face_image().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def truncated(make: Callable[[Path], Path], keep: float) -> Callable[[Path], Path]:
    """A maker whose file is cut to ``keep`` of its bytes."""

    def cut(folder: Path) -> Path:
        path = make(folder)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return path

    return cut


def big_real_picture(folder: Path) -> Path:
    """9800 × 9800 real pixels (96 MP: PIL warns above 89 MP), the face in the middle."""
    path = folder / "huge 9800.png"
    canvas = Image.new("L", (9800, 9800), 128)
    canvas.paste(face_image().convert("L").resize((2400, 2400)), (3700, 3700))
    canvas.save(path, compress_level=1)
    return path


SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

VALID_IMAGES = {
    "mode-1": Case(saved("bilevel.png", lambda: face_image().convert("1"))),
    "mode-L": Case(saved("grey.png", lambda: face_image().convert("L")), face=True),
    "mode-LA": Case(saved("grey alpha.png", lambda: face_image().convert("LA")), face=True),
    "mode-P-transparency": Case(saved("palette.png", face_palette_with_transparency)),
    "mode-PA": Case(saved("palette alpha.tiff", lambda: face_image().convert("PA"))),
    "mode-RGBA-transparent": Case(saved("transparent.png", face_with_transparent_border), face=True),
    "mode-CMYK-jpeg": Case(saved("print.jpg", lambda: face_image().convert("CMYK")), face=True),
    "mode-YCbCr-jpeg": Case(saved("video.jpg", lambda: face_image().convert("YCbCr")), face=True),
    "mode-LAB-tiff": Case(saved("lab.tiff", lambda: face_image().convert("LAB")), face=True),
    "mode-I-32bit": Case(saved("int32.tiff", lambda: Image.fromarray(grey_levels(65535, dtype=np.int32))), face=True),
    "mode-I;16-png": Case(
        saved("sixteen bit.png", lambda: Image.fromarray(grey_levels(65535, dtype=np.uint16))), face=True
    ),
    "mode-I;16B-tiff": Case(saved("big endian.tiff", sixteen_bit_big_endian), face=True),
    "mode-F-0-to-1": Case(saved("float.tiff", lambda: Image.fromarray(grey_levels(1.0))), face=True),
    "mode-F-hdr": Case(saved("hdr.tiff", lambda: Image.fromarray(grey_levels(6000.0, offset=-1000.0))), face=True),
    "icc-srgb": Case(saved("icc.png", face_with_icc(SRGB_PROFILE)), face=True),
    "icc-broken": Case(saved("bad icc.png", face_with_icc(b"not a profile" * 20)), face=True),
    "exif-rotated": Case(jpeg_rotated_by_exif, face=True),
    "exif-broken": Case(jpeg_with_broken_exif, face=True),
    "animated-gif": Case(animated_gif),
    "webp": Case(saved("photo.webp", face_image), face=True),
    "bmp": Case(saved("photo.bmp", face_image), face=True),
    "panorama-20000x64": Case(saved("panorama.png", Image.new("L", (20000, 64), 90)), notes=("reduced to 4096×13",)),
    # PIL fills the rows missing from a PNG's pixel data with black and reports nothing; "No face found" tells
    "short-pixel-data": Case(written("short.png", png_claiming(300, 300, rows=10)), notes=("No face found",)),
}

REFUSED_IMAGES = {
    "bomb-60000x60000": Case(written("bomb.png", png_claiming(60000, 60000)), "claims a size of more than .* MP"),
    "header-12000x9000": Case(written("lying.png", png_claiming(12000, 9000)), "more than the 100 MP accepted"),
    "1x1": Case(saved("dot.png", Image.new("RGB", (1, 1))), "only 1×1 pixels"),
    "panorama-20000x20": Case(saved("strip.png", Image.new("L", (20000, 20))), "only 20000×20 pixels"),
    "truncated-png": Case(truncated(saved("cut.png", face_image), 0.5), "damaged"),
    "truncated-jpeg": Case(truncated(saved("cut.jpg", face_image), 0.3), "damaged"),
    "text-as-png": Case(written("notes.png", b"this is not an image"), "not an image"),
    "empty-png": Case(written("empty.png", b""), r"empty \(0 bytes\)"),
    "svg": Case(written("vector.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>'), "not an image"),
    "pdf-as-jpg": Case(written("doc.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"), "not an image"),
    "random-bytes": Case(written("noise.webp", lambda: np.random.default_rng(0).bytes(5000)), "not an image"),
    "png-text-bomb": Case(written("text bomb.png", png_with_text_bomb), "not an image"),
}


def speech(seconds: float = SECONDS, rate: int = RATE, channels: int = 1) -> np.ndarray:
    """(n, channels) float32: a syllable-modulated voiced tone."""
    t = np.arange(int(round(seconds * rate))) / rate
    voice = 0.3 * np.sin(2 * np.pi * 160 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    return np.stack([voice * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def sound(name: str, samples: np.ndarray | Callable[[], np.ndarray], rate: int = RATE, **options):
    def make(folder: Path) -> Path:
        path = folder / name
        sf.write(path, samples() if callable(samples) else samples, rate, **options)
        return path

    return make


def wav_with_data_size(name: str, size: int | None, keep_seconds: float = SECONDS, extra_chunk: bool = False):
    """A 16-bit WAV of ``keep_seconds``, its data chunk's size field set to ``size`` (None: left true)."""

    def make(folder: Path) -> Path:
        path = folder / name
        sf.write(path, speech(keep_seconds), RATE, subtype="PCM_16")
        data = bytearray(path.read_bytes())
        at = data.index(b"data")
        if size is not None:
            data[at + 4 : at + 8] = struct.pack("<I", size)
        if extra_chunk:  # a LIST chunk between fmt and data, as many editors write
            data[at:at] = wav_list_chunk()
        path.write_bytes(bytes(data))
        return path

    return make


def wav_list_chunk() -> bytes:
    payload = b"INFOISFT\x05\0\0\0test\0\0"
    return b"LIST" + struct.pack("<I", len(payload)) + payload


PROMISED_2S = 2 * RATE * 2  # bytes of 2 s of 16-bit mono

VALID_AUDIO = {
    "8kHz": Case(sound("phone.wav", speech(rate=8000), 8000)),
    "192kHz": Case(sound("studio.wav", speech(rate=192000), 192000)),
    "stereo-44.1kHz": Case(sound("stereo.wav", speech(rate=44100, channels=2), 44100)),
    "6-channel": Case(sound("surround.wav", speech(channels=6))),
    "8-bit-unsigned": Case(sound("eight bit.wav", speech(), subtype="PCM_U8")),
    "float-beyond-1": Case(sound("loud.wav", lambda: speech() * 5, subtype="FLOAT")),
    "flac": Case(sound("speech.flac", speech())),
    "ogg-vorbis": Case(sound("speech.ogg", speech(), format="OGG", subtype="VORBIS")),
    "truncated-wav": Case(
        wav_with_data_size("cut.wav", PROMISED_2S), notes=(r"is truncated: 0\.5 s of the promised 2\.0 s were read",)
    ),
    "truncated-flac": Case(truncated(sound("cut.flac", speech(2.0)), 0.3), notes=("is truncated",)),
    "streamed-wav-unknown-size": Case(wav_with_data_size("stream.wav", 0xFFFFFFFF)),
    "unfinished-wav-size-0": Case(wav_with_data_size("unfinished.wav", 0)),
    "wav-with-list-chunk": Case(wav_with_data_size("tagged.wav", None, extra_chunk=True)),
}

REFUSED_AUDIO = {
    "silence": Case(sound("silence.wav", np.zeros((RATE, 1), np.float32)), "is silent"),
    "20-ms": Case(sound("blip.wav", speech(0.02)), r"only 20 ms long .* at least 0\.1 s"),
    "one-sample": Case(sound("one.wav", np.full((1, 1), 0.5, np.float32)), r"is less than 1 ms long"),
    "zero-samples": Case(sound("nothing.wav", np.zeros((0, 1), np.float32)), "contains no sound"),
    "header-only": Case(wav_with_data_size("promise.wav", PROMISED_2S, keep_seconds=0.0), "contains no sound"),
    "nan-samples": Case(sound("nan.wav", lambda: speech() * np.nan, subtype="FLOAT"), "invalid samples"),
    "text-as-wav": Case(written("notes.wav", b"this is not audio"), "could not be read as audio"),
    "empty-wav": Case(written("empty.wav", b""), r"empty \(0 bytes\)"),
    "picture-as-wav": Case(saved("picture.wav", face_image, format="PNG"), "no audio track"),
    "random-bytes-mp3": Case(written("noise.mp3", lambda: np.random.default_rng(1).bytes(4000)), "could not be read"),
}

NAMES = {  # valid files with odd names: (portrait name, speech name)
    "spaces": ("my portrait.png", "my speech.wav"),
    "unicode": ("portrait ñandú 😀.png", "голос ☃.wav"),
    "dots": ("a..b.png", "..c.wav"),
    "leading-dash": ("-portrait.png", "-speech.wav"),
}


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's small tensors run 3-5x faster on one thread when the machine is busy (as in CI)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client(app) -> Client:
    url, _ = app
    return Client(url, verbose=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def portrait(folder) -> Path:
    return saved("portrait.png", face_image)(folder)


@pytest.fixture(scope="module")
def voice(folder) -> Path:
    return sound("voice.wav", speech())(folder)


def made(cases: dict[str, Case], name: str, folder: Path) -> Path:
    sub = folder / re.sub(r"\W", "_", name)
    sub.mkdir(exist_ok=True)
    return cases[name].make(sub)


def generate_args(image: Path | str, audio: Path | str, weights: Path, output: Path | str) -> list[str]:
    return ["generate", "--image", str(image), "--audio", str(audio), "--output", str(output),
            "--weights", str(weights), *CLI_FAST]  # fmt: skip


def preview_values(run_args, image: Path, audio: Path, **changes) -> dict:
    """The preview endpoint's values by name: these files, 1 step, 1 guidance pass."""
    return {**run_args(**{**ONE_PASS, **changes}), "image": handle_file(str(image)), "audio": handle_file(str(audio))}


# --- images -----------------------------------------------------------------------------------------------------

PAIRS = list(zip(VALID_IMAGES, (list(VALID_AUDIO) * 2)[: len(VALID_IMAGES)], strict=True))


@pytest.mark.parametrize(("image_case", "audio_case"), PAIRS, ids=[f"{i}+{a}" for i, a in PAIRS])
def test_odd_but_valid_image_and_audio_make_a_video_in_the_cli(image_case, audio_case, folder, weights):
    image, audio = made(VALID_IMAGES, image_case, folder), made(VALID_AUDIO, audio_case, folder)
    run = cli(*generate_args(image, audio, weights, folder / f"{image_case}.mp4"))
    cli_generates(run, VALID_IMAGES[image_case].notes + VALID_AUDIO[audio_case].notes, VALID_IMAGES[image_case].face)


@pytest.mark.parametrize("name", list(VALID_IMAGES))
def test_odd_but_valid_image_is_shown_with_its_face_in_the_app(name, folder, client):
    image = made(VALID_IMAGES, name, folder)
    _, crop, notes = client.predict(handle_file(str(image)), 1.8, api_name="/inspect_portrait")
    assert crop is not None and Path(crop).is_file(), notes
    assert_for_people(notes)
    assert "could not be decoded" not in notes and "not an image" not in notes
    for note in VALID_IMAGES[name].notes:
        assert re.search(note, notes), notes
    if VALID_IMAGES[name].face:
        assert "One face found" in notes, notes


@pytest.mark.parametrize("name", list(REFUSED_IMAGES))
def test_bad_image_is_refused_with_one_message(name, folder, voice, weights, client, run_args):
    image, message = made(REFUSED_IMAGES, name, folder), REFUSED_IMAGES[name].refused
    cli_refuses(cli(*generate_args(image, voice, weights, folder / f"{name}.mp4")), message)
    try:
        _, _, notes = client.predict(handle_file(str(image)), 1.8, api_name="/inspect_portrait")
        assert re.search(message, notes), notes  # decoding problems are noted under the picture
    except AppError as error:  # the upload itself is refused (not an image, too large)
        assert re.search(message, str(error)), str(error)
        assert_for_people(str(error))
    app_refuses(client, message, **preview_values(run_args, image, voice), api_name="/preview")


def test_sixteen_bit_portrait_and_truncated_wav_through_an_app_preview(folder, client, run_args):
    """The two reported app failures in one run: the 16-bit picture keeps its face, the short file is named."""
    image = made(VALID_IMAGES, "mode-I;16-png", folder)
    audio = made(VALID_AUDIO, "truncated-wav", folder)
    run = shown(client.predict(**preview_values(run_args, image, audio), api_name="/preview"))
    status = run["status"]
    assert "finished" in status and "No face found" not in status, status
    assert re.search(r"is truncated: 0\.5 s of the promised 2\.0 s were read", status), status
    assert run["settings"] is not None
    assert "is truncated" in client.predict(handle_file(str(audio)), api_name="/inspect_audio")


def test_a_real_96_megapixel_picture_is_reduced_with_our_warning_only(folder, weights, voice, client):
    """9800 × 9800 pixels through a real `python -m memo_model` (non-UTF-8 names too) and the app: our one-line
    warning, never PIL's DecompressionBombWarning with its site-packages path."""
    image = big_real_picture(folder)
    odd = os.fsencode(folder) + b"/portr\xe4it \xff.png"  # Latin-1 bytes in a name: valid on Linux, not UTF-8
    shutil.copy(image, odd)
    command = [os.fsencode(sys.executable), b"-m", b"memo_model"]
    command += [os.fsencode(arg) for arg in generate_args(os.fsdecode(odd), voice, weights, folder / "huge.mp4")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env["PYTHONIOENCODING"] = "utf-8"  # strict UTF-8 output, as in most terminals
    result = subprocess.run(command, capture_output=True, cwd=folder, env=env, check=False)
    out, err = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    assert result.returncode == 0, err[-3000:]
    assert "huge.mp4" in out and "reduced to 4096×4096" in err, (out, err[-3000:])
    assert_for_people(err)
    _, _, notes = client.predict(handle_file(str(image)), 1.8, api_name="/inspect_portrait")
    assert "reduced to 4096×4096" in notes and "at most 4096 px" in notes, notes
    assert_for_people(notes)


# --- audio ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALID_AUDIO))
def test_odd_but_valid_audio_is_measured_in_the_app(name, folder, client):
    audio = made(VALID_AUDIO, name, folder)
    info = client.predict(handle_file(str(audio)), api_name="/inspect_audio")
    for note in VALID_AUDIO[name].notes:  # a truncated file: what was read, and the warning
        assert re.search(note, info), info
    if not VALID_AUDIO[name].notes:
        assert "Duration **0.5 s**" in info and "Warning" not in info, info
    assert_for_people(info)


@pytest.mark.parametrize("name", list(REFUSED_AUDIO))
def test_bad_audio_is_refused_with_one_message(name, folder, portrait, weights, client, run_args):
    audio, message = made(REFUSED_AUDIO, name, folder), REFUSED_AUDIO[name].refused
    cli_refuses(cli(*generate_args(portrait, audio, weights, folder / f"{name}.mp4")), message)
    info = client.predict(handle_file(str(audio)), api_name="/inspect_audio")
    assert info.startswith("Warning:") and re.search(message, info), info
    assert_for_people(info)
    app_refuses(client, message, **preview_values(run_args, portrait, audio), api_name="/preview")


# --- file names and output paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(NAMES))
def test_odd_file_names_work_through_both_doors(name, folder, portrait, voice, weights, client, monkeypatch):
    sub = folder / f"names-{name}"
    (sub / "inner").mkdir(parents=True)
    image_name, audio_name = NAMES[name]
    shutil.copy(portrait, sub / image_name)
    shutil.copy(voice, sub / audio_name)
    monkeypatch.chdir(sub)
    image, audio = f"inner/../{image_name}", f"./inner/../{audio_name}"  # relative, through ".."
    run = cli("generate", f"--image={image}", f"--audio={audio}", f"--output=-{name}.mp4", "--weights", str(weights),
              *CLI_FAST)  # fmt: skip
    cli_generates(run, face=True)
    assert (sub / f"-{name}.mp4").is_file()
    _, _, notes = client.predict(handle_file(str(sub / image_name)), 1.8, api_name="/inspect_portrait")
    assert "One face found" in notes, notes
    assert "Duration **0.5 s**" in client.predict(handle_file(str(sub / audio_name)), api_name="/inspect_audio")


OUTPUTS = {  # --output values that cannot be written: (the path, the message)
    "under-a-file": ("notes.txt/out.mp4", r"notes\.txt is a file, not a folder — choose another output path"),
    "deep-under-a-file": ("notes.txt/deeper/out.mp4", r"notes\.txt is a file, not a folder"),
    "a-folder": (".", "is a folder — give a file name"),
    "name-too-long": ("x" * 300 + ".mp4", "could not use .*File name too long"),
}


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_output_path_that_cannot_be_written_is_explained_by_the_cli(name, folder, portrait, voice, weights,
                                                                    monkeypatch):  # fmt: skip
    """The app chooses its own output paths; only the CLI takes one."""
    output, message = OUTPUTS[name]
    monkeypatch.chdir(folder)
    (folder / "notes.txt").write_text("a file, not a folder")
    cli_refuses(cli(*generate_args(portrait, voice, weights, output)), message)


# --- settings files: the app's "Load settings" and the CLI's generate-batch jobs --------------------------------

DROP = object()  # a setting left out of the file
SETTINGS = {  # name: (JSON text, or changes to a valid request; the message, None when the file is valid)
    "steps-as-text": ({"steps": "20"}, r'Denoising steps \("steps"\) must be a whole number between 1 and 100'),
    "seed-nested-junk": ({"seed": {"a": [1, {"b": [2, 3, 4, 5, 6]}]}}, r'Seed \("seed"\) must be a whole number'),
    "fps-true": ({"fps": True}, r'Frames per second \("fps"\) must be a whole number'),
    "guidance-nan": ({"reference_guidance": math.nan}, "Reference guidance must be between 0 and 10; got nan"),
    "guidance-infinity": ({"audio_guidance": -math.inf}, "Audio guidance must be between 0 and 10; got -inf"),
    "huge-numbers": ({"steps": 1e308, "seed": 10**30}, r"Denoising steps must be between 1 and 100; got 1e\+308"),
    "int-of-5000-digits": ('{"seed": ' + "9" * 5000 + "}", "number too long"),
    "10-MB-string": ({"emotion": "x" * 10_000_000}, r"Unknown emotion 'xxx"),
    "10-MB-path": ({"image": "x" * 10_000_000 + ".png"}, None),  # types fit; the file is checked when it runs
    "segments-not-triples": ({"emotion_segments": [[0, 1]]}, r'"emotion_segments" must be a list of \[number'),
    "segments-as-text": ({"emotion_segments": "happy"}, r'"emotion_segments" must be a list'),
    "segment-backwards": ({"emotion_segments": [[3, 1, "sad"]]}, "0 <= start < end; got 3-1 s"),
    "missing-audio": ({"audio": DROP}, r"Missing setting\(s\) audio; every request needs"),
    "null-image": ({"image": None}, r'"image" must be a path'),
    "unknown-key": ({"stepz": 3}, r"Unknown setting\(s\) stepz"),
    "not-an-object": ("[1, 2, 3]", "not a JSON object|must hold a JSON object"),
    "deep-nesting": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "not-json": ("{image: x}", "not JSON|could not be read as JSON"),
    "not-utf8": (b'{"image": "\xff\xfe"}', "not UTF-8"),
}


def settings_text(name: str, portrait: Path, voice: Path) -> bytes:
    """The settings file of case ``name``: a valid request with the case's changes, or the case's raw text."""
    data, _ = SETTINGS[name]
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    request = {"image": str(portrait), "audio": str(voice), "steps": 1, **data}
    return json.dumps({key: value for key, value in request.items() if value is not DROP}).encode()


@pytest.mark.parametrize("name", list(SETTINGS))
def test_hostile_settings_file_is_explained_in_plain_words(name, folder, portrait, voice, weights, client):
    text, message = settings_text(name, portrait, voice), SETTINGS[name][1]
    jobs = folder / f"{name}.jsonl"
    jobs.write_bytes(text.replace(b"\n", b" "))
    run = cli("generate-batch", str(jobs), "--output", str(folder / f"batch-{name}"), "--weights", str(weights))
    settings = folder / f"{name}.json"
    settings.write_bytes(text)
    if message is None:  # read fine; the job fails alone, saying (on stdout, in the summary) the file is missing
        assert run.code == 1 and "does not exist" in run.out, run.out[-2000:]
        assert_for_people(run.out + run.err)
        *_, status = client.predict(handle_file(str(settings)), api_name="/load_settings")
        assert "Settings loaded" in status and "upload the same portrait" in status, status
        return
    cli_refuses(run, message)
    app_refuses(client, message, handle_file(str(settings)), api_name="/load_settings")


SEGMENTS = {  # (start, end, label) of one segment: the CLI's --emotion-segments entry, a row of the app's table
    "start-as-text": (("abc", 1, "sad"), "start must be a number"),
    "start-nan": ((math.nan, 1, "sad"), "must be a (finite )?number"),
    "1-MB-label": ((0, 1, "z" * 1_000_000), "Unknown emotion"),
}


@pytest.mark.parametrize("name", list(SEGMENTS))
def test_hostile_emotion_segments_are_explained(name, folder, portrait, voice, weights, client, run_args):
    """The CLI reads segments from --emotion-segments FILE.json; the app from its segment table."""
    (start, end, label), message = SEGMENTS[name]
    path = folder / "segments.json"
    path.write_text(json.dumps({"segments": [{"start": start, "end": end, "label": label}]}))
    args = generate_args(portrait, voice, weights, folder / "segments.mp4")
    del args[args.index("--emotion") : args.index("--emotion") + 2]  # it excludes --emotion-segments
    cli_refuses(cli(*args, "--emotion-segments", str(path)), message)
    row = [str(start) if isinstance(start, float) else start, end, "", None, label]  # JSON has no NaN: as text
    table = {"headers": TABLE_HEADERS, "data": [row]}
    app_refuses(client, message, **preview_values(run_args, portrait, voice, table=table), api_name="/preview")


# --- numbers typed or sent where the API expects them -----------------------------------------------------------


@dataclass(frozen=True)
class Number:
    """A value where a number belongs: the app widget (its ``RunForm`` field) and the value sent,
    the CLI flag and its text (None where a door has no such input), and the message both answer with."""

    field: str | None
    value: object
    flag: tuple[str, str] | None
    message: str


GUIDANCE_RANGE = "must be a number between 0 and 10"
NUMBERS = {
    "guidance-nan-text": Number(
        "reference_guidance", "nan", ("--ref-cfg", "nan"), f"Reference guidance {GUIDANCE_RANGE}; got 'nan'"
    ),
    "guidance-abc": Number(
        "audio_guidance", "abc", ("--audio-cfg", "abc"), f"Audio guidance {GUIDANCE_RANGE}; got 'abc'"
    ),
    "guidance-infinity": Number(
        "emotion_strength", "inf", ("--emotion-cfg", "inf"), f"Emotion strength {GUIDANCE_RANGE}"
    ),
    "guidance-out-of-range": Number(
        "reference_guidance", 11, ("--ref-cfg", "11"), "Reference guidance must be between 0 and 10; got 11"
    ),
    "steps-1e400": Number(
        "steps", "1e400", ("--steps", "1e400"), "Denoising steps must be a number between 1 and 100"
    ),
    "steps-list": Number("steps", [1, 2], None, r"Denoising steps must be a number between 1 and 100; got \[1, 2\]"),
    "seed-negative": Number("seed", -5, ("--seed", "-5"), "Seed must be between 0 and 2147483647; got -5"),
    "seed-text": Number("seed", "12abc", ("--seed", "12abc"), "Seed must be a number between 0 and 2147483647"),
    "fps-true": Number("fps", True, ("--fps", "true"), "Frames per second must be a number between 10 and 60"),
    "past-frames-fraction": Number(
        "past_frames", 2.5, ("--past-frames", "2.5"), "Past frames must be (a whole number|a number between 1 and 48)"
    ),
    "memory-decay-empty": Number(
        "memory_decay", "", ("--memory-decay", ""), "Memory decay must be a number between 0.5 and 1"
    ),
    "crop-scale-dict": Number("crop_scale", {"a": 1}, None, r"Crop scale must be a number between 1 and 3; got \{'a'"),
    "random-seed-no": Number("random_seed", "no", None, "Random seed must be true or false; got 'no'"),
    "model-decay-number": Number("model_decay", 3, None, "Use the model's memory decay must be true or false; got 3"),
    "preview-seconds-nan": Number(
        None, None, ("--preview-seconds", "nan"), r"Preview length \(s\) must be a number between 0.5 and 30"
    ),
}


@pytest.mark.parametrize("name", list(NUMBERS))
def test_text_or_junk_where_a_number_belongs_is_named_with_its_range(name, folder, portrait, voice, weights, client,
                                                                      run_args):  # fmt: skip
    case = NUMBERS[name]
    if case.flag is not None:
        flag, text = case.flag
        args = generate_args(portrait, voice, weights, folder / "numbers.mp4")
        if flag in args:
            del args[args.index(flag) : args.index(flag) + 2]
        cli_refuses(cli(*args, f"{flag}={text}"), case.message)
    if case.field is not None:
        values = preview_values(run_args, portrait, voice, **{case.field: case.value})
        app_refuses(client, case.message, **values, api_name="/preview")


def test_text_where_a_segment_number_belongs(client):
    table = {"headers": TABLE_HEADERS, "data": [[0, 1, "", None, ""]]}
    app_refuses(client, "There is no segment 'abc'; choose one of 1-1.", table, "abc", "sad", api_name="/set_segment")


def test_the_corpus_is_large_enough():
    tables = [VALID_IMAGES, REFUSED_IMAGES, VALID_AUDIO, REFUSED_AUDIO, NAMES, OUTPUTS, SETTINGS, SEGMENTS, NUMBERS]
    assert sum(map(len, tables)) + 2 >= 60  # + the 96 MP picture with non-UTF-8 names, the segment number
