"""Streamed mp4 writing (H.264 + AAC) and probing, with the ffmpeg bundled by imageio-ffmpeg.

The official code collects every frame, then writes them with moviepy at 30 fps, audio = the 16 kHz input as
AAC, length = min(video, audio) (docs/CHECKPOINT.md §1.5, §1.8). Here frames go to ffmpeg through a pipe as each clip
finishes, so memory does not grow with the video length, and the file is finalised even when generation is
cancelled or crashes. The audio can be the person's own file, encoded again as AAC at its own rate and channels
(``audio_stream`` says whether ffmpeg reads it):

1. ``write`` pipes raw RGB frames to an ffmpeg that encodes H.264 (yuv420p) into ``<name>.partial.mp4``, with
   the audio (AAC) as its second input from the start, stopped with the video (``-shortest``; a frame of silence
   is added, as the audio may end inside the last frame, which ``-shortest`` would then drop);
2. ``close`` ends that stream, then copies both streams, the audio cut exactly to the frames written, into
   ``<name>.mp4`` (``+faststart``: browsers start playing before the download ends), or into
   ``<name>-partial.mp4`` when the run was cancelled or interrupted, and removes the file in progress.

ffmpeg runs in a session of its own, so a Ctrl-C in the terminal (SIGINT to the whole process group) reaches only
Python, which closes the video as above. If the Python process is killed outright, ffmpeg still sees the end of
its input and finalises ``<name>.partial.mp4``: a playable video with its sound.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import soundfile as sf

from memo_model.audio.io import SAMPLE_RATE, audio_duration, ffmpeg_executable, parse_header_duration

DEFAULT_FPS = 30  # configs/inference.yaml (docs/CHECKPOINT.md §1.1)
DEFAULT_CRF = 18  # x264 quality: visually near-lossless; lower is larger
DEFAULT_PRESET = "medium"  # x264 speed/size trade-off; encoding is never the bottleneck next to diffusion
AUDIO_BITRATE = "128k"
_PROBE_AUDIO_RATE = 48_000  # rate at which probe_media counts decoded audio samples
_READ_BYTES = 1 << 20
CHANNEL_LAYOUTS = {"mono": 1, "stereo": 2, "downmix": 2, "quad": 4, "hexagonal": 6, "octagonal": 8}  # ffmpeg's names


def frames_to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] → uint8 by ×255, clip and truncation, as the official ``tensor_to_video`` does."""
    return (np.asarray(frames, dtype=np.float32) * 255.0).clip(0, 255).astype(np.uint8)


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Repeat the last row / column so height and width are even (yuv420p stores colour at half resolution).

    frames: (N, H, W, 3) → (N, H + H % 2, W + W % 2, 3)
    """
    _, height, width, _ = frames.shape
    if height % 2 == 0 and width % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")


class VideoWriter:
    """Write uint8 RGB frames clip by clip into an mp4 with the given audio.

    ``audio`` is a mono waveform (at ``audio_sample_rate``) or the path of an audio (or video) file ffmpeg reads,
    whose sound keeps its sample rate and channels. ``audio_seconds``: how much of the audio the video covers, from
    its start (``None``: all of it, its length read from the file). With ``trim_to_audio`` frames that start after
    that are dropped (the last clip is padded to 16 frames, docs/CHECKPOINT.md §1.3), and the audio is always cut
    to the frames written (so it may run on into the last frame, a few ms past ``audio_seconds``). Use as a context
    manager: on an exception the frames written so far are still finalised into a playable file, and the exception
    propagates.

        with VideoWriter("out.mp4", fps=30, audio=waveform) as writer:
            for clip in clips:          # (16, H, W, 3) uint8
                writer.write(clip)
    """

    def __init__(
        self,
        path: str | Path,
        fps: float = DEFAULT_FPS,
        audio: np.ndarray | str | Path | None = None,
        audio_sample_rate: int = SAMPLE_RATE,
        audio_seconds: float | None = None,
        trim_to_audio: bool = True,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
    ):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}.")
        if audio_seconds is not None and audio_seconds <= 0:
            raise ValueError(f"audio_seconds must be positive, got {audio_seconds}.")
        self.path = Path(path)
        self.partial_path = self.path.with_name(f"{self.path.stem}.partial.mp4")  # while it is being written
        self.cancelled_path = self.path.with_name(f"{self.path.stem}-partial.mp4")  # a cancelled run's video
        self.fps = fps
        self.audio = audio
        self.audio_sample_rate = audio_sample_rate
        self.audio_seconds = audio_seconds
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self.frame_size: tuple[int, int] | None = None  # (H, W) of the frames given, before even padding
        self.max_frames = self._frame_limit(trim_to_audio)
        self._process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()
        self._scratch: tempfile.TemporaryDirectory | None = None  # the waveform as a wav file for ffmpeg
        self._closed = False
        self.cancelled = False

    def _frame_limit(self, trim_to_audio: bool) -> int | None:
        """Frames that start before the audio ends: ceil(audio_seconds · fps), as moviepy's min(video, audio)."""
        if not trim_to_audio or self.audio is None:
            return None
        if self.audio_seconds is not None:
            seconds = self.audio_seconds
        elif isinstance(self.audio, np.ndarray):
            seconds = len(self.audio) / self.audio_sample_rate
        else:
            seconds = audio_duration(self.audio)
        return math.ceil(seconds * self.fps - 1e-6)  # tolerance: 1.0 s at 30 fps is 30 frames, not 31

    @property
    def frames_left(self) -> int | None:
        """Frames the video still takes before it reaches the end of the audio (``None``: no limit)."""
        return None if self.max_frames is None else max(self.max_frames - self.frames_written, 0)

    @property
    def target(self) -> Path:
        """Where ``close`` puts the video: ``<name>-partial.mp4`` once closed as cancelled, else ``<name>.mp4``."""
        return self.cancelled_path if self.cancelled else self.path

    @property
    def duration(self) -> float:
        """Seconds of video written so far."""
        return self.frames_written / self.fps

    def write(self, frames: np.ndarray) -> None:
        """Append frames (N, H, W, 3) or one frame (H, W, 3), uint8 RGB, all of the same size."""
        if self._closed:
            raise RuntimeError("This VideoWriter is closed; open a new one to write another video.")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"Frames must be uint8 RGB of shape (N, H, W, 3), got {frames.dtype} {tuple(frames.shape)}; "
                "convert float frames in [0, 1] with frames_to_uint8."
            )
        if self.frame_size is None:
            self.frame_size = frames.shape[1:3]
            self._start_encoder()
        elif frames.shape[1:3] != self.frame_size:
            raise ValueError(f"All frames must be {self.frame_size} (H, W); got {tuple(frames.shape[1:3])}.")
        if self.max_frames is not None:
            frames = frames[: self.frames_left]
        if len(frames) == 0:
            return
        try:
            self._process.stdin.write(np.ascontiguousarray(pad_to_even(frames)).tobytes())
        except BrokenPipeError:
            raise RuntimeError(f"The video encoder stopped: {self._encoder_log()}") from None
        self.frames_written += len(frames)

    def _start_encoder(self) -> None:
        height, width = self.frame_size
        size = f"{width + width % 2}x{height + height % 2}"
        command = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-v", "error", "-y"]
        command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", size, "-r", f"{self.fps}", "-i", "pipe:0"]
        if self.audio is not None:
            command += ["-i", str(self._audio_file().absolute()), "-map", "0:v:0", "-map", "1:a:0"]
            command += ["-c:a", "aac", "-b:a", AUDIO_BITRATE]
            if self.max_frames is not None:  # the audio stops with the video; padded by a frame should it end first
                command += ["-af", f"apad=pad_dur={1 / self.fps:.6f}", "-shortest"]
        command += ["-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p"]
        command += ["-movflags", "+faststart", str(self.partial_path.absolute())]  # "-x.mp4" is no option
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,  # a terminal's Ctrl-C goes to Python, which then finalises the file
        )

    def _audio_file(self) -> Path:
        """The audio as a file ffmpeg can read: the original file, or the waveform written as a wav."""
        if not isinstance(self.audio, np.ndarray):
            return Path(self.audio)
        if self._scratch is not None:
            return Path(self._scratch.name) / "audio.wav"
        self._scratch = tempfile.TemporaryDirectory()
        path = Path(self._scratch.name) / "audio.wav"
        sf.write(path, np.asarray(self.audio, dtype=np.float32), self.audio_sample_rate)
        return path

    def close(self, cancelled: bool = False) -> Path | None:
        """Finalise the mp4 and return its path: ``<name>.mp4``, or ``<name>-partial.mp4`` when ``cancelled``;
        None when no frame was written.

        Cancelled or not, the frames written so far become a playable file whose audio is cut to them;
        ``cancelled`` is kept in ``self.cancelled`` so a caller can report a partial video.
        """
        if self._closed:
            return self.target if self.target.exists() else None
        self._closed = True
        self.cancelled = cancelled
        target = self.target
        try:
            if self._process is None:
                return None
            self._process.stdin.close()
            if self._process.wait() != 0:
                raise RuntimeError(f"The video encoder failed: {self._encoder_log()}")
            if self.frames_written == 0:
                self.partial_path.unlink(missing_ok=True)
                return None
            self._cut_to_frames(target)
            return target
        finally:
            self._log.close()
            if self._scratch is not None:
                self._scratch.cleanup()

    def _cut_to_frames(self, target: Path) -> None:
        """The finished video into ``target`` with the audio encoded again from its source, cut exactly to the
        frames written (the in-progress file's ``-shortest`` audio can end a few AAC frames early)."""
        if self.audio is None:
            self.partial_path.replace(target)  # already H.264 with +faststart
            return
        command = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-v", "error", "-y"]
        command += ["-i", str(self.partial_path.absolute()), "-i", str(self._audio_file().absolute())]
        command += ["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", AUDIO_BITRATE]
        command += ["-t", f"{self.duration:.6f}", "-movflags", "+faststart", str(target.absolute())]
        result = subprocess.run(command, capture_output=True, check=False)
        if result.returncode != 0:  # keep the uncut file rather than lose the frames
            self.partial_path.replace(target)
            raise RuntimeError(
                f"Cutting the audio to the video failed; the video was kept at {target}: "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
        self.partial_path.unlink()

    def _encoder_log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip() or "no message from ffmpeg"

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close(cancelled=exc_type is not None)


@dataclass(frozen=True)
class AudioStream:
    """The first audio stream of a media file, as ffmpeg's header describes it."""

    codec: str  # ffmpeg's decoder name: "aac", "pcm_s16le", "mp3", "opus", ...
    sample_rate: int  # Hz
    channels: int | None  # None: a layout this parser does not know


def audio_stream(path: str | Path) -> AudioStream | None:
    """The first audio stream ffmpeg finds in a file, from its header alone; None when ffmpeg reads no audio there
    (not a media file ffmpeg knows, no audio track, or a codec it cannot decode)."""
    return _audio_stream(_header(Path(path)))


def _header(path: Path) -> str:
    """What ``ffmpeg -i`` says about a file (it exits non-zero because no output is given; that is expected)."""
    command = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-i", str(path.absolute())]
    return subprocess.run(command, capture_output=True, check=False).stderr.decode(errors="replace")


def _audio_stream(header: str) -> AudioStream | None:
    """Parse "Stream #0:1(und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s"."""
    found = re.search(r"Stream #\S+.*?: Audio: (\w+)[^\n]*?, (\d+) Hz, ([^,\n]+)", header)
    if found is None or found.group(1) == "none":
        return None
    return AudioStream(found.group(1), int(found.group(2)), _channel_count(found.group(3).strip()))


def _channel_count(layout: str) -> int | None:
    """Channels of an ffmpeg channel layout: "mono" 1, "stereo" 2, "5.1(side)" 6, "7.1.4" 12, "3 channels" 3."""
    name = layout.split("(")[0]
    if name in CHANNEL_LAYOUTS:
        return CHANNEL_LAYOUTS[name]
    if counted := re.fullmatch(r"(\d+) channels", name):
        return int(counted.group(1))
    if re.fullmatch(r"\d+(\.\d+)*", name):
        return sum(int(part) for part in name.split("."))  # main channels, then low-frequency, then height
    return None


def probe_media(path: str | Path) -> dict:
    """Describe a media file by reading its header and decoding it once with ffmpeg (there is no ffprobe).

    Returns ``duration`` (container, s), ``has_video``, ``width``, ``height``, ``fps``, ``video_frames`` (decoded
    count), ``has_audio``, ``audio_codec``, ``audio_sample_rate``, ``audio_channels``, ``audio_duration`` (decoded,
    s) and ``playable`` (every stream decoded without an error).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No media file at {str(path)!r}.")
    header = _header(path)
    video = re.search(r"Stream #\S+.*: Video: .*", header)
    size = re.search(r", (\d+)x(\d+)[ ,]", video.group(0)) if video else None
    rate = re.search(r"(\d+(?:\.\d+)?) fps", video.group(0)) if video else None
    audio = _audio_stream(header)
    info = {
        "duration": parse_header_duration(header),
        "has_video": video is not None,
        "width": int(size.group(1)) if size else None,
        "height": int(size.group(2)) if size else None,
        "fps": float(rate.group(1)) if rate else None,
        "video_frames": 0,
        "has_audio": audio is not None,
        "audio_codec": audio.codec if audio else None,
        "audio_sample_rate": audio.sample_rate if audio else None,
        "audio_channels": audio.channels if audio else None,
        "audio_duration": None,
        "playable": video is not None or audio is not None,
    }
    if video:
        frames, ok = _count_decoded(path, ["-map", "0:v:0", "-vf", "scale=2:2", "-pix_fmt", "gray"], "rawvideo")
        info["video_frames"] = frames // 4  # one 2x2 grey frame is 4 bytes
        info["playable"] &= ok
    if audio:
        samples, ok = _count_decoded(path, ["-map", "0:a:0", "-ac", "1", "-ar", str(_PROBE_AUDIO_RATE)], "s16le")
        info["audio_duration"] = samples / 2 / _PROBE_AUDIO_RATE  # s16: 2 bytes per sample
        info["playable"] &= ok
    return info


def _count_decoded(path: Path, selection: list[str], raw_format: str) -> tuple[int, bool]:
    """Bytes of one stream decoded to a raw format, and whether ffmpeg decoded it without an error."""
    command = [ffmpeg_executable(), "-nostdin", "-v", "error", "-i", str(path), *selection, "-f", raw_format]
    with tempfile.TemporaryFile() as log:
        with subprocess.Popen([*command, "pipe:1"], stdout=subprocess.PIPE, stderr=log) as process:
            total = 0
            while chunk := process.stdout.read(_READ_BYTES):
                total += len(chunk)
        log.seek(0)
        ok = process.returncode == 0 and not log.read().strip()
    return total, ok
