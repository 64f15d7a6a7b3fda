"""Dataset writer: the on-disk format round-trips (metadata, mp4 with video + audio streams, wav, labels)."""

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import soundfile as sf
from PIL import Image

from memo_model.data.synthetic.dataset_writer import DatasetSpec, read_metadata, read_video, write_dataset
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.data.synthetic.speech import SAMPLE_RATE, samples_for_frames

REQUIRED_KEYS = {"id", "video", "audio", "labels", "reference", "num_frames", "fps", "identity_seed", "emotions"}


def stream_lines(path: str) -> list[str]:
    """The "Stream #..." lines ffmpeg prints for a file (there is no ffprobe here)."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", path], capture_output=True, text=True
    )
    return [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("Stream #")]


def test_dataset_round_trip(tmp_path: Path):
    spec = DatasetSpec.held_out(num_samples=2, seconds=(1.0, 2.0), size=64, num_identities=50, background="mixed")
    root = write_dataset(tmp_path / "synth", spec)
    lines = (root / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == 2
    raw = json.loads(lines[0])
    assert REQUIRED_KEYS <= raw.keys()
    assert not Path(raw["video"]).is_absolute()  # rows store paths relative to the root

    for row in read_metadata(root):
        assert row["fps"] == 30 and row["identity_seed"] >= HELD_OUT_SEED_START
        streams = stream_lines(row["video"])
        assert any("Video: h264" in s and "64x64" in s for s in streams), streams
        assert any("Audio: aac" in s for s in streams), streams

        frames = read_video(row["video"])
        assert frames.shape == (row["num_frames"], 64, 64, 3)
        audio, rate = sf.read(row["audio"])
        assert rate == SAMPLE_RATE and audio.ndim == 1 and len(audio) == samples_for_frames(row["num_frames"])

        labels = json.loads(Path(row["labels"]).read_text())
        assert len(labels["mouth_open"]) == len(labels["emotion"]) == row["num_frames"]
        assert labels["segments"] == row["emotions"]
        reference = np.asarray(Image.open(row["reference"]))
        assert reference.shape == (64, 64, 3)
        assert labels["reference_emotion"] != row["emotions"][0]["emotion"]


def test_odd_sizes_are_refused(tmp_path: Path):
    import pytest

    with pytest.raises(ValueError, match="even"):
        write_dataset(tmp_path / "odd", DatasetSpec(num_samples=1, seconds=(1.0, 1.0), size=63))


def test_decoupled_share_marks_the_takes_whose_speech_has_its_own_emotions(tmp_path: Path):
    import pytest

    def rows(share: float) -> list[dict]:
        spec = DatasetSpec(num_samples=4, seconds=(1.0, 1.0), size=32, seed=5, decoupled_share=share)
        return list(read_metadata(write_dataset(tmp_path / f"share-{share}", spec)))

    coupled, decoupled = rows(0.0), rows(1.0)
    assert not any("speech_emotions" in row for row in coupled)
    assert all(row["speech_emotions"][-1]["end_frame"] == row["num_frames"] for row in decoupled)
    for plain, other in zip(
        coupled, decoupled, strict=True
    ):  # same identities and face plans; only the speech changes
        assert (plain["identity_seed"], plain["emotions"]) == (other["identity_seed"], other["emotions"])
        labels = json.loads(Path(other["labels"]).read_text())
        assert labels["speech_segments"] == other["speech_emotions"]
    with pytest.raises(ValueError, match="between 0 and 1"):
        write_dataset(tmp_path / "bad", DatasetSpec(num_samples=1, decoupled_share=50))
