"""The face analyzer: a small CNN that reads the synthetic world's ground truth back from any frame.

It is the measuring instrument of the synthetic world — the stand-in for SyncNet (mouth opening),
an expression classifier, ArcFace (identity embedding) and the Inception features of FID (``features``).
Trained by ``memo_model/tiny/analyzer.py`` on renders; weights ship in ``assets/analyzer/`` (config.json +
model.safetensors). ``score_video`` reads one video with it and scores the readings against whatever is known of
the video (``python -m memo_model synth score``).

Dimension legend: b batch, s input side (``image_size``), c channels, d feature dim, e embedding dim.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from memo_model.audio.emotion import SELECTABLE_EMOTIONS
from memo_model.data.synthetic.dataset_writer import read_video
from memo_model.data.synthetic.speech import SAMPLE_RATE, mouth_open_from_audio
from memo_model.metrics import expression_accuracy, frame_labels, identity_drift, identity_similarity, lip_sync

DEFAULT_ANALYZER_DIR = Path(__file__).resolve().parents[3] / "assets" / "analyzer"
HEAD_POSE_NAMES = ("yaw", "roll", "tx", "ty")
# Head pose targets are divided by these so every pose output has unit scale (see sample.HEAD_AMPLITUDE).
HEAD_POSE_SCALE = (0.6, 4.0, 0.02, 0.015)
# The first blocks still see edges and noise; the analyzer's training (with blur and noise augmentation) makes
# the final features blind to them, so image quality is read from these blocks' activation statistics.
TEXTURE_BLOCKS = 3


@dataclass(frozen=True)
class AnalyzerConfig:
    """Architecture hyper-parameters, saved as config.json next to the weights."""

    image_size: int = 96
    channels: tuple[int, ...] = (24, 32, 48, 64, 96)
    feature_dim: int = 128
    embedding_dim: int = 64
    num_expressions: int = len(SELECTABLE_EMOTIONS)


@dataclass
class AnalyzerOutput:
    """Per-frame readings. mouth_* (b,), expression_logits (b, 8), head_pose (b, 4) in HEAD_POSE_NAMES order,
    identity (b, e) unit-norm, features (b, d) and texture (b, t) for the two Fréchet distances."""

    mouth_open: torch.Tensor
    mouth_shape: torch.Tensor
    expression_logits: torch.Tensor
    head_pose: torch.Tensor
    identity: torch.Tensor
    features: torch.Tensor
    texture: torch.Tensor


def _conv_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FaceAnalyzer(nn.Module):
    def __init__(self, config: AnalyzerConfig = AnalyzerConfig()):
        super().__init__()
        self.config = config
        layers, previous = [], 3
        for i, channels in enumerate(config.channels):
            # One extra stride-1 conv at half resolution: lips and lids are only a few pixels tall.
            if i == 1:
                layers.append(_conv_block(previous, channels, 1))
                previous = channels
            layers.append(_conv_block(previous, channels, 2))
            previous = channels
        self.backbone = nn.Sequential(*layers)
        spatial = config.image_size // 2 ** len(config.channels)
        # Flatten the final grid instead of pooling it: where a feature sits (mouth vs brow) matters.
        self.to_features = nn.Sequential(
            nn.Flatten(), nn.Linear(previous * spatial * spatial, config.feature_dim), nn.ReLU(inplace=True)
        )
        self.mouth = nn.Linear(config.feature_dim, 2)
        self.expression = nn.Linear(config.feature_dim, config.num_expressions)
        self.head_pose = nn.Linear(config.feature_dim, len(HEAD_POSE_NAMES))
        self.identity = nn.Linear(config.feature_dim, config.embedding_dim)

    def forward(self, images: torch.Tensor) -> AnalyzerOutput:
        """images: (b, 3, s, s) float in [0, 1]."""
        x = images * 2 - 1
        texture = []
        for i, block in enumerate(self.backbone):
            x = block(x)  # (b, c, h, w)
            if i < TEXTURE_BLOCKS:
                texture.append(torch.cat([x.mean((2, 3)), x.std((2, 3))], dim=1))  # (b, 2c)
        features = self.to_features(x)  # (b, d)
        mouth = self.mouth(features)  # (b, 2)
        return AnalyzerOutput(
            mouth_open=mouth[:, 0],
            mouth_shape=mouth[:, 1],
            expression_logits=self.expression(features),
            head_pose=self.head_pose(features),
            identity=F.normalize(self.identity(features), dim=-1),
            features=features,
            texture=torch.cat(texture, dim=1),
        )


def save_analyzer(model: FaceAnalyzer, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(asdict(model.config), indent=2) + "\n")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, directory / "model.safetensors")
    return directory


def load_analyzer(directory: str | Path | None = None) -> FaceAnalyzer:
    """The analyzer from ``directory`` (default: the bundled assets/analyzer), in eval mode on CPU."""
    directory = Path(directory) if directory is not None else DEFAULT_ANALYZER_DIR
    weights = directory / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(
            f"No analyzer weights at {weights}. Train them with `python -m memo_model train-analyzer`."
        )
    config = json.loads((directory / "config.json").read_text())
    config["channels"] = tuple(config["channels"])
    model = FaceAnalyzer(AnalyzerConfig(**config))
    model.load_state_dict(load_file(weights))
    return model.eval()


def prepare_frames(frames: np.ndarray, image_size: int) -> torch.Tensor:
    """(f, h, w, 3) uint8 frames of any square size -> (f, 3, s, s) float in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"Expected frames shaped (frames, height, width, 3); got {frames.shape}.")
    if frames.shape[1] != image_size or frames.shape[2] != image_size:
        interpolation = cv2.INTER_AREA if frames.shape[1] > image_size else cv2.INTER_LINEAR
        frames = np.stack([cv2.resize(f, (image_size, image_size), interpolation=interpolation) for f in frames])
    return rearrange(torch.from_numpy(np.ascontiguousarray(frames)).float() / 255, "f h w c -> f c h w")


@torch.no_grad()
def analyze_frames(model: FaceAnalyzer, frames: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Readings for every frame as numpy arrays: mouth_open, mouth_shape (f,), expression (f,) class index
    into EMOTION_LABELS, expression_probs (f, 8), head_pose (f, 4) in natural units, identity (f, e),
    features (f, d) (content: who, which expression, mouth), texture (f, t) (sharpness, noise)."""
    outputs: dict[str, list[np.ndarray]] = {
        k: []
        for k in ("mouth_open", "mouth_shape", "expression_probs", "head_pose", "identity", "features", "texture")
    }
    scale = torch.tensor(HEAD_POSE_SCALE)
    for start in range(0, frames.shape[0], batch_size):
        out = model(prepare_frames(frames[start : start + batch_size], model.config.image_size))
        outputs["mouth_open"].append(out.mouth_open.numpy())
        outputs["mouth_shape"].append(out.mouth_shape.numpy())
        outputs["expression_probs"].append(out.expression_logits.softmax(-1).numpy())
        outputs["head_pose"].append((out.head_pose * scale).numpy())
        outputs["identity"].append(out.identity.numpy())
        outputs["features"].append(out.features.numpy())
        outputs["texture"].append(out.texture.numpy())
    result = {k: np.concatenate(v) for k, v in outputs.items()}
    result["expression"] = result["expression_probs"].argmax(-1)
    return result


# --- scoring one video -----------------------------------------------------------------------------------------


def video_frames(video: str | Path | np.ndarray) -> np.ndarray:
    """An mp4's frames, or the frames themselves: (f, h, w, 3) uint8."""
    return video if isinstance(video, np.ndarray) else read_video(video)


def _audio(audio: str | Path | np.ndarray) -> np.ndarray:
    if isinstance(audio, np.ndarray):
        return audio
    data, rate = sf.read(str(audio), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{audio} is sampled at {rate} Hz; resample it to {SAMPLE_RATE} Hz mono first.")
    return data.mean(axis=1)


def score_video(
    video: str | Path | np.ndarray,
    audio: str | Path | np.ndarray | None = None,
    labels: dict | str | Path | None = None,
    reference: str | Path | np.ndarray | None = None,
    requested_segments: list[dict] | None = None,
    analyzer: FaceAnalyzer | None = None,
) -> dict:
    """All per-video metrics that the given inputs allow: the synthetic SyncNet / expression / ArcFace measurements.

    video: mp4 path or (f, h, w, 3) uint8. audio: wav path or (n,) float at 16 kHz. labels: a labels JSON
    (dict or path) with the ground-truth "mouth_open" track and "segments". reference: the reference image
    (path or (h, w, 3) uint8). requested_segments: emotion segments the video was asked to show (defaults to
    the labels' segments; pass another track to test an emotion override). The lip-sync reference track is the
    labels' ground-truth mouth opening when known, else an estimate from the audio alone (``mouth_open_from_audio``).
    """
    analyzer = analyzer or load_analyzer()
    frames = video_frames(video)
    readings = analyze_frames(analyzer, frames)
    num_frames = frames.shape[0]
    if isinstance(labels, str | Path):
        labels = json.loads(Path(labels).read_text())
    scores: dict = {"num_frames": num_frames}

    # 1. Lip-sync against the audio-driven mouth track.
    if labels is not None and "mouth_open" in labels:
        target = np.asarray(labels["mouth_open"], dtype=np.float32)[:num_frames]
        scores["lip_sync_reference"] = "labels"
    elif audio is not None:
        target = mouth_open_from_audio(_audio(audio), num_frames)
        scores["lip_sync_reference"] = "audio"
    else:
        target = None
    if target is not None:
        scores["lip_sync"] = lip_sync(readings["mouth_open"][: len(target)], target).to_dict()

    # 2. Expression accuracy against the requested labels.
    segments = requested_segments if requested_segments is not None else (labels or {}).get("segments")
    if segments:
        scores["expression_accuracy"] = expression_accuracy(readings["expression"], frame_labels(segments, num_frames))

    # 3. Identity similarity to the reference image over time.
    if reference is not None:
        image = np.asarray(Image.open(reference).convert("RGB")) if isinstance(reference, str | Path) else reference
        reference_embedding = analyze_frames(analyzer, image[None])["identity"][0]
        scores["identity"] = identity_drift(identity_similarity(readings["identity"], reference_embedding))
    return scores
