"""One request type for every caller: the CLI, the app and the tests build a ``GenerationRequest``.

``LIMITS`` is the single table of ranges and defaults; the app's sliders and the CLI's options read it, and
``GenerationRequest.validate()`` enforces it with messages a person can act on.
"""

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from memo_model.audio.emotion import EMOTION_LABELS
from memo_model.audio.features import padded_frame_count
from memo_model.audio.io import SAMPLE_RATE
from memo_model.errors import InputError
from memo_model.pipelines.guidance import GUIDANCE_LAYOUTS

OFFICIAL_GUIDANCE = 3.5  # configs/inference.yaml cfg_scale (one scale for everything)
OFFICIAL_STEPS = 20  # configs/inference.yaml num_inference_steps
PREVIEW_STEPS = 8  # a preview's steps unless the model says otherwise (manifest ``preview_steps``)
CLIP_FRAMES = 16  # frames generated per clip (paper appendix D)
MEMORY_MODES = ("full", "recent", "reference")  # see GenerationRequest


@dataclass(frozen=True)
class Limit:
    """Range, default and UI step of one numeric setting."""

    minimum: float
    maximum: float
    default: float | None
    step: float
    label: str
    help: str


LIMITS: dict[str, Limit] = {
    "steps": Limit(
        1, 100, OFFICIAL_STEPS, 1, "Denoising steps", "More steps: finer detail, proportionally slower (official: 20)."
    ),
    "reference_guidance": Limit(
        0.0, 10.0, OFFICIAL_GUIDANCE, 0.1, "Reference guidance", "How strongly the video keeps the portrait's look."
    ),
    "audio_guidance": Limit(
        0.0, 10.0, OFFICIAL_GUIDANCE, 0.1, "Audio guidance", "How strongly the lips follow the audio."
    ),
    "emotion_guidance": Limit(
        0.0, 10.0, OFFICIAL_GUIDANCE, 0.1, "Emotion strength", "How strongly expressions follow the emotion labels."
    ),
    "seed": Limit(0, 2**31 - 1, 42, 1, "Seed", "Same seed and settings give the same video."),
    "fps": Limit(10, 60, 30, 1, "Frames per second", "The models were trained at 30 fps."),
    "past_frames": Limit(1, 48, CLIP_FRAMES, 1, "Past frames", "Generated frames each new clip looks back on."),
    "memory_decay": Limit(
        0.5, 1.0, None, 0.01, "Memory decay", "How fast old frames fade from the motion memory (model default 0.9)."
    ),
    "crop_scale": Limit(1.0, 3.0, 1.8, 0.05, "Crop scale", "Size of the square crop around the face, in face boxes."),
    "preview_seconds": Limit(0.5, 30.0, 3.0, 0.5, "Preview length (s)", "A preview animates only the first seconds."),
    "preview_steps": Limit(1, 50, PREVIEW_STEPS, 1, "Preview steps", "Denoising steps used by a preview."),
    "max_audio_seconds": Limit(1.0, 3600.0, 600.0, 1.0, "Longest audio (s)", "Longer audio is refused: trim it."),
}


def limit_default(name: str) -> float | None:
    return LIMITS[name].default


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides a generated video. Frozen: a run's settings cannot change under it.

    ``emotion`` sets one emotion for the whole video (``None`` = use what is detected in the audio);
    ``emotion_segments`` are ``(start_s, end_s, label)`` overrides for parts of it. ``steps``, ``resolution``,
    the three guidance scales and ``memory_decay`` default to the active model's. ``preview_seconds`` makes a
    preview: only the first seconds (rounded up to whole clips), with at most ``preview_steps`` denoising steps
    (``None``: the model's). ``memory_mode`` is for the paper's Table 2 ablation: ``"full"`` carries the memory
    across clips (MEMO), ``"recent"`` keeps only the last past frames (the memory is rewritten every clip, as the
    original release did), ``"reference"`` looks only at the portrait (past frames = the reference).
    ``guidance_layout``: ``"per-sample"`` (each guidance pass sees its own reference and face tokens) or
    ``"official"`` (the official inference's tiled batch), see ``guidance.py``.
    """

    image: str | Path
    audio: str | Path
    output: str | Path | None = None
    seed: int = int(LIMITS["seed"].default)
    steps: int | None = None  # None: the model's default (20 for the official weights)
    reference_guidance: float | None = None  # None: the model's default (3.5 for the official weights)
    audio_guidance: float | None = None
    emotion_guidance: float | None = None
    emotion: str | None = None
    emotion_segments: tuple[tuple[float, float, str], ...] = field(default_factory=tuple)
    fps: int = int(LIMITS["fps"].default)
    resolution: int | None = None
    past_frames: int = int(LIMITS["past_frames"].default)
    memory_decay: float | None = None
    crop_scale: float = float(LIMITS["crop_scale"].default)
    crop_to_face: bool = True
    preview_seconds: float | None = None
    preview_steps: int | None = None  # None: the model's preview steps (8 unless its manifest says otherwise)
    max_audio_seconds: float = float(LIMITS["max_audio_seconds"].default)
    memory_mode: str = "full"
    guidance_layout: str = "per-sample"

    @property
    def is_preview(self) -> bool:
        return self.preview_seconds is not None

    @property
    def preview_length(self) -> float | None:
        """Seconds a preview animates: ``preview_seconds`` rounded up to whole clips of ``CLIP_FRAMES`` frames, whose
        frames are all generated anyway (3 s at 30 fps: 6 clips, 3.2 s); ``None`` when this is not a preview."""
        if not self.is_preview:
            return None
        samples = round(self.preview_seconds * SAMPLE_RATE)
        return padded_frame_count(samples, self.fps, CLIP_FRAMES) / self.fps  # as the pipeline counts the frames

    def effective_steps(self, model_default: int = OFFICIAL_STEPS, model_preview: int = PREVIEW_STEPS) -> int:
        """The steps this request runs: its own or the model's default; in a preview at most the preview steps
        (the request's ``preview_steps`` or the model's)."""
        steps = model_default if self.steps is None else self.steps
        if not self.is_preview:
            return steps
        return min(steps, model_preview if self.preview_steps is None else self.preview_steps)

    def problems(self) -> list[str]:
        """Every reason this request cannot run, in plain words (empty when it is valid)."""
        found = []
        for name in ("image", "audio"):
            path = Path(getattr(self, name))
            if not path.is_file():
                found.append(f"The {name} file {path} does not exist — choose an existing file.")
        for name, limit in LIMITS.items():
            value = getattr(self, name, None)
            if value is None:
                continue
            if not limit.minimum <= value <= limit.maximum:
                found.append(f"{limit.label} must be between {limit.minimum:g} and {limit.maximum:g}; got {value:g}.")
        for name in ("steps", "seed", "fps", "past_frames", "preview_steps"):
            if getattr(self, name) is not None and int(getattr(self, name)) != getattr(self, name):
                found.append(f"{LIMITS[name].label} must be a whole number; got {getattr(self, name)}.")
        if self.memory_mode not in MEMORY_MODES:
            found.append(f"memory_mode must be one of {', '.join(MEMORY_MODES)}; got {self.memory_mode!r}.")
        if self.guidance_layout not in GUIDANCE_LAYOUTS:
            found.append(
                f"guidance_layout must be one of {', '.join(GUIDANCE_LAYOUTS)}; got {self.guidance_layout!r}."
            )
        if self.resolution is not None and (self.resolution < 16 or self.resolution % 8):
            found.append(f"Resolution must be a multiple of 8 and at least 16; got {self.resolution}.")
        labels = [self.emotion] if self.emotion is not None else []
        for segment in self.emotion_segments:
            if len(segment) != 3:
                found.append(f"An emotion segment must be (start, end, label); got {segment!r}.")
                continue
            start, end, label = segment
            labels.append(label)
            if not 0 <= start < end:
                found.append(f"An emotion segment must have 0 <= start < end; got {start:g}-{end:g} s.")
        for label in labels:
            if str(label).strip().lower() not in EMOTION_LABELS:
                found.append(f"Unknown emotion {label!r}; choose one of: {', '.join(EMOTION_LABELS)}.")
        return found

    def validate(self) -> "GenerationRequest":
        """Raise ``InputError`` listing every problem; return the request itself when it is valid."""
        found = self.problems()
        if found:
            raise InputError("\n".join(found))
        return self

    def guidance_scales(self, model_default: float = OFFICIAL_GUIDANCE) -> tuple[float, float, float]:
        """(reference, audio, emotion) scales, unset ones taken from the model's default."""
        values = (self.reference_guidance, self.audio_guidance, self.emotion_guidance)
        return tuple(model_default if value is None else float(value) for value in values)

    def replace(self, **changes) -> "GenerationRequest":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready settings (paths as strings), the inverse of ``from_dict``."""
        data = asdict(self)
        for name in ("image", "audio", "output"):
            if data[name] is not None:
                data[name] = str(data[name])
        data["emotion_segments"] = [list(segment) for segment in self.emotion_segments]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "GenerationRequest":
        """Build from saved settings; unknown keys are refused so a typo never goes unnoticed."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"Unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(sorted(known))}.")
        data = dict(data)
        data["emotion_segments"] = tuple(tuple(segment) for segment in data.get("emotion_segments", ()))
        return cls(**data)
