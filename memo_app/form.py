"""The run form: the settings a run is made of, defined once, and how they become a ``GenerationRequest`` and back.

``RunForm``'s fields are the run settings in the order the run endpoints (``/preview``, ``/generate``,
``/estimate``) take them; each names the widget it binds to (its ``elem_id``), so ``ui.py`` finds the form's widgets
from this one list and hands their values to a handler by name (gradio's ``inputs_kwargs``): the handler builds
``RunForm(**values)``. Adding a setting is one field here and its widget on the page.

Values arrive as the widgets (or a script) send them; ``to_request`` checks them and says in plain words what is
wrong. ``from_request`` is the inverse: the form that reproduces a request, as "Load settings" restores it.
"""

import json
import random
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from memo_app.emotion_panel import USE_DETECTED, emotion_overrides, global_choice_for, table_for
from memo_app.service import PAPER_MEMORY_DECAY
from memo_model.errors import InputError, shown
from memo_model.pipelines.request import LIMITS, GenerationRequest
from memo_model.vision.face import load_image

PREVIEW_SECONDS = float(LIMITS["preview_seconds"].default)


def setting(widget: str, default=None, limit: str | None = None):
    """A field of the form: the ``elem_id`` of its widget, its value before anyone changes it, and the ``LIMITS``
    entry whose range it must be in (numbers only)."""
    return field(default=default, metadata={"widget": widget, "limit": limit})


def number(widget: str, limit: str, default=None):
    """A number of the form, by default the official one of ``LIMITS[limit]``."""
    return setting(widget, LIMITS[limit].default if default is None else default, limit)


@dataclass(frozen=True)
class RunForm:
    """One run's settings as the page holds them (the official defaults until someone changes them)."""

    image: str | None = setting("portrait")  # a file path
    audio: str | None = setting("speech")  # a file path
    table: object = setting("segments")  # the segment table (rows, Gradio's dict or a DataFrame); None = empty
    global_choice: str = setting("global-emotion", USE_DETECTED)
    emotion_strength: float = number("emotion-strength", "emotion_guidance")
    reference_guidance: float = number("reference-guidance", "reference_guidance")
    audio_guidance: float = number("audio-guidance", "audio_guidance")
    steps: int = number("steps", "steps")
    seed: int = number("seed", "seed")
    random_seed: bool = setting("random-seed", False)
    fps: int = number("fps", "fps")
    resolution: int | None = setting("resolution")  # None: the active model's
    past_frames: int = number("past-frames", "past_frames")
    memory_decay: float = number("memory-decay", "memory_decay", PAPER_MEMORY_DECAY)  # unless model_decay
    model_decay: bool = setting("model-decay", True)  # use the model's own memory decay
    crop_scale: float = number("crop-scale", "crop_scale")
    paste_back: bool = setting("paste-back", True)  # when the photo is larger than the crop; off: the crop alone

    @classmethod
    def widgets(cls, blocks) -> dict:
        """{field: widget} in field order, found among ``blocks`` (a ``gr.Blocks``'s components) by ``elem_id``."""
        return find_widgets(blocks, {spec.name: spec.metadata["widget"] for spec in fields(cls)})

    def values(self, names: tuple[str, ...]) -> tuple:
        """The values of the fields ``names``, in that order (a handler's outputs for those widgets)."""
        return tuple(getattr(self, name) for name in names)

    def to_request(self, *, output: str | Path, max_audio_seconds: float, preview: bool = False) -> GenerationRequest:
        """A validated request (a preview: the first ``PREVIEW_SECONDS``); raises InputError listing every problem."""
        if not self.image:
            raise InputError("Upload a portrait first (or pick an example).")
        if not self.audio:
            raise InputError("Upload or record an audio file first (or pick an example).")
        load_image(self.image)  # a non-image says so here, before any work
        form = replace(self, seed=random.randint(0, int(LIMITS["seed"].maximum))) if self.random_seed else self
        for spec in fields(form):
            limit, value = spec.metadata["limit"], getattr(form, spec.name)
            if limit and (value is None or isinstance(value, bool) or not isinstance(value, int | float)):
                raise InputError(f"{LIMITS[limit].label} must be a number; got {shown(value)}.")
        request = GenerationRequest(
            image=form.image,
            audio=form.audio,
            output=output,
            seed=_whole(form.seed),
            steps=_whole(form.steps),
            reference_guidance=float(form.reference_guidance),
            audio_guidance=float(form.audio_guidance),
            emotion_guidance=float(form.emotion_strength),
            emotions=emotion_overrides(form.global_choice, form.table),
            fps=_whole(form.fps),
            resolution=None if form.resolution in (None, "") else int(form.resolution),
            past_frames=_whole(form.past_frames),
            memory_decay=None if form.model_decay else float(form.memory_decay),
            crop_scale=float(form.crop_scale),
            paste_back=None if form.paste_back else False,  # None: the library pastes back when it adds anything
            preview_seconds=PREVIEW_SECONDS if preview else None,
            max_audio_seconds=max_audio_seconds,
        )
        return request.validate()

    @classmethod
    def from_request(
        cls, request: GenerationRequest, *, steps: int, guidance: float, memory_decay: float
    ) -> "RunForm":
        """The form that reproduces ``request``; what it leaves to the model shown as the active model's ``steps``,
        ``guidance`` and ``memory_decay``."""
        reference_scale, audio_scale, emotion_scale = request.guidance_scales(guidance)
        return cls(
            image=request.image,
            audio=request.audio,
            table=table_for(request.emotions),
            global_choice=global_choice_for(request.emotions),
            emotion_strength=emotion_scale,
            reference_guidance=reference_scale,
            audio_guidance=audio_scale,
            steps=steps if request.steps is None else request.steps,
            seed=request.seed,
            random_seed=False,
            fps=request.fps,
            resolution=request.resolution,
            past_frames=request.past_frames,
            memory_decay=memory_decay if request.memory_decay is None else request.memory_decay,
            model_decay=request.memory_decay is None,
            crop_scale=request.crop_scale,
            paste_back=request.paste_back is not False,
        )


def find_widgets(blocks, keys: dict[str, str]) -> dict:
    """{name: the one widget among ``blocks`` whose elem_id is ``keys[name]``}; names every key without exactly one."""
    found: dict[str, list] = {}
    for block in blocks:
        found.setdefault(getattr(block, "elem_id", None), []).append(block)
    wrong = [key for key in keys.values() if len(found.get(key, [])) != 1]
    if wrong:
        raise ValueError(f"Each field needs exactly one widget with its elem_id; not so for: {wrong}.")
    return {name: found[key][0] for name, key in keys.items()}


FIELD_NAMES = tuple(spec.name for spec in fields(RunForm))
RESTORED = tuple(name for name in FIELD_NAMES if name != "resolution")  # loaded settings: the model decides it


def _whole(number: int | float) -> int | float:
    """A whole number as an int (2.0 from a slider is 2); a fraction as it is, for the request to refuse."""
    return int(number) if float(number).is_integer() else number


def read_settings(path: str | Path) -> GenerationRequest:
    """The request a settings file holds (the JSON written next to a video, or a bare request); ``InputError``
    saying what is wrong with the file otherwise. Types and ranges are checked, not whether its files exist."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise InputError(f"The settings file could not be read as JSON ({error.msg} at {where}).") from None
    except UnicodeDecodeError:
        raise InputError("The settings file could not be read as JSON: it is not UTF-8 text.") from None
    except (ValueError, RecursionError):  # json refuses integers of thousands of digits and very deep nesting
        raise InputError(
            "The settings file could not be read as JSON: it holds a number too long or lists nested too deeply."
        ) from None
    except OSError as error:
        raise InputError(f"The settings file could not be read ({error.strerror}).") from None
    if not isinstance(data, dict):
        raise InputError("The settings file must hold a JSON object (a run's settings).")
    return GenerationRequest.from_dict(data.get("request", data))
