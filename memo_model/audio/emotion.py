"""Audio emotion: the label set, detection from audio and the per-clip majority vote (paper §4.2, appendix E).

Dimension legend: n audio samples (16 kHz), W detector windows, T video frames, C clips, K emotions (9).

The paper detects emotion "at the segment level": each frame's emotion comes from a 3 s window of audio around
it, and each segment takes the emotion most frequent among its frames. The official code
(docs/CHECKPOINT.md §1.4, audio_utils.py:149-236; video_pipeline.py:240-242) does this as follows, reproduced here:

  1. windows (``emotion_windows``): samples [0, 1 s) take the label of the first 2 s; for i = 1 s, 2 s, … < n − 1 s
     samples [i, i + 1 s) take the label of the window [i − 1 s, i + 2 s) (3 s long, 1 s hop); the last 1 s takes
     the label of the last 2 s. Later assignments overwrite earlier ones; audio of 2 s or less is one window;
  2. detection (``EmotionDetector``): official = emotion2vec_plus_large features of the layer-normalised window,
     averaged over time, through the MLP classifier head and a softmax (``Emotion2VecDetector``);
  3. frames (``frame_sample_indices``): the per-sample label array is nearest-interpolated to T frames, where T is
     the frame count padded to whole 16-frame clips — so frame t reads sample ⌊t · n / T⌋, not t · 16000 / fps;
  4. clips (``clip_labels``): ``torch.mode`` over each clip's 16 frame labels; ties go to the smallest index.

Where the official code keeps only the argmax, this module keeps the probabilities, so the app can show how sure
the detector was (``EmotionTrack``). Which emotion each clip is finally generated with — the person's overrides,
their precedence, the segments shown — is decided in one place, ``memo_model.pipelines.emotions``.

The official checkpoint uses the nine emotion2vec classes below, in this order (memo issue #23); the paper's eight
emotions are the first eight without "unknown". Index ``len(EMOTION_LABELS)`` (9) is the "no emotion" row of every
Emo-AdaNorm embedding table, used for classifier-free guidance.

torch, librosa, diffusers and funasr are imported only where they are used: importing ``EMOTION_LABELS`` is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from memo_model.audio.io import SAMPLE_RATE
from memo_model.errors import InputError, SetupError

if TYPE_CHECKING:
    import torch

    from memo_model.models.emotion_classifier import AudioEmotionClassifier

EMOTION_LABELS: tuple[str, ...] = (
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "neutral",
    "other",
    "sad",
    "surprised",
    "unknown",
)
NUM_EMOTIONS = len(EMOTION_LABELS)
NO_EMOTION = NUM_EMOTIONS  # index of the unconditional embedding row

# What a person can pick in the UI and what the synthetic world renders: everything but "unknown".
SELECTABLE_EMOTIONS: tuple[str, ...] = EMOTION_LABELS[:-1]


def emotion_index(label: str) -> int:
    """Index of an emotion label; raises a ValueError listing the valid labels."""
    try:
        return EMOTION_LABELS.index(label.strip().lower())
    except ValueError:
        raise ValueError(f"Unknown emotion {label!r}; choose one of: {', '.join(EMOTION_LABELS)}.") from None


OFFICIAL_FPS = 30  # configs/inference.yaml
# Frames per generated clip (configs/inference.yaml); the same value as memo_model.audio.features.CLIP_LENGTH,
# not imported from there because that module imports torch.
CLIP_LENGTH = 16
HOP_SECONDS = 1  # each 3 s window labels the middle second of it (audio_utils.py:217-226)
EDGE_WINDOW_SECONDS = 2  # the first and the last second are labelled from the first / last 2 s
CONTEXT_SECONDS = 1  # a middle window reaches 1 s before and 1 s after the second it labels
OFFICIAL_EMOTION2VEC = "iic/emotion2vec_plus_large"  # ModelScope id (configs/inference.yaml)


# --- 1. windows: where the detector listens (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class EmotionWindows:
    """The official windowing of ``num_samples`` samples.

    ``windows``: the distinct sample ranges [start, stop) given to the detector, W of them, in time order.
    ``spans``: consecutive sample ranges [start, stop) tiling [0, num_samples); span i takes the label of
    ``windows[span_windows[i]]``.
    """

    num_samples: int
    windows: tuple[tuple[int, int], ...]
    spans: tuple[tuple[int, int], ...]
    span_windows: tuple[int, ...]

    def window_of_samples(self, samples: np.ndarray) -> np.ndarray:
        """Index of the window that labels each given sample index: (m,) -> (m,)."""
        starts = np.array([start for start, _ in self.spans])
        span = np.searchsorted(starts, samples, side="right") - 1
        return np.asarray(self.span_windows)[span]


def emotion_windows(num_samples: int, sample_rate: int = SAMPLE_RATE) -> EmotionWindows:
    """The official windows and which samples each one labels (docs/CHECKPOINT.md §1.4), without the per-sample array.

    Written as the official code paints its label array — first window everywhere, then the 3 s windows second by
    second, then the last window over the last second — with later paints cut out of earlier ones. Windows are
    clipped to the audio, so audio of 2 s or less is one window, the whole clip, for every sample.
    """
    if num_samples < 1:
        raise InputError("The audio is empty — use a recording with some speech in it.")
    second = HOP_SECONDS * sample_rate
    edge = EDGE_WINDOW_SECONDS * sample_rate
    context = CONTEXT_SECONDS * sample_rate
    last_second = max(0, num_samples - second)  # where the last window's paint starts; it overwrites what follows
    painted = [(0, min(second, last_second), (0, min(edge, num_samples)))]
    for start in range(second, num_samples - second, second):
        window = (start - context, min(start + second + context, num_samples))
        painted.append((start, min(start + second, last_second), window))
    painted.append((last_second, num_samples, (max(0, num_samples - edge), num_samples)))

    windows: dict[tuple[int, int], int] = {}
    spans: list[tuple[int, int]] = []
    span_windows: list[int] = []
    for start, stop, window in painted:
        if start >= stop:
            continue
        index = windows.setdefault(window, len(windows))
        if span_windows and span_windows[-1] == index:  # the same window on both sides: one span
            spans[-1] = (spans[-1][0], stop)
        else:
            spans.append((start, stop))
            span_windows.append(index)
    return EmotionWindows(num_samples, tuple(windows), tuple(spans), tuple(span_windows))


def frame_sample_indices(num_samples: int, num_frames: int) -> np.ndarray:
    """The sample whose label each video frame takes: (num_frames,) int64.

    The official code nearest-interpolates its per-sample label array to the frame count with
    ``F.interpolate(mode="nearest")``, whose CPU kernel reads sample min(⌊t · s⌋, n − 1) for frame t, with the scale
    s = n / T computed in float32; this does the same arithmetic (tested against torch). Because T is the frame count
    padded to whole clips, the frames are spread over the real audio: frame t reads time t · n / (T · 16000), up to
    half a clip earlier than the frame's own time at the end of the audio. That is the official mapping, kept.
    """
    if num_samples < 1 or num_frames < 1:
        raise ValueError(f"Need at least one sample and one frame; got {num_samples} samples, {num_frames} frames.")
    scale = np.float32(num_samples) / np.float32(num_frames)
    frames = np.arange(num_frames, dtype=np.float32)
    return np.minimum(np.floor(frames * scale).astype(np.int64), num_samples - 1)


# --- 2. detectors: probabilities per window ---------------------------------------------------------------------


class EmotionDetector(Protocol):
    """Anything that gives emotion probabilities for windows of a waveform."""

    def window_probabilities(self, waveform: np.ndarray, windows: Sequence[tuple[int, int]]) -> np.ndarray:
        """waveform (n,) float32 mono at 16 kHz; windows: sample ranges [start, stop) -> (W, NUM_EMOTIONS)."""
        ...


def _check_classifier(classifier: AudioEmotionClassifier) -> None:
    if classifier.config.num_emotions != NUM_EMOTIONS:
        raise ValueError(
            f"The emotion classifier has {classifier.config.num_emotions} classes; MEMO uses {NUM_EMOTIONS} "
            f"({', '.join(EMOTION_LABELS)})."
        )


def _classify(classifier: AudioEmotionClassifier, features: torch.Tensor) -> np.ndarray:
    """features (W, input_dim) -> probabilities (W, K) as float32 numpy."""
    import torch

    with torch.inference_mode():
        probabilities = classifier(features.to(classifier.device, classifier.dtype))
    return probabilities.float().cpu().numpy()


DEFAULT_N_MELS = 40
MEL_FFT = 400  # 25 ms analysis window at 16 kHz, the usual speech front end
MEL_HOP = 160  # 10 ms hop
MEL_LOG_FLOOR = 1e-6  # keeps log finite in digital silence
LOG_MEL_STATISTICS_DIM = 2 * DEFAULT_N_MELS  # output size of log_mel_statistics at the default n_mels


def log_mel_statistics(waveform: np.ndarray, n_mels: int = DEFAULT_N_MELS) -> torch.Tensor:
    """A light emotion feature of one window: (2 · n_mels,) float32 = per-band mean, then per-band standard deviation,
    of the log-mel spectrogram over time (``LOG_MEL_STATISTICS_DIM`` = 80 at the default 40 bands).

    Loudness is kept (no normalisation of the window): how loud and how varied a voice is are emotion cues.
    """
    import librosa
    import torch

    power = librosa.feature.melspectrogram(
        y=np.asarray(waveform, dtype=np.float32), sr=SAMPLE_RATE, n_fft=MEL_FFT, hop_length=MEL_HOP, n_mels=n_mels
    )  # (n_mels, time)
    log_mel = np.log(power + MEL_LOG_FLOOR)
    return torch.from_numpy(np.concatenate([log_mel.mean(axis=1), log_mel.std(axis=1)]).astype(np.float32))


class ClassifierHeadDetector:
    """``embed`` maps a window of samples to a feature (input_dim,); the classifier head gives probabilities.

    The bundled MEMO-Tiny uses it with a light feature such as ``log_mel_statistics``; tests use it with a tiny
    untrained head.
    """

    def __init__(self, embed: Callable[[np.ndarray], torch.Tensor], classifier: AudioEmotionClassifier):
        _check_classifier(classifier)
        self.embed = embed
        self.classifier = classifier.eval()

    def window_probabilities(self, waveform: np.ndarray, windows: Sequence[tuple[int, int]]) -> np.ndarray:
        import torch

        expected = (self.classifier.config.input_dim,)
        features = []
        for start, stop in windows:
            feature = self.embed(waveform[start:stop])
            if tuple(feature.shape) != expected:
                raise ValueError(
                    f"The emotion feature function returned shape {tuple(feature.shape)}; the classifier expects "
                    f"{expected} (its input_dim)."
                )
            features.append(feature)
        return _classify(self.classifier, torch.stack(features))  # (W, input_dim) -> (W, K)


class Emotion2VecDetector:
    """The official detector: emotion2vec_plus_large (funasr) features, averaged over time, into the classifier head.

    Per window, as audio_utils.py:204-214: ``F.layer_norm`` over the whole window, ``extract_features`` →
    ``feats["x"]`` (1, t, 1024), mean over time → (1, 1024), classifier → softmax. Windows differ in length, so
    they run one at a time, as in the official code (padding a batch would change the layer norm and the mean).
    """

    REQUIRED_FILES = ("config.yaml", "model.pt")  # what funasr reads from a local emotion2vec folder

    def __init__(self, model_dir: str | Path, classifier: AudioEmotionClassifier, device: str = "cpu"):
        _check_classifier(classifier)
        folder = Path(model_dir)
        download = (
            f"Download {OFFICIAL_EMOTION2VEC} on a machine with internet "
            f"(`modelscope download --model {OFFICIAL_EMOTION2VEC} --local_dir checkpoints/emotion2vec_plus_large`) "
            "and pass that folder."
        )
        if not folder.is_dir():
            raise SetupError(f"The emotion2vec model folder {folder} does not exist. {download}")
        missing = [name for name in self.REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise SetupError(f"{folder} is not an emotion2vec model folder (no {', '.join(missing)}). {download}")
        try:
            from funasr import AutoModel
        except ImportError as error:
            raise SetupError(
                "The official emotion detector needs the packages funasr and modelscope, which are not installed: "
                "run `pip install -r requirements-official.txt` (or use the bundled model, which needs neither)."
            ) from error
        self.model = AutoModel(model=str(folder), device=device, disable_update=True).model.eval()
        self.classifier = classifier.to(device).eval()
        self.device = device

    def window_probabilities(self, waveform: np.ndarray, windows: Sequence[tuple[int, int]]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        features = []
        with torch.inference_mode():
            for start, stop in windows:
                samples = torch.as_tensor(waveform[start:stop], dtype=torch.float32, device=self.device)
                samples = F.layer_norm(samples, samples.shape).view(1, -1)  # (1, n): emotion2vec's input scaling
                hidden = self.model.extract_features(samples)["x"]  # (1, t, 1024)
                features.append(hidden.mean(dim=1))  # (1, 1024)
        return _classify(self.classifier, torch.cat(features))  # (W, 1024) -> (W, K)


# --- 3. frames and clips --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EmotionTrack:
    """Detected emotion per video frame: ``frame_probabilities`` (T, K), ``frame_labels`` (T,) = their argmax."""

    frame_probabilities: np.ndarray
    frame_labels: np.ndarray
    fps: float

    def __post_init__(self):
        probabilities = np.array(self.frame_probabilities, dtype=np.float32)  # a copy: the caller's array stays theirs
        labels = np.array(self.frame_labels, dtype=np.int64)
        if (
            probabilities.ndim != 2
            or probabilities.shape[1] != NUM_EMOTIONS
            or labels.shape != probabilities.shape[:1]
        ):
            raise ValueError(
                f"An emotion track needs probabilities (T, {NUM_EMOTIONS}) and labels (T,); "
                f"got {probabilities.shape} and {labels.shape}."
            )
        probabilities.setflags(write=False)  # frozen means frozen: nobody edits a track under its segments
        labels.setflags(write=False)
        object.__setattr__(self, "frame_probabilities", probabilities)
        object.__setattr__(self, "frame_labels", labels)

    @classmethod
    def from_probabilities(cls, frame_probabilities: np.ndarray, fps: float) -> EmotionTrack:
        probabilities = np.asarray(frame_probabilities, dtype=np.float32)
        return cls(probabilities, probabilities.argmax(axis=-1), fps)

    @property
    def num_frames(self) -> int:
        return len(self.frame_labels)

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (the padded length when T was padded to whole clips)."""
        return self.num_frames / self.fps


def detect_emotions(
    waveform: np.ndarray, detector: EmotionDetector, fps: float = OFFICIAL_FPS, num_frames: int | None = None
) -> EmotionTrack:
    """Emotion probabilities for every video frame of ``waveform`` (n,) float32 mono 16 kHz.

    ``num_frames`` defaults to the official padded count: ⌈n / 16000 · fps⌉ rounded up to whole clips of
    ``CLIP_LENGTH`` frames. The official code detects on the original mix (not the vocal stem), first channel.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"Expected a mono waveform (n,); got shape {waveform.shape}.")
    plan = emotion_windows(len(waveform))
    window_probabilities = np.asarray(detector.window_probabilities(waveform, list(plan.windows)), dtype=np.float32)
    if window_probabilities.shape != (len(plan.windows), NUM_EMOTIONS):
        raise ValueError(
            f"The emotion detector returned shape {window_probabilities.shape}; expected "
            f"({len(plan.windows)}, {NUM_EMOTIONS}) for {len(plan.windows)} windows."
        )
    if num_frames is None:
        from memo_model.audio.features import padded_frame_count

        num_frames = padded_frame_count(len(waveform), fps, CLIP_LENGTH)
    frame_windows = plan.window_of_samples(frame_sample_indices(len(waveform), num_frames))  # (T,)
    return EmotionTrack.from_probabilities(window_probabilities[frame_windows], fps)  # (T, K)


def clip_labels(frame_labels: np.ndarray, clip_length: int = CLIP_LENGTH) -> np.ndarray:
    """The majority label of each clip of ``clip_length`` frames: (T,) -> (⌈T / clip_length⌉,) int64.

    Ties go to the smallest label index, as ``torch.mode`` on the CPU (video_pipeline.py:240-242); a last, partial
    clip votes over the frames it has.
    """
    labels = np.asarray(frame_labels, dtype=np.int64)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"Expected frame labels (T,) with T >= 1; got shape {labels.shape}.")
    if clip_length < 1:
        raise ValueError(f"clip_length must be at least 1; got {clip_length}.")
    if labels.min() < 0 or labels.max() >= NUM_EMOTIONS:
        raise ValueError(
            f"Frame labels must be emotion indices 0..{NUM_EMOTIONS - 1}; got {labels.min()}..{labels.max()}."
        )
    votes = [
        np.bincount(labels[start : start + clip_length], minlength=NUM_EMOTIONS)
        for start in range(0, len(labels), clip_length)
    ]
    return np.argmax(np.stack(votes), axis=1)  # argmax keeps the first maximum: the smallest index on a tie
