"""audio.io: every common format decodes to mono 16 kHz float32; bad files give messages a person can act on."""

import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from memo_model.audio.io import SAMPLE_RATE, audio_duration, ffmpeg_executable, load_audio
from memo_model.errors import AudioInputError, InputError

TONE_HZ = 440.0
SECONDS = 1.5
NATIVE_RATE = 44_100


def tone(seconds: float = SECONDS, rate: int = NATIVE_RATE, channels: int = 2) -> np.ndarray:
    """A 440 Hz tone with a slow loudness envelope, (n, channels) float32; the right channel is half as loud."""
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * TONE_HZ * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    return np.stack([mono * (1.0 if c == 0 else 0.5) for c in range(channels)], axis=1).astype(np.float32)


def dominant_hz(waveform: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(waveform))
    return float(np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()])


def encode(source, target, *codec_args: str) -> None:
    subprocess.run([ffmpeg_executable(), "-v", "error", "-y", "-i", str(source), *codec_args, str(target)], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    wav = folder / "speech.wav"
    sf.write(wav, tone(), NATIVE_RATE, subtype="PCM_16")
    files = {"wav": wav}
    sf.write(folder / "speech.flac", tone(), NATIVE_RATE)
    files["flac"] = folder / "speech.flac"
    for name, args in {
        "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
        "ogg": ["-c:a", "libvorbis"],
        "opus.ogg": ["-c:a", "libopus"],
        "m4a": ["-c:a", "aac", "-b:a", "96k"],
        "webm": ["-c:a", "libopus"],
    }.items():
        files[name] = folder / f"speech.{name}"
        encode(wav, files[name], *args)
    # Browser MediaRecorder output has no duration in its header: a webm streamed to a pipe is written the same way.
    live = subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-i", str(wav), "-c:a", "libopus", "-f", "webm", "pipe:1"],
        capture_output=True,
        check=True,
    )
    files["live.webm"] = folder / "recorded.webm"
    files["live.webm"].write_bytes(live.stdout)
    return files


@pytest.mark.parametrize("kind", ["wav", "flac", "mp3", "ogg", "opus.ogg", "m4a", "webm", "live.webm"])
def test_every_format_decodes_to_mono_16k(media, kind):
    start = time.perf_counter()
    waveform = load_audio(media[kind])
    elapsed = time.perf_counter() - start

    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert abs(len(waveform) / SAMPLE_RATE - SECONDS) < 0.08, len(waveform)  # codec delay/padding only
    assert abs(dominant_hz(waveform) - TONE_HZ) < 2.0
    # Mono is the channel average (librosa.load): left 0.5·env, right 0.25·env → peak ≈ 0.375.
    assert 0.33 < np.abs(waveform).max() < 0.42
    assert elapsed < 2.0
    assert abs(audio_duration(media[kind]) - SECONDS) < 0.08


def test_wav_at_target_rate_is_read_unchanged(tmp_path):
    samples = tone(rate=SAMPLE_RATE, channels=1)[:, 0]
    sf.write(tmp_path / "a.wav", samples, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "a.wav"), samples)


def test_resampling_to_another_rate(media):
    waveform = load_audio(media["wav"], sample_rate=8000)
    assert abs(len(waveform) - SECONDS * 8000) <= 1
    assert abs(dominant_hz(waveform, 8000) - TONE_HZ) < 2.0


def test_audio_track_of_a_video_is_used(tmp_path, media):
    video = tmp_path / "clip.mp4"
    subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=64x64:d=1.5:r=10",
         "-i", str(media["wav"]), "-c:v", "libx264", "-c:a", "aac", "-shortest", str(video)],
        check=True,
    )  # fmt: skip
    assert abs(len(load_audio(video)) / SAMPLE_RATE - SECONDS) < 0.1


def test_too_long_is_rejected_with_the_limit_and_how_to_trim(media):
    for kind in ("wav", "m4a"):  # the libsndfile path and the ffmpeg path
        with pytest.raises(AudioInputError, match=r"longer than the 1 s limit — trim it to at most 1 s"):
            load_audio(media[kind], max_seconds=1.0)
    assert len(load_audio(media["m4a"], max_seconds=2.0)) > SAMPLE_RATE


def test_silent_audio_says_what_to_do(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.full(SAMPLE_RATE, 1e-5, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioInputError, match="silent .* record or upload speech"):
        load_audio(tmp_path / "quiet.wav")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: sf.write(p, np.zeros((0, 1), np.float32), SAMPLE_RATE), "no sound"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), "could not be read as audio"),
        (lambda p: p.write_text("these are not the samples you are looking for"), "could not be read as audio"),
        (lambda p: Image.new("RGB", (32, 32)).save(p, format="PNG"), "no audio track"),
    ],
    ids=["zero-bytes", "zero-samples", "random-bytes", "text", "image"],
)
def test_bad_files_raise_input_errors_for_people(tmp_path, make, message):
    path = tmp_path / "upload.wav"
    make(path)
    with pytest.raises(InputError, match=message):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioInputError, match="No audio file"):
        load_audio(tmp_path / "nope.mp3")
    with pytest.raises(AudioInputError, match="no audio track|could not be read"):
        image = tmp_path / "x.png"
        Image.new("RGB", (32, 32)).save(image)
        audio_duration(image)
