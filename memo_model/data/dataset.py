"""Training clips read from the project's on-disk dataset format (synthetic and real data alike).

The format is written by ``memo_model.data.synthetic.dataset_writer`` and by the real-data preprocessing; see
that module's docstring. Each item is one clip (docs/CHECKPOINT.md §4.4, paper §4.2 and appendix D):

- ``pixels`` (f, 3, H, W) in [-1, 1]: the frames to generate;
- ``past_pixels`` (p_max, 3, H, W): the frames just before the clip, oldest first; where the video has fewer, the
  reference image fills in — exactly what the first clip sees at inference;
- ``reference_pixels`` (3, H, W): the row's ``reference`` image when it has one (the same person with a
  *different* emotion: emotion-decoupled training, §4.2), else a random frame of the video;
- ``face_embedding`` (e,): cached under ``face_embedding`` or computed from the reference with the embedder given;
- ``audio_features`` (f, window, l, c): cached per-frame features (``audio_features``, (T, l, c) ``.npy``, as the
  official prepare_data stores them), windowed here with edges clamped;
- ``emotion``: the clip's label, the majority of its frame labels (ties -> the smaller index), or "none";
- ``clip_start``: the clip's first frame in its video (to look up the row's other per-frame labels).

With ``latents`` (a folder written by ``data.latent_cache.cache_latents``) the three pixel entries are replaced by
the same frames' VAE posteriors: ``latent_mean`` and ``latent_std`` (f, c, h, w) for the clip, ``past_latents``
(p_max, c, h, w) and ``reference_latent`` (c, h, w), posterior means; the clip, past frames and reference are
chosen exactly as without the cache.

Legend: f clip frames, p past frames, H W pixels, e embedding size, l feature layers, c feature (or latent)
channels, h w latent size.
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from torch.utils.data import Dataset

from memo_model.audio.emotion import NO_EMOTION
from memo_model.audio.features import WINDOW, window_indices

METADATA_FILE = "metadata.jsonl"
FEATURES_KEY = "audio_features"
FACE_KEY = "face_embedding"


def read_rows(root: str | Path) -> list[dict]:
    path = Path(root) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {root} a dataset folder?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def decode_video(path: str | Path, size: int) -> np.ndarray:
    """All frames of a video resized to size x size: (n, size, size, 3) uint8."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-vf", f"scale={size}:{size}:flags=area"])
    next(reader)  # metadata
    frames = [np.frombuffer(chunk, dtype=np.uint8).reshape(size, size, 3) for chunk in reader]
    return np.stack(frames)


def read_reference(root: str | Path, row: dict, size: int) -> np.ndarray:
    """A row's reference image resized to size x size: (size, size, 3) uint8."""
    image = Image.open(Path(root) / row["reference"]).convert("RGB")
    return np.array(image.resize((size, size), Image.Resampling.BOX))


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def clip_emotion(frame_labels: list[int] | None, start: int, stop: int) -> int:
    """Majority label of frames [start, stop); ties go to the smaller index (official torch.mode on CPU)."""
    if not frame_labels:
        return NO_EMOTION
    counts = np.bincount(np.asarray(frame_labels[start:stop], dtype=np.int64), minlength=NO_EMOTION)
    return int(np.argmax(counts))


class TalkingFaceDataset(Dataset):
    """Random clips from a dataset folder; ``__getitem__`` draws the clip start with the given generator seed."""

    def __init__(
        self,
        root: str | Path,
        resolution: int,
        clip_frames: int = 16,
        max_past_frames: int = 16,
        identity_embedder: Callable | None = None,
        seed: int = 0,
        cache_frames: bool = False,
        latents: str | Path | None = None,
    ):
        self.root = Path(root)
        self.rows = [row for row in read_rows(self.root) if FEATURES_KEY in row]
        if not self.rows:
            raise ValueError(f"No rows of {self.root / METADATA_FILE} have cached audio features; cache them first.")
        self.resolution = resolution
        self.clip_frames = clip_frames
        self.max_past_frames = max_past_frames
        self.identity_embedder = identity_embedder
        self.seed = seed
        self.epoch = 0
        # Decoded videos kept in memory (uint8; ~0.7 GB for MEMO-Tiny's 32 minutes at 64 px): decoding a video
        # took as long as a stage-1 training step. Each DataLoader worker process holds its own copy.
        self._frames: dict[int, np.ndarray] | None = {} if cache_frames else None
        self.latents = None if latents is None else Path(latents)
        self._latents: dict[int, dict[str, torch.Tensor]] = {}  # ~450 MB for MEMO-Tiny's 32 minutes

    def __len__(self) -> int:
        return len(self.rows)

    def _video(self, index: int) -> np.ndarray:
        if self._frames is None:
            return decode_video(self.root / self.rows[index]["video"], self.resolution)
        if index not in self._frames:
            self._frames[index] = decode_video(self.root / self.rows[index]["video"], self.resolution)
        return self._frames[index]

    def _row_latents(self, index: int) -> dict[str, torch.Tensor]:
        if index not in self._latents:
            path = self.latents / f"{self.rows[index]['id']}.safetensors"
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: run cache_latents on {self.root} again.")
            self._latents[index] = load_file(str(path))
        return self._latents[index]

    def _reference(
        self, row: dict, frames: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, int | None]:
        """The reference image and, when it is a frame of the video, that frame's index."""
        if row.get("reference"):
            return read_reference(self.root, row, self.resolution), None
        frame = int(rng.integers(len(frames)))
        return frames[frame], frame

    def _face_embedding(self, row: dict, reference: np.ndarray) -> torch.Tensor:
        if row.get(FACE_KEY):
            return torch.from_numpy(np.load(self.root / row[FACE_KEY], allow_pickle=False)).float()
        if self.identity_embedder is None:
            raise ValueError(f"Row {row['id']} has no cached {FACE_KEY} and no identity embedder was given.")
        return torch.from_numpy(np.asarray(self.identity_embedder(Image.fromarray(reference)).embedding)).float()

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        # With cached latents the video is decoded only where a frame of it becomes the reference image.
        latents_only = self.latents is not None and bool(row.get("reference"))
        frames = None if latents_only else self._video(index)
        num_frames = len(self._row_latents(index)["mean"]) if latents_only else len(frames)
        features = torch.from_numpy(np.load(self.root / row[FEATURES_KEY], allow_pickle=False)).float()  # (T, l, c)
        usable = min(num_frames, len(features))
        if usable < self.clip_frames:
            raise ValueError(f"Row {row['id']} has {usable} frames; a clip needs {self.clip_frames}.")
        start = int(rng.integers(0, usable - self.clip_frames + 1))
        stop = start + self.clip_frames

        reference, reference_frame = self._reference(row, None if frames is None else frames[:usable], rng)
        first_past = max(0, start - self.max_past_frames)
        fill = self.max_past_frames - (start - first_past)  # the reference fills in before the video's start

        labels = None
        if row.get("labels"):
            labels = json.loads((self.root / row["labels"]).read_text()).get("emotion")
        item = {
            "face_embedding": self._face_embedding(row, reference),
            "audio_features": features[window_indices(start, stop, usable, WINDOW)],  # (f, window, l, c)
            "emotion": torch.tensor(clip_emotion(labels, start, stop)),
            "clip_start": torch.tensor(start),
        }
        if self.latents is None:
            past = np.concatenate([np.repeat(reference[None], fill, axis=0), frames[first_past:start]])
            item["pixels"] = to_pixels(frames[start:stop])
            item["past_pixels"] = to_pixels(past)
            item["reference_pixels"] = to_pixels(reference[None])[0]
            return item
        cached = self._row_latents(index)
        mean = cached["mean"]  # (T, c, h, w)
        reference_latent = mean[reference_frame] if reference_frame is not None else cached["reference_mean"][0]
        item["latent_mean"] = mean[start:stop]
        item["latent_std"] = cached["std"][start:stop]
        item["past_latents"] = torch.cat([reference_latent.expand(fill, -1, -1, -1), mean[first_past:start]])
        item["reference_latent"] = reference_latent
        return item


def cache_audio_features(root: str | Path, extractor, fps: float | None = None) -> int:
    """Compute per-frame audio features (T, l, c) for rows without them; returns how many were written.

    Uses the centre of each window of the extractor (its per-frame features) and keeps the video's frame count.
    """
    from memo_model.audio.io import load_audio

    root = Path(root)
    rows = read_rows(root)
    (root / FEATURES_KEY).mkdir(exist_ok=True)
    written = 0
    for row in rows:
        if row.get(FEATURES_KEY) and (root / row[FEATURES_KEY]).is_file():
            continue
        waveform = load_audio(root / row["audio"])
        frames = row["num_frames"]
        windows = extractor(waveform, fps or row.get("fps", 30))  # (T_padded, window, l, c)
        per_frame = windows[:frames, WINDOW // 2].numpy().astype(np.float32)
        relative = f"{FEATURES_KEY}/{row['id']}.npy"
        np.save(root / relative, per_frame, allow_pickle=False)
        row[FEATURES_KEY] = relative
        written += 1
    (root / METADATA_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return written
