"""The app's handlers: plain methods that turn widget values into ``memo_model`` calls and back.

``ui.py`` wires these to widgets; ``gradio_client`` reaches the very same methods through their ``api_name``. No
tensor work happens here (the app never imports torch): inputs are checked with ``memo_model``'s preprocessing,
a run is one ``GenerationRequest`` handed to the pipeline, and every ``InputError`` / ``SetupError`` becomes a
``gr.Error`` whose message is shown as is.

Generation runs the pipeline on a worker thread and streams what it reports: progress (clip i/N, step, ETA), each
finished clip as a small looping GIF, then the mp4 and its settings JSON. Cancel sets the run's event; the pipeline
stops before its next denoising step and keeps the clips already written as a playable partial video.
"""

import hashlib
import json
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from memo_app.settings import AppSettings
from memo_app.timeline import draw_timeline
from memo_model.audio.emotion import SELECTABLE_EMOTIONS, EmotionTrack
from memo_model.audio.io import SAMPLE_RATE, load_audio
from memo_model.errors import InputError, SetupError, shown
from memo_model.pipelines.emotions import EmotionOverrides, SegmentOverride, detect_track, plan_clip_emotions
from memo_model.pipelines.estimate import clips_for, estimate_time
from memo_model.pipelines.request import (
    CLIP_FRAMES,
    LIMITS,
    OFFICIAL_GUIDANCE,
    OFFICIAL_STEPS,
    PREVIEW_STEPS,
    GenerationRequest,
)
from memo_model.vision.face import load_image, prepare_portrait

USE_DETECTED = "use detected"
GLOBAL_CHOICES = (USE_DETECTED, *SELECTABLE_EMOTIONS)
TABLE_HEADERS = ["start (s)", "end (s)", "detected", "confidence", "override"]
NO_DETECTOR = "—"
NO_MODEL_MESSAGE = (
    "**No model loaded**: the bundled MEMO-Tiny is not in this checkout yet — enter a weights folder or hub id "
    "in the Model panel."
)
PREVIEW_SECONDS = float(LIMITS["preview_seconds"].default)
DISPLAY_SIDE = 256  # crop previews and clip GIFs are shown at least this large (MEMO-Tiny works at 16-64 px)
STATUS_INTERVAL = 0.5  # seconds between streamed status updates during a run
ANALYSIS_CACHE = 8  # analysed audio files kept, so edits re-plot without re-running the detector
# Rough GPU seconds per clip and denoising step at 512 px (4 guidance passes): sizes a ZeroGPU reservation.
GPU_SECONDS_PER_CLIP_STEP = 1.5
GPU_OVERHEAD_SECONDS = 30
PAPER_MEMORY_DECAY = 0.9  # paper, appendix D: what "the model's memory decay" is for the official weights

try:  # Hugging Face Spaces (ZeroGPU): reserve a GPU for the length of one run
    import spaces
except ImportError:
    spaces = None


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


def count(number: int, noun: str) -> str:
    """``count(1, "step")`` is "1 step", ``count(8, "step")`` "8 steps"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _gpu_seconds(pipeline, request: GenerationRequest, *args, **kwargs) -> int:
    """The ZeroGPU reservation for one run, from the audio length and the steps."""
    clips = clips_for(request.preview_length or request.max_audio_seconds, request.fps)
    steps = pipeline.model_info.steps_for(request)
    return int(GPU_OVERHEAD_SECONDS + clips * steps * GPU_SECONDS_PER_CLIP_STEP)


def _run_pipeline(pipeline, request, callback, cancel):
    return pipeline(request, callback=callback, cancel=cancel)


run_pipeline = _run_pipeline if spaces is None else spaces.GPU(duration=_gpu_seconds)(_run_pipeline)


def _error(error: Exception) -> gr.Error:
    return gr.Error(str(error), title="Please check the input", print_exception=False)


def _session(request: gr.Request | None) -> str:
    """Who is asking: the browser tab or gradio_client session, so Cancel stops only its own run."""
    return getattr(request, "session_hash", None) or "local"


def _pixels_digest(image: Image.Image) -> str:
    return hashlib.sha1(image.tobytes() + str(image.size).encode()).hexdigest()


def _file_digest(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _enlarged(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """Small model-size images shown with visible pixels rather than blurred."""
    if image.width >= side:
        return image
    return image.resize((side, side * image.height // image.width), Image.Resampling.NEAREST)


def _seconds(cell):
    """A table cell as seconds when it reads as a number (Gradio may hand over text); otherwise as it is, for the
    overrides to refuse in their own words."""
    try:
        return float(cell)
    except (TypeError, ValueError):
        return cell


def table_rows(table) -> list[list]:
    """The segment table as a list of rows, whatever form Gradio hands over (DataFrame, dict or list)."""
    if table is None:
        return []
    if hasattr(table, "values") and hasattr(table, "columns"):  # a pandas DataFrame
        return [list(row) for row in table.values.tolist()]
    if isinstance(table, dict):
        return [list(row) for row in table.get("data", [])]
    return [list(row) for row in table]


def _is_unset(choice) -> bool:
    """An empty choice keeps the detected emotion."""
    return choice is None or str(choice).strip().lower() in ("", USE_DETECTED)


def table_segment(number: int, row: list) -> SegmentOverride | None:
    """Row ``number`` (1-based) of the segment table as an override, None when it keeps the detected emotion; the
    overrides' own InputError, naming the row, when it cannot be used."""
    if len(row) < len(TABLE_HEADERS):
        raise InputError(f"Row {number} of the segment table needs {len(TABLE_HEADERS)} columns.")
    if _is_unset(row[4]):
        return None
    try:
        return SegmentOverride(_seconds(row[0]), _seconds(row[1]), row[4])
    except InputError as error:
        raise InputError(f"Row {number} of the segment table: {error}") from None


def emotion_overrides(global_choice, table) -> EmotionOverrides:
    """The emotions chosen in the Emotions panel: the global choice and every table row whose override is set."""
    rows = enumerate(table_rows(table), start=1)
    segments = tuple(segment for number, row in rows if (segment := table_segment(number, row)) is not None)
    return EmotionOverrides(None if _is_unset(global_choice) else global_choice, segments)


def read_settings_file(path: str | Path) -> dict:
    """The JSON object in a settings file; ``InputError`` saying what is wrong with the file otherwise."""
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
    return data


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
        self._synthetic_examples = self._example_digests()
        if settings.load_model_at_start:
            self.load_model(settings.weights or "")

    # --- model panel ------------------------------------------------------------------------------------------

    def load_model(self, weights: str | None) -> tuple[str, dict, dict, dict, dict, dict, dict]:
        """Load weights (a folder, a hub id, or empty = the bundled MEMO-Tiny); on error keep the model we had.

        Returns the status, the resolution choices, the preview button, and the emotion / reference / audio
        guidance and steps sliders: set to the new model's defaults when it loaded, untouched when it did not.
        """
        from memo_model.loading import CheckpointError, load_pipeline  # imports torch: only when a model is loaded

        source = (weights or "").strip() or None
        loaded = False
        with self._model_lock:
            try:
                self.pipeline = load_pipeline(source, device=self.settings.device)
                self.model_error = None
                loaded = True
            except (SetupError, CheckpointError, OSError, ValueError) as error:
                if source is None and self.pipeline is None:
                    self.model_error = f"{NO_MODEL_MESSAGE}\n\n_{error}_"
                else:
                    self.model_error = f"Could not load `{source or 'the bundled model'}`: {error}"
            self._analyses.clear()  # detections depend on the model's detector
        # one update per slider: gradio consumes an update's value when it applies it
        guidance = [gr.update(value=self.default_guidance()) if loaded else gr.update() for _ in range(3)]
        steps = gr.update(value=self.default_steps()) if loaded else gr.update()
        preview = gr.update(value=self.preview_label())
        return self.model_status(), self.resolution_update(), preview, *guidance, steps

    def model_status(self) -> str:
        lines = []
        if self.pipeline is None:
            lines.append(NO_MODEL_MESSAGE if self.model_error is None else self.model_error)
            return "\n\n".join(lines)
        info = self.pipeline.model_info
        dtype = str(self.pipeline.dtype).removeprefix("torch.")
        detector = "yes" if self.pipeline.emotion_detector is not None else "no (choose emotions by hand)"
        lines.append(
            f"**Active model:** {info.name}  \n**Source:** `{info.source}`  \n"
            f"**Resolution:** {info.resolution} px · {info.fps} fps · default guidance {info.default_guidance:g} · "
            f"default steps {info.default_steps}  \n"
            f"**Device:** {self.pipeline.device} · {dtype}  \n"
            f"**Emotion detector:** {detector}"
        )
        if info.notes:
            lines.append(f"_{info.notes}_")
        if self.model_error:
            lines.append(f"Warning: {self.model_error}")
        return "\n\n".join(lines)

    def default_steps(self) -> int:
        """The active model's denoising steps for the steps slider (the official 20 without a model)."""
        return OFFICIAL_STEPS if self.pipeline is None else self.pipeline.model_info.default_steps

    def preview_steps(self) -> int:
        """The active model's preview steps (8 without a model)."""
        return PREVIEW_STEPS if self.pipeline is None else self.pipeline.model_info.preview_steps

    def preview_label(self) -> str:
        """The Preview button's text: what a preview covers with the active model."""
        return f"Preview (first {PREVIEW_SECONDS:g} s, {count(self.preview_steps(), 'step')})"

    def default_guidance(self) -> float:
        """The active model's guidance scale for all three sliders (the official 3.5 without a model)."""
        return OFFICIAL_GUIDANCE if self.pipeline is None else self.pipeline.model_info.default_guidance

    def resolution_choices(self) -> dict:
        """The resolution dropdown's choices: only what the active model was trained at."""
        if self.pipeline is None:
            return {"choices": [], "value": None, "interactive": False}
        resolution = self.pipeline.model_info.resolution
        return {"choices": [resolution], "value": resolution, "interactive": True}

    def resolution_update(self) -> dict:
        return gr.update(**self.resolution_choices())

    @property
    def trained_on_synthetic(self) -> bool:
        """MEMO-Tiny (and the test models) only ever saw rendered synthetic faces."""
        if self.pipeline is None:
            return False
        info = self.pipeline.model_info
        return info.source == "bundled" or "tiny" in info.name.lower()

    def _require_model(self):
        if self.pipeline is None:
            raise gr.Error(
                "No model is loaded, so nothing can be generated yet: the bundled MEMO-Tiny is not in this checkout. "
                "Enter a weights folder or hub id in the Model panel and press Load.",
                title="No model",
            )
        return self.pipeline

    # --- inputs -----------------------------------------------------------------------------------------------

    def _example_digests(self) -> set[str]:
        digests = set()
        for path in sorted(self.settings.examples_dir.glob("synthetic_*.png")):
            try:
                digests.add(_pixels_digest(load_image(path)))
            except InputError:
                continue
        return digests

    def inspect_portrait(self, image: str | None, crop_scale: float) -> tuple:
        """The photo with the face box (green) and crop (orange), the crop the model sees, and warnings."""
        if not image:
            return None, None, "Upload a portrait, take one with the webcam, or pick an example."
        resolution = self.pipeline.model_info.resolution if self.pipeline is not None else DISPLAY_SIDE
        try:
            crop_scale = float(crop_scale)
            limit = LIMITS["crop_scale"]
            if not limit.minimum <= crop_scale <= limit.maximum:
                raise InputError(
                    f"{limit.label} must be between {limit.minimum:g} and {limit.maximum:g}; got {crop_scale:g}."
                )
            portrait = prepare_portrait(image, resolution, crop_scale)
        except InputError as error:
            return None, None, f"Warning: {error}"
        annotated = portrait.full_image.copy()
        draw = ImageDraw.Draw(annotated)
        width = max(2, annotated.width // 150)
        draw.rectangle(portrait.crop_box, outline=(255, 140, 0), width=width)
        if portrait.face_box is not None:
            draw.rectangle(portrait.face_box, outline=(0, 200, 0), width=width)
        notes = [f"Warning: {warning}" for warning in portrait.warnings]
        if self.trained_on_synthetic and _pixels_digest(portrait.full_image) not in self._synthetic_examples:
            notes.append(
                "Note: the active model was trained only on synthetic rendered faces: on a real photo it shows the "
                "pipeline working, not a convincing animation. Load the official MEMO weights for real photos."
            )
        if portrait.face_box is not None and not portrait.warnings:
            notes.insert(0, "One face found (green box).")
        size = f"{portrait.original_size[0]}×{portrait.original_size[1]}"
        notes.append(f"Photo {size}; the model sees the orange square at {resolution}×{resolution} px.")
        return annotated, _enlarged(portrait.image), "\n\n".join(notes)

    def _analysis(self, audio: str | None, fps) -> AudioAnalysis:
        if not audio:
            raise InputError("Upload or record an audio file first (or pick an example).")
        fps = int(fps)
        limit = LIMITS["fps"]
        if not limit.minimum <= fps <= limit.maximum:
            raise InputError(f"{limit.label} must be between {limit.minimum:g} and {limit.maximum:g}; got {fps}.")
        key = (_file_digest(audio), fps, id(self.pipeline))
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

    def inspect_audio(self, audio: str | None) -> str:
        """Duration, clip count and the length limit, or what is wrong with the file."""
        limit = self.settings.max_audio_seconds
        if not audio:
            return f"Upload or record speech (at most {limit:g} s), or pick an example."
        try:
            analysis = self._analysis(audio, LIMITS["fps"].default)
        except InputError as error:
            return f"Warning: {error}"
        summary = (
            f"Duration **{analysis.duration:.1f} s** (limit {limit:g} s) · {analysis.num_clips} clip(s) of "
            f"{CLIP_FRAMES} frames at {analysis.fps} fps · a preview animates the first {PREVIEW_SECONDS:g} s."
        )
        return "\n\n".join([summary, *(f"Warning: {note}" for note in analysis.notes)])

    # --- emotions ---------------------------------------------------------------------------------------------

    def _timeline(self, analysis: AudioAnalysis, overrides: EmotionOverrides) -> tuple[str, list[dict]]:
        """The timeline plot and its segments: the pipeline's own plan of which emotion each clip gets."""
        plan = plan_clip_emotions(analysis.track, overrides, analysis.fps, CLIP_FRAMES, len(analysis.waveform))
        segments = list(plan.timeline)
        path = self.settings.output_dir / "timelines" / f"timeline_{time.time_ns()}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        probabilities = None if analysis.track is None else analysis.track.frame_probabilities
        draw_timeline(path, analysis.waveform, SAMPLE_RATE, segments, probabilities, analysis.fps)
        return str(path), segments

    def analyze(self, audio: str | None, fps, global_choice) -> tuple:
        """Detect emotions: the timeline plot, the segment table (one row per detected segment) and a summary."""
        try:
            analysis = self._analysis(audio, fps)
            overrides = emotion_overrides(global_choice, None)
            plot, segments = self._timeline(analysis, EmotionOverrides())
            if not overrides.is_empty:
                plot, _ = self._timeline(analysis, overrides)
        except InputError as error:
            raise _error(error) from None
        rows = [
            [
                s["start"],
                s["end"],
                s["detected"] or NO_DETECTOR,
                None if s["confidence"] is None else round(s["confidence"], 2),
                "",
            ]
            for s in segments
        ]
        if analysis.track is None:
            reason = "no model is loaded" if self.pipeline is None else "this model has no emotion detector"
            summary = (
                f"{analysis.duration:.1f} s of audio. Emotion detection is unavailable ({reason}): every clip "
                "uses 'neutral' unless you choose an emotion below."
            )
        else:
            found = ", ".join(f"{s['detected']} {s['start']:.1f}-{s['end']:.1f} s" for s in segments)
            summary = f"{analysis.duration:.1f} s of audio, {len(segments)} segment(s): {found}."
        return plot, rows, summary

    def update_timeline(self, audio: str | None, fps, table, global_choice) -> tuple:
        """Re-draw the timeline with the table's overrides and the global override (after every edit)."""
        try:
            analysis = self._analysis(audio, fps)
            overrides = emotion_overrides(global_choice, table)
            plot, segments = self._timeline(analysis, overrides)
        except InputError as error:
            raise _error(error) from None
        used = ", ".join(f"{s['label']} {s['start']:.1f}-{s['end']:.1f} s" for s in segments)
        return plot, f"Clips will use: {used}."

    def set_segment(self, table, row, emotion) -> list[list]:
        """Set row ``row`` (1-based) of the segment table to ``emotion`` (or back to the detected one)."""
        rows = table_rows(table)
        try:
            index = int(row) - 1
        except (TypeError, ValueError):
            raise _error(InputError(f"Choose a segment number; got {shown(row)}.")) from None
        if not 0 <= index < len(rows):
            raise _error(InputError(f"There is no segment {row}; the table has {len(rows)} row(s). Analyze first."))
        rows[index][4] = "" if _is_unset(emotion) else emotion
        try:
            segment = table_segment(index + 1, rows[index])
        except InputError as error:
            raise _error(error) from None
        rows[index][4] = "" if segment is None else segment.label
        return rows

    # --- runs -------------------------------------------------------------------------------------------------

    def build_request(
        self,
        image,
        audio,
        table,
        global_choice,
        emotion_strength,
        reference_guidance,
        audio_guidance,
        steps,
        seed,
        random_seed,
        fps,
        resolution,
        past_frames,
        memory_decay,
        model_decay,
        crop_scale,
        preview,
    ) -> GenerationRequest:
        """A validated request from widget values; raises InputError listing every problem."""
        if not image:
            raise InputError("Upload a portrait first (or pick an example).")
        if not audio:
            raise InputError("Upload or record an audio file first (or pick an example).")
        load_image(image)  # a non-image says so here, before any work
        if random_seed:
            seed = random.randint(0, int(LIMITS["seed"].maximum))
        numbers = {
            "seed": seed,
            "steps": steps,
            "fps": fps,
            "past_frames": past_frames,
            "crop_scale": crop_scale,
            "emotion_guidance": emotion_strength,
            "reference_guidance": reference_guidance,
            "audio_guidance": audio_guidance,
            "memory_decay": memory_decay,
        }
        for name, value in numbers.items():
            if value is None or isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"{LIMITS[name].label} must be a number; got {shown(value)}.")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kind = "preview" if preview else "video"
        request = GenerationRequest(
            image=image,
            audio=audio,
            output=self.settings.output_dir / f"{stamp}_{kind}.mp4",
            seed=int(seed) if float(seed).is_integer() else seed,
            steps=int(steps) if float(steps).is_integer() else steps,
            reference_guidance=float(reference_guidance),
            audio_guidance=float(audio_guidance),
            emotion_guidance=float(emotion_strength),
            emotions=emotion_overrides(global_choice, table),
            fps=int(fps) if float(fps).is_integer() else fps,
            resolution=None if resolution in (None, "") else int(resolution),
            past_frames=int(past_frames) if float(past_frames).is_integer() else past_frames,
            memory_decay=None if model_decay else float(memory_decay),
            crop_scale=float(crop_scale),
            preview_seconds=PREVIEW_SECONDS if preview else None,
            max_audio_seconds=self.settings.max_audio_seconds,
        )
        request.validate()
        if self.pipeline is not None and request.resolution not in (None, self.pipeline.model_info.resolution):
            raise InputError(
                f"The active model works at {self.pipeline.model_info.resolution} px only; got {request.resolution}."
            )
        return request

    def estimate(self, *values) -> str:
        """Expected wall time of a preview and of the whole video with the current settings, on this machine.

        ``values`` are the run's widget values (as ``preview`` / ``generate`` take them). The first estimate for a
        number of guidance passes runs a short probe of the real pipeline (a few seconds; estimate.py), later ones
        reuse it. Shown before a run; nothing is said until a portrait and audio are chosen.
        """
        if self.pipeline is None or not values[0] or not values[1]:
            return ""
        try:
            request = self.build_request(*values, False)
            duration = self._analysis(request.audio, request.fps).duration
        except InputError:
            return ""  # the run buttons say what is wrong; the estimate stays quiet
        preview = estimate_time(self.pipeline, request.replace(preview_seconds=PREVIEW_SECONDS), duration)
        full = estimate_time(self.pipeline, request, duration)
        return (
            f"Expected time on this machine: preview **{preview.spent}**, "
            f"full video **{full.spent}** ({full.clips} clips × {full.steps} steps, "
            f"{full.passes} guidance passes)."
        )

    def _clip_gif(self, frames: np.ndarray, run_dir: Path, clip: int, fps: int) -> str:
        images = [_enlarged(Image.fromarray(frame), DISPLAY_SIDE // 2) for frame in frames]
        path = run_dir / f"clip_{clip + 1:03d}.gif"
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return str(path)

    def preview(
        self,
        image,
        audio,
        table,
        global_choice,
        emotion_strength,
        reference_guidance,
        audio_guidance,
        steps,
        seed,
        random_seed,
        fps,
        resolution,
        past_frames,
        memory_decay,
        model_decay,
        crop_scale,
        request: gr.Request,
        progress=gr.Progress(),
    ) -> Iterator[tuple]:
        """The first seconds with fewer steps; same outputs as ``generate``."""
        values = (
            image,
            audio,
            table,
            global_choice,
            emotion_strength,
            reference_guidance,
            audio_guidance,
            steps,
            seed,
            random_seed,
            fps,
            resolution,
            past_frames,
            memory_decay,
            model_decay,
            crop_scale,
        )
        yield from self.run(values, True, _session(request), progress)

    def generate(
        self,
        image,
        audio,
        table,
        global_choice,
        emotion_strength,
        reference_guidance,
        audio_guidance,
        steps,
        seed,
        random_seed,
        fps,
        resolution,
        past_frames,
        memory_decay,
        model_decay,
        crop_scale,
        request: gr.Request,
        progress=gr.Progress(),
    ) -> Iterator[tuple]:
        """The full length; yields (video, clips, status, settings file, used seed) as the run goes on."""
        values = (
            image,
            audio,
            table,
            global_choice,
            emotion_strength,
            reference_guidance,
            audio_guidance,
            steps,
            seed,
            random_seed,
            fps,
            resolution,
            past_frames,
            memory_decay,
            model_decay,
            crop_scale,
        )
        yield from self.run(values, False, _session(request), progress)

    def run(self, values: tuple, preview: bool, session: str, progress_bar=None) -> Iterator[tuple]:
        """Generate (or preview); yields (video, clips, status, settings file, used seed) as the run goes on."""
        pipeline = self._require_model()
        try:
            request = self.build_request(*values, preview)
            load_audio(request.audio, max_seconds=request.max_audio_seconds)  # unreadable / silent / too long
        except InputError as error:
            raise _error(error) from None
        cancel = threading.Event()
        self._cancel_events[session] = cancel
        updates: queue.Queue = queue.Queue()
        outcome: dict = {}
        run_dir = Path(request.output).with_suffix("")
        run_dir.mkdir(parents=True, exist_ok=True)

        def work():
            try:
                outcome["result"] = run_pipeline(pipeline, request, updates.put, cancel)
            except Exception as error:  # noqa: BLE001 - reported to the person below, never lost in a thread
                outcome["error"] = error
            finally:
                updates.put(None)

        worker = threading.Thread(target=work, name="memo-generation", daemon=True)
        worker.start()
        clips: list[tuple[str, str]] = []
        steps = pipeline.model_info.steps_for(request)
        kind = f"Preview ({request.preview_length:g} s, {count(steps, 'step')})" if preview else "Generation"
        status = f"{kind}: preparing the portrait, audio and emotions…"
        yield None, clips, status, None, request.seed
        last_yield = time.perf_counter()
        try:
            while (progress := updates.get()) is not None:
                status = (
                    f"{kind}: clip {progress.clip + 1}/{progress.num_clips} · "
                    f"step {progress.step}/{progress.num_steps} · {progress.elapsed:.0f} s elapsed · "
                    f"ETA {progress.eta:.0f} s"
                )
                if progress_bar is not None:
                    done = progress.clip * progress.num_steps + progress.step
                    progress_bar((done, progress.num_clips * progress.num_steps), desc=status, unit="steps")
                if progress.frames is not None:
                    gif = self._clip_gif(progress.frames, run_dir, progress.clip, request.fps)
                    clips = [*clips, (gif, f"clip {progress.clip + 1}")]
                elif time.perf_counter() - last_yield < STATUS_INTERVAL:
                    continue
                last_yield = time.perf_counter()
                yield gr.skip(), clips, status, gr.skip(), request.seed
        finally:
            cancel.set()  # a closed browser tab or a cancelled job stops the pipeline too
            worker.join()
            self._cancel_events.pop(session, None)
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, InputError | SetupError):
                raise _error(error)
            raise gr.Error(f"The generation failed: {type(error).__name__}: {error}", title="Generation failed")
        result = outcome["result"]
        yield self._finished(result, clips, kind)

    def _finished(self, result, clips, kind) -> tuple:
        notes = [f"Warning: {warning}" for warning in result.warnings]
        timing = result.timings.get("total", 0.0)
        video = str(result.video_path) if result.video_path.is_file() and result.num_frames else None
        if result.cancelled:
            kept = f"{result.duration:.1f} s kept as a partial video" if video else "no clip had finished"
            status = f"Cancelled: {kind.lower()} stopped after {timing:.0f} s: {kept}."
        else:
            status = f"{kind} finished in {timing:.1f} s: {result.num_frames} frames, {result.duration:.1f} s."
        segments = result.clip_emotions.segments
        used = ", ".join(f"{s['label']} {s['start']:.1f}-{min(s['end'], result.duration):.1f} s" for s in segments)
        status = "\n\n".join([status, f"Emotions used: {used}.", *notes])
        settings = str(result.settings_path) if result.settings_path.is_file() else None
        return video, clips, status, settings, result.seed

    def cancel(self, request: gr.Request) -> str:
        """Stop this visitor's run before its next denoising step; the finished clips stay a playable video."""
        event = self._cancel_events.get(_session(request))
        if event is None:
            return "Nothing is running."
        event.set()
        return "Cancelling: the run stops before its next denoising step and keeps the finished clips."

    # --- settings files ---------------------------------------------------------------------------------------

    def load_settings(self, path: str | None) -> tuple:
        """Restore the controls from a settings JSON (the sidecar of a run, or a bare request)."""
        if not path:
            raise _error(InputError("Choose a settings JSON file (the one downloaded next to a video)."))
        try:
            data = read_settings_file(path)
            request = GenerationRequest.from_dict(data.get("request", data))  # types and ranges, not the files
        except InputError as error:
            raise _error(InputError(f"These settings cannot be used: {error}")) from None

        def example(value) -> str | None:  # only our own example files are restored, never arbitrary paths
            candidate = self.settings.examples_dir / Path(str(value)).name
            try:
                return str(candidate) if candidate.is_file() else None
            except OSError:  # a name too long for the file system
                return None

        rows = [[s.start, s.end, "", None, s.label] for s in request.emotions.segments]
        decay = request.memory_decay
        reference_scale, audio_scale, emotion_scale = request.guidance_scales(self.default_guidance())
        return (
            example(request.image),
            example(request.audio),
            rows,
            request.emotions.global_label or USE_DETECTED,
            emotion_scale,
            reference_scale,
            audio_scale,
            self.default_steps() if request.steps is None else request.steps,
            request.seed,
            False,
            request.fps,
            request.past_frames,
            (PAPER_MEMORY_DECAY if self.pipeline is None else self.pipeline.diffusion_net.config.memory_decay)
            if decay is None
            else decay,
            decay is None,
            request.crop_scale,
            "Settings loaded: press Generate to reproduce the run"
            + ("" if example(request.image) else " (upload the same portrait and audio first)."),
        )
