"""What every panel of the page shares: the active pipeline and its lock, the cancel events of running jobs, and
caches. The handlers live in one file per panel (``model_panel.py``, ``portrait_panel.py``, ``speech_panel.py``,
``emotion_panel.py``, ``runs.py``) and take one ``StudioService``.

No tensor work happens in the app (it never imports torch): the pipeline is loaded and called through
``memo_model``'s public API.
"""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from memo_app.settings import AppSettings
from memo_model.audio.emotion import EmotionTrack
from memo_model.audio.io import SAMPLE_RATE, load_audio
from memo_model.errors import InputError, SetupError
from memo_model.pipelines.emotions import detect_track
from memo_model.pipelines.estimate import clips_for
from memo_model.pipelines.request import CLIP_FRAMES, LIMITS, OFFICIAL_GUIDANCE, OFFICIAL_STEPS, PREVIEW_STEPS
from memo_model.vision.face import PreparedPortrait, load_image, prepare_portrait

NO_MODEL_MESSAGE = (
    "**No model loaded**: the bundled MEMO-Tiny is not in this checkout yet — enter a weights folder or hub id "
    "in the Model panel."
)
PAPER_MEMORY_DECAY = 0.9  # paper, appendix D: what "the model's memory decay" is for the official weights
ANALYSIS_CACHE = 8  # analysed audio files kept, so edits re-plot without re-running the detector
PORTRAIT_CACHE = 4  # prepared portraits kept: the Portrait panel, the output size and the estimate share one


@dataclass(frozen=True)
class AudioAnalysis:
    """One analysed audio file: the waveform and, with a detector, the frame-level emotion track."""

    waveform: np.ndarray  # (n,) mono float32 at 16 kHz
    fps: int
    track: EmotionTrack | None  # (T, K) over the frames padded to whole clips of 16
    notes: tuple[str, ...] = ()  # what a person should know about the file (it is truncated)

    @property
    def duration(self) -> float:
        return len(self.waveform) / SAMPLE_RATE

    @property
    def num_clips(self) -> int:
        return clips_for(self.duration, self.fps)


def pixels_digest(image: Image.Image) -> str:
    return hashlib.sha1(image.tobytes() + str(image.size).encode()).hexdigest()


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class StudioService:
    """State shared by all visitors: the active pipeline, analysed audio, and the cancel events of running jobs."""

    def __init__(self, settings: AppSettings):
        self.settings = settings
        self.settings.output_dir.mkdir(parents=True, exist_ok=True)
        self.pipeline = None
        self.model_error: str | None = None
        self._model_lock = threading.Lock()
        self._cancel_events: dict[str, threading.Event] = {}
        self._analyses: OrderedDict[tuple, AudioAnalysis] = OrderedDict()
        self._portraits: OrderedDict[tuple, PreparedPortrait] = OrderedDict()
        self._portrait_lock = threading.Lock()
        self._synthetic_examples = self._example_digests()
        if settings.load_model_at_start:
            self.load_model(settings.weights or "")

    # --- the pipeline -----------------------------------------------------------------------------------------

    def load_model(self, weights: str | None) -> bool:
        """Load weights (a folder, a hub id, or empty = the bundled MEMO-Tiny); on error keep the model we had and
        say why in ``model_error``. True when the new model loaded."""
        from memo_model.loading import CheckpointError, load_pipeline  # imports torch: only when a model is loaded

        source = (weights or "").strip() or None
        with self._model_lock:
            try:
                self.pipeline = load_pipeline(source, device=self.settings.device)
                self.model_error = None
            except (SetupError, CheckpointError, OSError, ValueError) as error:
                if source is None and self.pipeline is None:
                    self.model_error = f"{NO_MODEL_MESSAGE}\n\n_{error}_"
                else:
                    self.model_error = f"Could not load `{source or 'the bundled model'}`: {error}"
            self._analyses.clear()  # detections depend on the model's detector
        return self.model_error is None

    def default_steps(self) -> int:
        """The active model's denoising steps for the steps slider (the official 20 without a model)."""
        return OFFICIAL_STEPS if self.pipeline is None else self.pipeline.model_info.default_steps

    def preview_steps(self) -> int:
        """The active model's preview steps (8 without a model)."""
        return PREVIEW_STEPS if self.pipeline is None else self.pipeline.model_info.preview_steps

    def default_guidance(self) -> float:
        """The active model's guidance scale for all three sliders (the official 3.5 without a model)."""
        return OFFICIAL_GUIDANCE if self.pipeline is None else self.pipeline.model_info.default_guidance

    def memory_decay(self) -> float:
        """The active model's memory decay (the paper's 0.9 without a model)."""
        return PAPER_MEMORY_DECAY if self.pipeline is None else self.pipeline.diffusion_net.config.memory_decay

    # --- caches -----------------------------------------------------------------------------------------------

    def analysis(self, audio: str | None, fps) -> AudioAnalysis:
        """The audio's waveform and emotion track at ``fps``; kept for the last few files, so edits re-plot fast."""
        if not audio:
            raise InputError("Upload or record an audio file first (or pick an example).")
        fps = int(fps)
        limit = LIMITS["fps"]
        if not limit.minimum <= fps <= limit.maximum:
            raise InputError(f"{limit.label} must be between {limit.minimum:g} and {limit.maximum:g}; got {fps}.")
        key = (file_digest(audio), fps, id(self.pipeline))
        if key in self._analyses:
            self._analyses.move_to_end(key)
            return self._analyses[key]
        notes: list[str] = []
        waveform = load_audio(audio, max_seconds=self.settings.max_audio_seconds, notes=notes)
        detector = None if self.pipeline is None else self.pipeline.emotion_detector
        analysis = AudioAnalysis(waveform, fps, detect_track(waveform, detector, fps, CLIP_FRAMES), tuple(notes))
        self._analyses[key] = analysis
        while len(self._analyses) > ANALYSIS_CACHE:
            self._analyses.popitem(last=False)
        return analysis

    def portrait(self, image: str, resolution: int, crop_scale: float) -> PreparedPortrait:
        """The portrait as a run at ``resolution`` prepares it (face found, crop cut); kept for the last few pictures,
        so the Portrait panel, the output size and the time estimate find the face once. One at a time: two panels
        asking for the same new picture wait for one detection."""
        if not Path(image).is_file():
            return prepare_portrait(image, int(resolution), float(crop_scale))  # says what is wrong with the path
        key = (file_digest(image), int(resolution), float(crop_scale))
        with self._portrait_lock:
            if key in self._portraits:
                self._portraits.move_to_end(key)
                return self._portraits[key]
            portrait = prepare_portrait(image, int(resolution), float(crop_scale))
            self._portraits[key] = portrait
            while len(self._portraits) > PORTRAIT_CACHE:
                self._portraits.popitem(last=False)
            return portrait

    def _example_digests(self) -> set[str]:
        digests = set()
        for path in sorted(self.settings.examples_dir.glob("synthetic_*.png")):
            try:
                digests.add(pixels_digest(load_image(path)))
            except InputError:
                continue
        return digests

    def is_synthetic_example(self, image: Image.Image) -> bool:
        """Whether these pixels are one of the bundled synthetic example portraits."""
        return pixels_digest(image) in self._synthetic_examples

    # --- cancel events: one per visitor's running job ---------------------------------------------------------

    def start_job(self, session: str) -> threading.Event:
        """The event that stops ``session``'s new job when set."""
        event = threading.Event()
        self._cancel_events[session] = event
        return event

    def end_job(self, session: str) -> None:
        self._cancel_events.pop(session, None)

    def is_running(self, session: str) -> bool:
        """Whether ``session`` has a run going on."""
        return session in self._cancel_events

    def cancel_job(self, session: str) -> bool:
        """Stop ``session``'s running job; False when it has none."""
        event = self._cancel_events.get(session)
        if event is None:
            return False
        event.set()
        return True
