"""Writes synthetic samples in the project's on-disk dataset format (shared with the real data pipeline).

Layout of a dataset root::

    metadata.jsonl          one JSON object per sample (below), paths relative to the root
    videos/<id>.mp4         H.264 video (yuv420p, 30 fps) with the AAC audio muxed in
    audio/<id>.wav          16 kHz mono PCM, exactly num_frames / fps seconds long
    labels/<id>.json        per-frame ground truth: emotion, mouth_open, mouth_shape, blink, head_pose
                            {yaw, roll, tx, ty}, segments, reference_emotion
    reference/<id>.png      the same identity with a different emotion, mouth closed, frontal pose
    audio_features/<id>.*   cached audio features; NOT written here — the training code adds them and the
                            key "audio_features" to each metadata row (see FEATURES_DIR)

A metadata row::

    {"id": "s000000", "video": "videos/s000000.mp4", "audio": "audio/s000000.wav",
     "labels": "labels/s000000.json", "reference": "reference/s000000.png", "num_frames": 150, "fps": 30,
     "sample_rate": 16000, "size": 128, "identity_seed": 12, "seed": 0, "reference_emotion": 3,
     "emotions": [{"emotion": 4, "label": "neutral", "start_frame": 0, "end_frame": 61}, ...]}

"emotions" are what the face shows (the training labels). A decoupled take (``DatasetSpec.decoupled_share``) also
has "speech_emotions": the independent plan its speech was spoken with.

Real data carries "identity_seed": null. Readers should ignore keys they do not know.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import soundfile as sf
from PIL import Image

from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.data.synthetic.renderer import DEFAULT_SIZE
from memo_model.data.synthetic.sample import Sample, make_sample
from memo_model.data.synthetic.speech import FPS, SAMPLE_RATE

METADATA_FILE = "metadata.jsonl"
FEATURES_DIR = "audio_features"  # hook: cached audio features are added here by the training code
_X264_CRF = "18"  # visually lossless; small synthetic frames stay tiny anyway


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate. Identities are drawn from [first_identity, first_identity + num_identities)."""

    num_samples: int = 16
    seconds: tuple[float, float] = (3.0, 8.0)
    size: int = DEFAULT_SIZE
    first_identity: int = 0
    num_identities: int = 200
    seed: int = 0
    background: str = "none"  # "none", "noise", "music" or "mixed"
    decoupled_share: float = 0.0  # share of takes whose speech follows its own emotion plan (sample.py)

    @classmethod
    def held_out(cls, **kwargs) -> "DatasetSpec":
        """A spec drawing only identities never used for training."""
        return cls(first_identity=HELD_OUT_SEED_START, **kwargs)


def write_video(path: str | Path, frames: np.ndarray, audio_path: str | Path | None = None, fps: int = FPS) -> None:
    """H.264 mp4 of (f, h, w, 3) uint8 frames, with the wav at ``audio_path`` muxed in as AAC."""
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264 (yuv420p) needs even frame sides; got {frames.shape[2]}x{frames.shape[1]}.")
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (frames.shape[2], frames.shape[1]),
        fps=fps,
        codec="libx264",
        macro_block_size=2,
        quality=None,
        output_params=["-crf", _X264_CRF],
        audio_path=None if audio_path is None else str(audio_path),
        audio_codec=None if audio_path is None else "aac",
        ffmpeg_log_level="error",
    )
    writer.send(None)  # start the generator
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video as (f, h, w, 3) uint8."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    width, height = meta["size"]
    frames = [np.frombuffer(chunk, dtype=np.uint8).reshape(height, width, 3) for chunk in reader]
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), dtype=np.uint8)


def write_sample(root: Path, sample_id: str, sample: Sample, seed: int, size: int) -> dict:
    """Write one sample's files under ``root`` and return its metadata row."""
    paths = {
        "video": f"videos/{sample_id}.mp4",
        "audio": f"audio/{sample_id}.wav",
        "labels": f"labels/{sample_id}.json",
        "reference": f"reference/{sample_id}.png",
    }
    for relative in paths.values():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
    sf.write(root / paths["audio"], sample.audio, SAMPLE_RATE, subtype="PCM_16")
    write_video(root / paths["video"], sample.frames, root / paths["audio"])
    (root / paths["labels"]).write_text(json.dumps(sample.labels))
    Image.fromarray(sample.reference).save(root / paths["reference"])
    return {
        "id": sample_id,
        **paths,
        "num_frames": int(sample.frames.shape[0]),
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "size": size,
        "identity_seed": sample.identity.seed,
        "seed": seed,
        "reference_emotion": sample.reference_emotion,
        "emotions": sample.labels["segments"],
        **({"speech_emotions": sample.labels["speech_segments"]} if "speech_segments" in sample.labels else {}),
    }


def write_dataset(root: str | Path, spec: DatasetSpec, progress: bool = False) -> Path:
    """Generate ``spec.num_samples`` samples into ``root`` (created; an existing metadata.jsonl is replaced)."""
    if not 0.0 <= spec.decoupled_share <= 1.0:
        raise ValueError(f"decoupled_share is a share of takes, between 0 and 1; got {spec.decoupled_share}.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    backgrounds = ("none", "noise", "music")
    with open(root / METADATA_FILE, "w") as metadata:
        for index in range(spec.num_samples):
            identity_seed = spec.first_identity + int(rng.integers(spec.num_identities))
            num_frames = int(rng.uniform(*spec.seconds) * FPS)
            background = str(rng.choice(backgrounds)) if spec.background == "mixed" else spec.background
            sample_seed = spec.seed * 1_000_003 + index  # distinct per sample and per dataset seed
            # Drawn from a generator of its own: a share of 0 leaves every other draw, so older datasets, as they were.
            decoupled = bool(np.random.default_rng([spec.seed, index, 0xDEC]).random() < spec.decoupled_share)
            sample = make_sample(
                identity_seed, sample_seed, num_frames, spec.size, background=background, decoupled=decoupled
            )
            row = write_sample(root, f"s{index:06d}", sample, sample_seed, spec.size)
            metadata.write(json.dumps(row) + "\n")
            if progress:
                print(f"[{index + 1}/{spec.num_samples}] {row['id']}: identity {identity_seed}, {num_frames} frames")
    return root


def read_metadata(root: str | Path) -> Iterator[dict]:
    """Rows of ``metadata.jsonl`` with paths made absolute."""
    root = Path(root)
    with open(root / METADATA_FILE) as metadata:
        for line in metadata:
            if line.strip():
                row = json.loads(line)
                for key in ("video", "audio", "labels", "reference", "audio_features"):
                    if row.get(key):
                        row[key] = str(root / row[key])
                yield row
