"""One request type for every caller: the CLI, the app and the tests build a ``GenerationRequest``.

``LIMITS`` is the single table of ranges and defaults; the app's sliders and the CLI's options read it, and
``GenerationRequest.validate()`` enforces it with messages a person can act on.
"""

import os
import stat
import types
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from memo_model.audio.features import padded_frame_count
from memo_model.audio.io import SAMPLE_RATE
from memo_model.errors import QUOTED_CHARS, InputError, shown
from memo_model.pipelines.emotions import SETTINGS_TYPES, EmotionOverrides
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

    @property
    def span(self) -> str:
        """The range as messages say it: "between 0 and 2147483647", or "of at least 1" without a maximum."""
        if self.maximum == float("inf"):
            return f"of at least {shown(self.minimum)}"
        return f"between {shown(self.minimum)} and {shown(self.maximum)}"


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

    ``emotions`` are the emotions a person chose instead of the detected ones: one for the whole video and/or
    ``(start_s, end_s, label)`` segments (``EmotionOverrides("happy", [(0.0, 2.5, "sad")])``; the default keeps
    what is detected; settings files hold them as "emotion" and "emotion_segments"). ``steps``, ``resolution``,
    the three guidance scales and ``memory_decay`` default to the active model's. ``preview_seconds`` makes a
    preview: only the first seconds (rounded up to whole clips), with at most ``preview_steps`` denoising steps
    (``None``: the model's). ``memory_mode`` is for the paper's Table 2 ablation: ``"full"`` carries the memory
    across clips (MEMO), ``"recent"`` keeps only the last past frames (the memory is rewritten every clip, as the
    original release did), ``"reference"`` looks only at the portrait (past frames = the reference).
    ``guidance_layout``: ``"per-sample"`` (each guidance pass sees its own reference and face tokens) or
    ``"official"`` (the official inference's tiled batch), see ``guidance.py``. ``paste_back``: the animated crop
    blended into the whole portrait (``vision/paste_back.py``) as the main video, the crop alone beside it.
    """

    image: str | Path
    audio: str | Path
    output: str | Path | None = None
    seed: int = int(LIMITS["seed"].default)
    steps: int | None = None  # None: the model's default (20 for the official weights)
    reference_guidance: float | None = None  # None: the model's default (3.5 for the official weights)
    audio_guidance: float | None = None
    emotion_guidance: float | None = None
    emotions: EmotionOverrides = EmotionOverrides()  # checked when built (pipelines/emotions.py)
    fps: int = int(LIMITS["fps"].default)
    resolution: int | None = None
    past_frames: int = int(LIMITS["past_frames"].default)
    memory_decay: float | None = None
    crop_scale: float = float(LIMITS["crop_scale"].default)
    crop_to_face: bool = True
    # None: on when the picture holds more than the crop the model animates (paste_back.wanted); True: always; False:
    # the crop alone. On: <name>.mp4 is the whole picture (long side at most 1920 px), <name>-crop.mp4 the crop.
    paste_back: bool | None = None
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

    def problems(self, check_files: bool = True) -> list[str]:
        """Every reason this request cannot run, in plain words (empty when it is valid).

        Types come first (from the fields' annotations): a setting of the wrong type gets that one message and no
        other check. ``check_files=False`` leaves out the file system (input files exist, the output can be
        written), for settings read from a file before their media are at hand.
        """
        mistyped = self._type_problems()
        found = list(mistyped.values())
        if check_files:
            found += self._file_problems(mistyped)
        for name, limit in LIMITS.items():
            value = getattr(self, name, None)
            if value is None or name in mistyped:
                continue
            if not limit.minimum <= value <= limit.maximum:
                found.append(f"{limit.label} must be {limit.span}; got {shown(value)}.")
            elif name in ("steps", "seed", "fps", "past_frames", "preview_steps") and int(value) != value:
                found.append(f"{limit.label} must be a whole number; got {shown(value)}.")
        if "memory_mode" not in mistyped and self.memory_mode not in MEMORY_MODES:
            found.append(f"memory_mode must be one of {', '.join(MEMORY_MODES)}; got {shown(self.memory_mode)}.")
        if "guidance_layout" not in mistyped and self.guidance_layout not in GUIDANCE_LAYOUTS:
            found.append(
                f"guidance_layout must be one of {', '.join(GUIDANCE_LAYOUTS)}; got {shown(self.guidance_layout)}."
            )
        if (
            "resolution" not in mistyped
            and self.resolution is not None
            and (self.resolution < 16 or self.resolution % 8)
        ):
            found.append(f"Resolution must be a multiple of 8 and at least 16; got {shown(self.resolution)}.")
        return found

    def _type_problems(self) -> dict[str, str]:
        """{setting: message} for every setting whose value does not fit its field's annotation."""
        found = {spec.name: _type_problem(spec.name, getattr(self, spec.name), spec.type) for spec in fields(self)}
        return {name: problem for name, problem in found.items() if problem is not None}

    def _file_problems(self, mistyped: dict[str, str]) -> list[str]:
        """Missing input files, and an output that cannot be written (a folder, or under a file)."""
        found = []
        for name in ("image", "audio"):
            path = Path(getattr(self, name))
            if name not in mistyped and _kind_of(path) != "file":
                found.append(f"The {name} file {_shown_path(path)} does not exist — choose an existing file.")
        if self.output is not None and "output" not in mistyped:
            found += _output_problems(Path(self.output))
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
        """JSON-ready settings (paths as strings), the inverse of ``from_dict``; the emotions as their two flat
        settings "emotion" and "emotion_segments", where settings files have always had them."""
        data = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, EmotionOverrides):
                data.update(value.to_settings())
            else:
                data[spec.name] = str(value) if isinstance(value, Path) else value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "GenerationRequest":
        """Build from saved settings (a settings file, a batch job), checked against the fields' own types and the
        ``LIMITS``; one ``InputError`` lists every problem in plain words. Unknown keys are refused so a typo never
        goes unnoticed; whether the files exist is checked when the request runs."""
        if not isinstance(data, dict):
            raise InputError(f"Settings must be a JSON object of name: value pairs; got {shown(data)}.")
        known = _setting_types()
        unknown = sorted(shown(name) if not isinstance(name, str) else name for name in set(data) - set(known))
        if unknown:
            raise InputError(f"Unknown setting(s) {_listed(unknown)}; known settings: {', '.join(sorted(known))}.")
        required = [spec.name for spec in fields(cls) if _is_required(spec)]
        missing = [name for name in required if name not in data]
        if missing:
            raise InputError(
                f"Missing setting(s) {_listed(missing)}; every request needs at least {' and '.join(required)}."
            )
        values = {name: _whole_number(value, known[name]) for name, value in data.items()}
        found = [problem for name, value in values.items() if (problem := _type_problem(name, value, known[name]))]
        if found:  # said about the values as written (lists, not tuples)
            raise InputError("\n".join(found))
        values = {name: _tuples(value) for name, value in values.items()}
        emotion_settings = {name: values.pop(name) for name in SETTINGS_TYPES if name in values}
        try:
            emotions, emotion_problems = EmotionOverrides.from_settings(emotion_settings), []
        except InputError as error:  # listed with the request's own problems
            emotions, emotion_problems = EmotionOverrides(), [str(error)]
        request = cls(**values, emotions=emotions)
        found = request.problems(check_files=False) + emotion_problems
        if found:
            raise InputError("\n".join(found))
        return request


# --- checking settings: types from the fields' annotations, values shown briefly ------------------------------

KIND_WORDS = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "text",
    Path: "a path",
    EmotionOverrides: "an EmotionOverrides",
}
SHOWN_NAMES = 10  # unknown or missing setting names listed in one message


def _setting_types() -> dict[str, Any]:
    """{name: type} of every setting a settings file holds: the request's fields, with ``emotions`` as its two
    flat settings (``SETTINGS_TYPES``)."""
    found = {}
    for spec in fields(GenerationRequest):
        found.update(SETTINGS_TYPES if spec.type is EmotionOverrides else {spec.name: spec.type})
    return found


def _members(annotation) -> tuple:
    """The types a field allows: ``int | None`` -> (int, NoneType)."""
    if isinstance(annotation, types.UnionType) or get_origin(annotation) is Union:
        return get_args(annotation)
    return (annotation,)


def _accepts(annotation, value: Any) -> bool:
    """Whether ``value`` fits a field's annotation (``float`` takes whole numbers too, never ``True``/``False``)."""
    for kind in _members(annotation):
        if kind is type(None) and value is None:
            return True
        if kind is bool and isinstance(value, bool):
            return True
        if kind is int and isinstance(value, int | float) and not isinstance(value, bool):
            return True  # 2.5 is a number: problems() says it must be a whole one
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if (kind is str and isinstance(value, str)) or (kind is Path and isinstance(value, str | Path)):
            return True
        if kind is EmotionOverrides and isinstance(value, EmotionOverrides):
            return True
        if get_origin(kind) is tuple and isinstance(value, tuple | list):
            items = get_args(kind)
            if len(items) == 2 and items[1] is Ellipsis:
                if all(_accepts(items[0], item) for item in value):
                    return True
            elif len(value) == len(items) and all(_accepts(k, item) for k, item in zip(items, value, strict=True)):
                return True
    return False


def _kind_words(kinds: tuple) -> str:
    """Types in plain words: ``(int,)`` -> "a whole number", ``(str, Path)`` -> "a path", tuples as lists."""
    words = []
    for kind in kinds:
        if get_origin(kind) is tuple:
            items = get_args(kind)
            if items[-1] is Ellipsis:
                words.append(f"a list of {_kind_words(items[:1]).removeprefix('a ')}s")
            else:
                words.append(f"[{', '.join(_kind_words((item,)).removeprefix('a ') for item in items)}] list")
        else:
            words.append(KIND_WORDS.get(kind, kind.__name__))
    if "a path" in words and "text" in words:
        words.remove("text")
    return " or ".join(dict.fromkeys(words))


EXAMPLES = {
    "emotion_segments": '[[0.0, 2.5, "sad"]]',
    "emotions": 'EmotionOverrides("happy", [(0.0, 2.5, "sad")])',
    "image": '"portrait.png"',
    "audio": '"speech.wav"',
}


def _type_problem(name: str, value: Any, annotation) -> str | None:
    """The message for a setting of the wrong type (with its range or an example), or None when it fits."""
    if _accepts(annotation, value):
        return None
    limit = LIMITS.get(name)
    what = f'{limit.label} ("{name}")' if limit else f'"{name}"'
    kinds = tuple(kind for kind in _members(annotation) if kind is not type(None))
    expected = _kind_words(kinds)
    if limit is not None:
        expected += f" {limit.span}"
    if name in EXAMPLES:
        expected += f", e.g. {EXAMPLES[name]}"
    if len(kinds) < len(_members(annotation)):
        expected += ", or null"
    return f"{what} must be {expected}; got {shown(value)}."


def _whole_number(value: Any, annotation) -> Any:
    """20.0 read from JSON becomes 20 where only whole numbers fit (``steps: int | None``)."""
    kinds = _members(annotation)
    if isinstance(value, float) and int in kinds and float not in kinds and value.is_integer():
        return int(value)
    return value


def _tuples(value: Any) -> Any:
    """JSON lists as tuples, at every depth (``emotion_segments``)."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def _is_required(spec) -> bool:
    return spec.default is MISSING and spec.default_factory is MISSING


def _shown_path(path: Path) -> str:
    """A path as a message shows it, its middle cut when it is very long."""
    text = str(path)
    return text if len(text) <= 2 * QUOTED_CHARS else f"{text[:QUOTED_CHARS]}…{text[-QUOTED_CHARS:]}"


def _listed(names: list[str]) -> str:
    """Names for a message, at most ``SHOWN_NAMES`` of them, each cut short."""
    cut = [name if len(name) <= QUOTED_CHARS else f"{name[: QUOTED_CHARS - 1]}…" for name in names[:SHOWN_NAMES]]
    more = f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
    return ", ".join(cut) + more


def _kind_of(path: Path) -> str | None:
    """What is at ``path``: "file", "folder", "other", or None for nothing (or a name the system refuses)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _output_problems(output: Path) -> list[str]:
    """Why a video cannot be written at ``output``: a folder is there, or a file stands where a folder must be."""
    if _kind_of(output) == "folder":
        return [f"The output {_shown_path(output)} is a folder — give a file name in it, such as video.mp4."]
    for parent in output.parents:
        kind = _kind_of(parent)
        if kind == "folder":
            return []
        if kind is not None:
            return [
                f"The output {_shown_path(output)} cannot be written: {_shown_path(parent)} is a file, not a folder "
                "— choose another output path."
            ]
    return []
