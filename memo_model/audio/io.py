"""Audio decoding: any common file → mono float32 at 16 kHz, with errors a person can act on.

Reproduces the official preprocessing (docs/CHECKPOINT.md §1.3): the model hears 16 kHz audio, mixed to mono by
averaging the channels (what ``librosa.load(mono=True)`` does) and resampled with soxr's high-quality filter
(librosa's default resampler).

Decoding goes through libsndfile (``soundfile``: wav, flac, ogg vorbis/opus, mp3) and falls back to the ffmpeg
bundled with ``imageio-ffmpeg`` for everything else (m4a/aac, browser-recorded webm/opus, audio tracks of
videos). ffmpeg decodes to a float WAV on stdout so the channel count and rate travel with the samples.
"""

from __future__ import annotations

import io
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from memo_model.errors import AudioInputError

SAMPLE_RATE = 16_000  # wav2vec2 / emotion2vec input rate (docs/CHECKPOINT.md §1.3)
SILENCE_PEAK_DBFS = -60.0  # a peak below this is digital silence or an unplugged microphone, not speech
SILENCE_PEAK = 10.0 ** (SILENCE_PEAK_DBFS / 20.0)
MIN_SECONDS = 0.1  # shorter audio holds no syllable, and the audio features' 25 ms windows hardly fit
# Codec padding (mp3/aac frames) can make a "30 s" file decode a few ms longer; do not reject it for that.
LENGTH_TOLERANCE_S = 0.1
_FFMPEG_READ_BYTES = 1 << 20  # chunk size when only counting decoded samples
_WAV_MAX_CHUNKS = 64  # chunks looked through for a WAV's data chunk (fmt, LIST, fact, ... come first)


def ffmpeg_executable() -> str:
    """Path of the ffmpeg bundled with imageio-ffmpeg (there is no ffprobe; see ENVIRONMENT.md)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def load_audio(
    path: str | Path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None, notes: list[str] | None = None
) -> np.ndarray:
    """Decode an audio file to a mono float32 waveform of shape (n_samples,) at ``sample_rate``.

    Raises ``AudioInputError`` when the file is missing, unreadable, not audio, empty, shorter than
    ``MIN_SECONDS``, silent, or longer than ``max_seconds`` (only ``max_seconds`` plus a little is decoded, so a
    huge file costs little to reject).
    ``notes``: when given, what a person should know about a usable file is appended to it, in plain words (a
    truncated file: fewer seconds than its header promises).
    """
    path = _checked_file(path)
    decoded = _decode_with_soundfile(path, max_seconds)
    if decoded is None:
        decoded = _decode_with_ffmpeg(path, max_seconds)
    samples, rate = decoded  # (n, channels), native rate

    if samples.shape[0] == 0:
        raise AudioInputError(f"The audio file {path.name!r} contains no sound (0 s) — record or upload it again.")
    if samples.shape[0] < MIN_SECONDS * rate:
        milliseconds = samples.shape[0] / rate * 1000
        length = f"only {milliseconds:.0f} ms" if milliseconds >= 1 else "less than 1 ms"
        raise AudioInputError(
            f"The audio file {path.name!r} is {length} long — record or upload at least {MIN_SECONDS:g} s of speech."
        )
    _check_length(samples.shape[0] / rate, max_seconds, path)
    waveform = samples.mean(axis=1, dtype=np.float32)
    if not np.isfinite(waveform).all():
        raise AudioInputError(
            f"The audio file {path.name!r} contains invalid samples (NaN or infinity) — export it again as WAV or MP3."
        )
    if rate != sample_rate:
        waveform = soxr.resample(waveform, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    _check_not_silent(waveform, path)
    if notes is not None and (note := _truncation_note(path, samples.shape[0], rate)):
        notes.append(note)
    return waveform


def audio_duration(path: str | Path) -> float:
    """Length of the audio in an audio or video file, in seconds.

    Uses the file header where it has one; browser recordings (webm from MediaRecorder) carry no duration, so
    those are decoded once with ffmpeg, counting samples in fixed-size chunks (memory stays constant).
    """
    path = _checked_file(path)
    try:
        info = sf.info(_sf_name(path))
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError):
        pass  # not a libsndfile format: ask ffmpeg below
    header = _ffmpeg_header(path)
    if not re.search(r"Stream #\S+.*: Audio:", header):
        raise _not_audio_or_unreadable(path, header)
    duration = parse_header_duration(header)
    return duration if duration is not None else _count_decoded_seconds(path)


def parse_header_duration(header: str) -> float | None:
    """Seconds from the ``Duration: HH:MM:SS.ss`` line that ``ffmpeg -i`` prints; None when it says N/A."""
    match = re.search(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", header)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _checked_file(path: str | Path) -> Path:
    """The file as an absolute path (a name like ``-a.wav`` or ``pipe:1.wav`` is never an ffmpeg option or
    protocol); ``AudioInputError`` when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise AudioInputError(f"No audio file at {str(path)!r} — check the path or upload the file again.")
    if path.stat().st_size == 0:
        raise AudioInputError(f"The audio file {path.name!r} is empty (0 bytes) — record or upload it again.")
    return path.absolute()


def _sf_name(path: Path) -> str | bytes:
    """The path as libsndfile takes it: bytes when the name is not valid UTF-8 (Linux allows any bytes)."""
    try:
        str(path).encode()
    except UnicodeEncodeError:
        return bytes(path)
    return str(path)


def _decode_with_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int] | None:
    """(samples (n, channels) float32, rate), or None when libsndfile cannot read this file."""
    try:
        info = sf.info(_sf_name(path))
        _check_length(info.frames / info.samplerate if info.samplerate else 0.0, max_seconds, path)
        samples, rate = sf.read(_sf_name(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        return None  # unknown container or codec, or damaged: ffmpeg is more lenient and says which
    if samples.shape[0] == 0 and _promised_frames(path) is None:
        return None  # a streamed WAV whose header was never finished (data size 0): ffmpeg reads to the end
    return samples, rate


def _promised_frames(path: Path) -> int | None:
    """Sample frames the header promises: a WAV's data chunk, a FLAC's stream info; None when it does not say.

    libsndfile quietly shortens a WAV whose data chunk runs past the end of the file, so the chunk is read here.
    A WAV written while streaming has a data size of 0 or 0xFFFFFFFF ("unknown"): no promise.
    """
    try:
        with open(path, "rb") as file:
            riff = file.read(12)
            if len(riff) == 12 and riff[:4] == b"RIFF" and riff[8:] == b"WAVE":
                return _wav_data_frames(file)
        info = sf.info(_sf_name(path))
    except (OSError, sf.LibsndfileError, RuntimeError):
        return None
    return info.frames if info.format == "FLAC" and info.frames > 0 else None


def _wav_data_frames(file) -> int | None:
    """Frames the data chunk of an open WAV (positioned after "RIFF....WAVE") claims to hold."""
    block_align = None
    for _ in range(_WAV_MAX_CHUNKS):
        header = file.read(8)
        if len(header) < 8:
            return None
        chunk, size = header[:4], int.from_bytes(header[4:], "little")
        if chunk == b"fmt " and size >= 16:
            block_align = int.from_bytes(file.read(16)[12:14], "little")
            file.seek(size - 16 + size % 2, io.SEEK_CUR)
        elif chunk == b"data":
            unknown = size in (0, 0xFFFFFFFF) or not block_align
            return None if unknown else size // block_align
        else:
            file.seek(size + size % 2, io.SEEK_CUR)  # chunks are padded to an even size
    return None


def _truncation_note(path: Path, frames_read: int, rate: int) -> str | None:
    """What to say when fewer samples were decoded than the header promises (a copy or upload cut short)."""
    promised = _promised_frames(path)
    if promised is None or promised - frames_read <= LENGTH_TOLERANCE_S * rate:
        return None
    return (
        f"The audio file {path.name!r} is truncated: {frames_read / rate:.1f} s of the promised "
        f"{promised / rate:.1f} s were read, so the video covers only those — copy or export the file again "
        "for its whole length."
    )


def _decode_with_ffmpeg(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream to a float WAV on stdout, at its native rate and channel count."""
    limit = [] if max_seconds is None else ["-t", f"{max_seconds + 2 * LENGTH_TOLERANCE_S:.3f}"]
    command = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-v", "error", "-i", str(path), *limit]
    command += ["-map", "0:a:0", "-vn", "-c:a", "pcm_f32le", "-f", "wav", "pipe:1"]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise _not_audio_or_unreadable(path, result.stderr.decode(errors="replace"))
    try:
        samples, rate = sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        raise AudioInputError(
            f"The audio file {path.name!r} could not be decoded — it may be damaged; export it again as WAV or MP3."
        ) from None
    return samples, rate


def _ffmpeg_header(path: Path) -> str:
    """What ``ffmpeg -i`` says about a file (it exits non-zero because no output is given; that is expected)."""
    command = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-i", str(path)]
    return subprocess.run(command, capture_output=True, check=False).stderr.decode(errors="replace")


def _count_decoded_seconds(path: Path) -> float:
    command = [ffmpeg_executable(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0"]
    command += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:1"]
    bytes_read = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read(_FFMPEG_READ_BYTES):
            bytes_read += len(chunk)
    bytes_per_sample = 2  # s16le
    return bytes_read / bytes_per_sample / SAMPLE_RATE


def _not_audio_or_unreadable(path: Path, ffmpeg_message: str) -> AudioInputError:
    if "matches no streams" in ffmpeg_message or re.search(r"Stream #\S+.*: Video:", ffmpeg_message):
        return AudioInputError(
            f"The file {path.name!r} has no audio track — upload an audio file (WAV, MP3, FLAC, OGG, M4A or WebM)."
        )
    return AudioInputError(
        f"The file {path.name!r} could not be read as audio — it may be damaged or in an unknown format; "
        "upload a WAV, MP3, FLAC, OGG, M4A or WebM file."
    )


def _check_length(seconds: float, max_seconds: float | None, path: Path) -> None:
    if max_seconds is not None and seconds > max_seconds + LENGTH_TOLERANCE_S:
        raise AudioInputError(
            f"The audio {path.name!r} is longer than the {_format_seconds(max_seconds)} limit — trim it to at most "
            f"{_format_seconds(max_seconds)} (e.g. `ffmpeg -i in.wav -t {max_seconds:g} out.wav`) or raise the limit."
        )


def _check_not_silent(waveform: np.ndarray, path: Path) -> None:
    peak = float(np.abs(waveform).max())
    if peak < SILENCE_PEAK:
        loudest = "−∞" if peak == 0.0 else f"{20.0 * math.log10(peak):.0f}"
        raise AudioInputError(
            f"The audio file {path.name!r} is silent (loudest sample {loudest} dBFS) — record or upload speech, "
            "and check that the microphone is not muted."
        )


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"
