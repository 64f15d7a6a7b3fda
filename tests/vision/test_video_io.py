"""vision.video_io: streamed H.264 + AAC mp4s with the right length, even after a crash, and probe_media."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf

from memo_model.audio.io import ffmpeg_executable
from memo_model.vision.video_io import (
    AudioStream,
    VideoWriter,
    _channel_count,
    audio_stream,
    frames_to_uint8,
    pad_to_even,
    probe_media,
)

FPS = 30
CLIP = 16
SIZE = 64
AUDIO_RATE = 16_000


def clip(index: int, size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """16 frames whose red level encodes the frame number and whose green is constant: (16, H, W, 3) uint8."""
    frames = np.zeros((CLIP, *size, 3), dtype=np.uint8)
    frames[..., 0] = (np.arange(CLIP) + index * CLIP)[:, None, None] * 6
    frames[..., 1] = 200
    return frames


def speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def decoded_frames(path, size=(SIZE, SIZE)) -> np.ndarray:
    command = [ffmpeg_executable(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, *size, 3)


def test_two_clips_with_one_second_of_audio_are_cut_to_the_audio(tmp_path):
    with VideoWriter(tmp_path / "out.mp4", fps=FPS, audio=speech(1.0)) as writer:
        writer.write(clip(0))
        writer.write(clip(1))
    info = probe_media(tmp_path / "out.mp4")

    assert info["has_video"] and info["has_audio"] and info["playable"]
    assert info["video_frames"] == 30  # ceil(1.0 s · 30 fps): the padded frames past the audio are dropped
    assert info["fps"] == FPS and (info["width"], info["height"]) == (SIZE, SIZE)
    assert abs(info["duration"] - 1.0) < 0.05
    assert abs(info["audio_duration"] - 1.0) < 0.03
    assert not (tmp_path / "out.partial.mp4").exists()

    frames = decoded_frames(tmp_path / "out.mp4")
    red = frames[..., 0].mean(axis=(1, 2))
    np.testing.assert_allclose(red, np.arange(30) * 6, atol=4)  # order and RGB channel order survive encoding
    assert abs(frames[..., 1].mean() - 200) < 4


def test_without_trimming_all_frames_are_kept_and_audio_stops_at_its_end(tmp_path):
    with VideoWriter(tmp_path / "out.mp4", fps=FPS, audio=speech(1.0), trim_to_audio=False) as writer:
        writer.write(clip(0))
        writer.write(clip(1))
    info = probe_media(tmp_path / "out.mp4")
    assert info["video_frames"] == 32
    assert abs(info["audio_duration"] - 1.0) < 0.03


def stereo_file(path, seconds: float, rate: int = 44_100):
    t = np.arange(round(rate * seconds)) / rate
    sf.write(path, np.stack([np.sin(t * 1000), np.sin(t * 1500)], 1) * 0.3, rate)
    return path


def test_audio_from_the_original_file_keeps_its_rate_and_channels(tmp_path):
    with VideoWriter(tmp_path / "out.mp4", fps=FPS, audio=stereo_file(tmp_path / "voice.wav", 2.0)) as writer:
        for index in range(3):
            writer.write(clip(index))
    info = probe_media(tmp_path / "out.mp4")
    assert info["video_frames"] == 48 and info["has_audio"]
    assert (info["audio_codec"], info["audio_sample_rate"], info["audio_channels"]) == ("aac", 44_100, 2)
    assert abs(info["audio_duration"] - 48 / FPS) < 0.03  # the audio is cut to the video


@pytest.mark.parametrize("seconds, frames", [(0.5, 15), (16 / 30 - 2e-5, 16), (0.6, 18)])
def test_audio_seconds_sets_the_frames_of_a_longer_file(tmp_path, seconds, frames):
    """A preview of the first seconds: the frames stop at ``audio_seconds``, every frame written is kept (even when
    the audio ends a few µs before the last one does) and the sound is the file's own, cut to them."""
    audio = stereo_file(tmp_path / "voice.wav", 2.0)
    with VideoWriter(tmp_path / "out.mp4", fps=FPS, audio=audio, audio_seconds=seconds) as writer:
        writer.write(clip(0))
        writer.write(clip(1))
    assert writer.frames_written == frames
    info = probe_media(tmp_path / "out.mp4")
    assert info["video_frames"] == frames and info["audio_channels"] == 2
    assert abs(info["audio_duration"] - frames / FPS) < 0.03


def test_audio_stream_reads_what_ffmpeg_sees(tmp_path):
    assert audio_stream(stereo_file(tmp_path / "voice.wav", 0.2, rate=22_050)) == AudioStream("pcm_s16le", 22_050, 2)
    sf.write(tmp_path / "voice.mat", speech(0.2), AUDIO_RATE, format="MAT5")  # libsndfile reads it, ffmpeg does not
    assert audio_stream(tmp_path / "voice.mat") is None
    (tmp_path / "notes.txt").write_text("no sound here")
    assert audio_stream(tmp_path / "notes.txt") is None
    with VideoWriter(tmp_path / "silent.mp4", fps=FPS) as writer:
        writer.write(clip(0))
    assert audio_stream(tmp_path / "silent.mp4") is None


@pytest.mark.parametrize(
    "layout, channels",
    [("mono", 1), ("stereo", 2), ("5.1(side)", 6), ("7.1", 8), ("5.1.2", 8), ("3 channels", 3), ("quad", 4),
     ("ambisonic 1", None)],
)  # fmt: skip
def test_channel_layouts_are_counted(layout, channels):
    assert _channel_count(layout) == channels


def test_crash_mid_way_leaves_a_playable_partial_video_with_audio_cut_to_it(tmp_path):
    with pytest.raises(RuntimeError, match="denoiser exploded"):
        with VideoWriter(tmp_path / "out.mp4", fps=FPS, audio=speech(3.0)) as writer:
            writer.write(clip(0))
            raise RuntimeError("denoiser exploded")
    assert writer.cancelled and not (tmp_path / "out.mp4").exists()
    info = probe_media(tmp_path / "out-partial.mp4")  # the name says it is partial
    assert info["playable"] and info["video_frames"] == CLIP
    assert abs(info["audio_duration"] - CLIP / FPS) < 0.03


def test_cancel_finalises_what_was_written(tmp_path):
    writer = VideoWriter(tmp_path / "out.mp4", fps=FPS, audio=speech(3.0))
    writer.write(clip(0))
    writer.write(clip(1)[:5])
    assert writer.close(cancelled=True) == tmp_path / "out-partial.mp4"
    info = probe_media(tmp_path / "out-partial.mp4")
    assert info["video_frames"] == CLIP + 5 and abs(info["audio_duration"] - (CLIP + 5) / FPS) < 0.03
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(clip(2))


def test_nothing_written_gives_no_file(tmp_path):
    assert VideoWriter(tmp_path / "out.mp4", audio=speech(1.0)).close(cancelled=True) is None
    assert not any(tmp_path.iterdir())


def test_killed_process_leaves_a_playable_video_with_its_sound(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from memo_model.vision.video_io import VideoWriter
        writer = VideoWriter({str(tmp_path / "out.mp4")!r}, fps=30, audio=np.ones(48000, np.float32) * 0.1)
        writer.write(np.full((16, 64, 64, 3), 128, np.uint8))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == -signal.SIGKILL
    partial = tmp_path / "out.partial.mp4"
    deadline = time.monotonic() + 10  # the orphaned ffmpeg finalises the file on its own after stdin closes
    while time.monotonic() < deadline and not (partial.exists() and probe_media(partial)["video_frames"] == CLIP):
        time.sleep(0.2)
    info = probe_media(partial)
    assert info["playable"] and info["video_frames"] == CLIP and info["has_audio"]  # muxed as it was written
    assert abs(info["audio_duration"] - CLIP / 30) < 0.1  # stopped with the video (AAC frames: ~20 ms)


def test_odd_frame_sizes_are_padded_to_even(tmp_path):
    frames = clip(0, size=(33, 47))
    assert pad_to_even(frames).shape == (CLIP, 34, 48, 3)
    np.testing.assert_array_equal(pad_to_even(frames)[:, 33, :47], frames[:, 32])
    with VideoWriter(tmp_path / "odd.mp4", fps=FPS) as writer:
        writer.write(frames)
    info = probe_media(tmp_path / "odd.mp4")
    assert (info["width"], info["height"]) == (48, 34) and info["video_frames"] == CLIP and not info["has_audio"]


def test_bad_frames_are_refused(tmp_path):
    writer = VideoWriter(tmp_path / "out.mp4")
    with pytest.raises(ValueError, match="frames_to_uint8"):
        writer.write(np.zeros((2, 8, 8, 3), np.float32))
    writer.write(clip(0))
    with pytest.raises(ValueError, match="All frames must be"):
        writer.write(clip(0, size=(32, 32)))
    writer.close()


def test_frames_to_uint8_truncates_like_the_official_code():
    np.testing.assert_array_equal(frames_to_uint8(np.array([-0.1, 0.0, 0.5, 0.999, 1.2])), [0, 0, 127, 254, 255])


def test_probe_media_on_audio_only(tmp_path):
    sf.write(tmp_path / "a.wav", speech(0.5), AUDIO_RATE)
    info = probe_media(tmp_path / "a.wav")
    assert not info["has_video"] and info["has_audio"] and info["audio_sample_rate"] == AUDIO_RATE
    assert abs(info["audio_duration"] - 0.5) < 0.01
