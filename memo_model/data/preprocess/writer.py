"""Step 6 of the data pipeline: writing accepted clips in the project's one on-disk dataset format.

The format is the synthetic dataset's (``memo_model/data/synthetic/dataset_writer.py``), so training reads real and
synthetic data through one code path::

    metadata.jsonl              one row per clip (below); in a sharded run each rank writes metadata.rank{R}.jsonl
                                and ``merge_shards`` concatenates them
    videos/<id>.mp4             head crop, H.264 (yuv420p) at the pipeline's fps with the AAC audio muxed in
    audio/<id>.wav              16 kHz mono PCM, exactly num_frames / fps seconds
    labels/<id>.json            only with an emotion detector: per-frame "emotion" (indices into EMOTION_LABELS),
                                "segments", "reference_emotion", "fps", "sample_rate", "num_frames"
    reference/<id>.png          the clip's first frame (crop) — real data has no separately rendered reference
    face_embedding/<id>.npy     float32 (E,) identity embedding of the reference by the given IdentityEmbedder
                                (ThumbnailEmbedder offline: E = 16; InsightFaceEmbedder official: raw 512-d ArcFace
                                of the uncropped first frame, as prepare_data.py)
    audio_features/<id>.npy     only with a feature extractor: float32 (num_frames, L, C) per-frame features BEFORE
                                the ±2-frame windowing (as the official prepare_data stores (n_frames, 12, 768))

Row keys shared with synthetic rows: id, video, audio, labels, reference, num_frames, fps, sample_rate, size,
identity_seed (null for real data), seed (null), reference_emotion, emotions (the segments). Without an emotion
detector "labels", "reference_emotion" and "emotions" are null: the clip trains with the "no emotion" row.
Added keys: "face_embedding", "audio_features" (paths or null), "source" {"path", "start_frame", "end_frame"} and
"scores" (every measurement of the filters). Paths are relative to the dataset root.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from memo_model.audio.emotion import EMOTION_LABELS, EmotionDetector, detect_emotions
from memo_model.audio.features import AudioFeatureExtractor
from memo_model.audio.io import SAMPLE_RATE
from memo_model.data.preprocess.clip import Clip
from memo_model.data.synthetic.dataset_writer import METADATA_FILE, write_video
from memo_model.vision.face import IdentityEmbedder, ThumbnailEmbedder

FACE_EMBEDDING_DIR = "face_embedding"
AUDIO_FEATURES_DIR = "audio_features"  # the synthetic writer's FEATURES_DIR hook, filled here
__all__ = ["METADATA_FILE", "DatasetWriter", "emotion_labels"]


def emotion_labels(audio: np.ndarray, detector: EmotionDetector, num_frames: int, fps: float) -> dict:
    """Per-frame emotions of a clip's audio in the synthetic labels' layout (emotion, segments, reference_emotion)."""
    frame_labels = np.asarray(detect_emotions(audio, detector, fps, num_frames).frame_labels)  # (f,)
    changes = np.flatnonzero(np.diff(frame_labels)) + 1
    starts, ends = np.r_[0, changes], np.r_[changes, num_frames]
    segments = [
        {
            "emotion": int(frame_labels[s]),
            "label": EMOTION_LABELS[frame_labels[s]],
            "start_frame": int(s),
            "end_frame": int(e),
        }
        for s, e in zip(starts, ends, strict=True)
    ]
    return {
        "fps": fps,
        "sample_rate": SAMPLE_RATE,
        "num_frames": num_frames,
        "emotion": frame_labels.tolist(),
        "segments": segments,
        "reference_emotion": int(frame_labels[0]),  # the reference is the first frame
    }


class DatasetWriter:
    """Writes one accepted clip's files under ``root`` and returns its metadata row.

    embedder: identity embedding of the reference (default ``ThumbnailEmbedder(size=4)``, offline).
    emotion_detector: any ``EmotionDetector``; None leaves the emotion labels out.
    feature_extractor: any ``AudioFeatureExtractor``; None leaves the cached audio features out (training
        computes them then).
    """

    def __init__(
        self,
        root: str | Path,
        embedder: IdentityEmbedder | None = None,
        emotion_detector: EmotionDetector | None = None,
        feature_extractor: AudioFeatureExtractor | None = None,
    ):
        self.root = Path(root)
        self.embedder = embedder or ThumbnailEmbedder(size=4)
        self.emotion_detector = emotion_detector
        self.feature_extractor = feature_extractor

    def _path(self, folder: str, clip_id: str, suffix: str) -> tuple[str, Path]:
        relative = f"{folder}/{clip_id}{suffix}"
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        return relative, self.root / relative

    def write(self, clip: Clip) -> dict:
        num_frames, fps = clip.num_frames, clip.fps
        audio = np.zeros(round(num_frames * SAMPLE_RATE / fps), dtype=np.float32)  # exactly the video's length
        audio[: min(len(audio), len(clip.audio))] = clip.audio[: len(audio)]

        audio_path, audio_file = self._path("audio", clip.id, ".wav")
        sf.write(audio_file, audio, SAMPLE_RATE, subtype="PCM_16")
        video_path, video_file = self._path("videos", clip.id, ".mp4")
        write_video(video_file, clip.frames, audio_file, fps=fps)
        reference_path, reference_file = self._path("reference", clip.id, ".png")
        reference = Image.fromarray(clip.frames[0])
        reference.save(reference_file)

        full = clip.first_frame if clip.first_frame is not None else clip.frames[0]
        embedding = self.embedder(Image.fromarray(full) if self.embedder.reads_full_image else reference)
        embedding_path, embedding_file = self._path(FACE_EMBEDDING_DIR, clip.id, ".npy")
        np.save(embedding_file, np.asarray(embedding.embedding, dtype=np.float32))

        labels_path = features_path = None
        labels: dict = {}
        if self.emotion_detector is not None:
            labels = emotion_labels(audio, self.emotion_detector, num_frames, fps)
            labels_path, labels_file = self._path("labels", clip.id, ".json")
            labels_file.write_text(json.dumps(labels))
        if self.feature_extractor is not None:
            windows = self.feature_extractor(audio, fps)  # (T', W, L, C), T' padded to whole clips
            per_frame = windows[:num_frames, windows.shape[1] // 2]  # (f, L, C): the window's centre is frame i
            features_path, features_file = self._path(AUDIO_FEATURES_DIR, clip.id, ".npy")
            np.save(features_file, per_frame.numpy().astype(np.float32))

        return {
            "id": clip.id,
            "video": video_path,
            "audio": audio_path,
            "labels": labels_path,
            "reference": reference_path,
            "num_frames": num_frames,
            "fps": fps,
            "sample_rate": SAMPLE_RATE,
            "size": int(clip.frames.shape[1]),
            "identity_seed": None,  # real people
            "seed": None,
            "reference_emotion": labels.get("reference_emotion"),
            "emotions": labels.get("segments"),
            "face_embedding": embedding_path,
            "audio_features": features_path,
            "source": {"path": clip.source, "start_frame": clip.start_frame, "end_frame": clip.end_frame},
            "scores": {name: round(float(value), 4) for name, value in clip.scores.items()},
        }
