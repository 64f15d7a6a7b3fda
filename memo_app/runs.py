"""The Run panel: the time estimate, Preview, Generate, Cancel, and a run's settings file in and out.

A run is one ``GenerationRequest`` built from the run form (``form.py``) and handed to the pipeline on a worker
thread; the handler streams what the pipeline reports as a ``RunView`` (what the panel shows, field by field): the
status (clip i/N, step), one time line ("about 45 s" before, "about 30 s left" during, "took 43 s" after), each
finished clip as a small looping GIF, then the mp4 (the whole portrait with paste-back), the crop alone, the output
size and the settings file. Cancel sets the run's event; the pipeline stops before its next denoising step and keeps
the clips already written as a playable partial video. A finished run is kept for the History panel (``history.py``)
and teaches the estimate how fast this machine really is (``estimate.learn``).

The run handlers receive the form's values by name (``**values``, one per ``RunForm`` field), never by position.
"""

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import gradio as gr

from memo_app.display import clip_gif, count, input_error, segment_list
from memo_app.emotion_panel import USE_DETECTED, emotion_overrides, without_overrides
from memo_app.form import PREVIEW_SECONDS, RESTORED, RunForm, find_widgets, read_settings
from memo_app.history import keep_run
from memo_app.service import StudioService
from memo_model.audio.io import SAMPLE_RATE, load_audio
from memo_model.errors import InputError, SetupError
from memo_model.pipelines.estimate import TimeEstimate, clips_for, estimate_time, learn
from memo_model.pipelines.request import GenerationRequest

STATUS_INTERVAL = 0.5  # seconds between streamed status updates during a run
# Rough GPU seconds per clip and denoising step at 512 px (4 guidance passes): sizes a ZeroGPU reservation.
GPU_SECONDS_PER_CLIP_STEP = 1.5
GPU_OVERHEAD_SECONDS = 30
# The A/B preview's two sides: (title, file name suffix); ui.py labels the two videos with these titles.
AB_SIDES = (("A · detected emotions", "ab-detected"), ("B · your emotions", "ab-yours"))
WAITING = "Waiting for its turn: one run at a time on this machine…"

try:  # Hugging Face Spaces (ZeroGPU): reserve a GPU for the length of one run
    import spaces
except ImportError:
    spaces = None


def _gpu_seconds(pipeline, request: GenerationRequest, *args, **kwargs) -> int:
    """The ZeroGPU reservation for one run, from the audio length and the steps."""
    clips = clips_for(request.preview_length or request.max_audio_seconds, request.fps)
    steps = pipeline.model_info.steps_for(request)
    return int(GPU_OVERHEAD_SECONDS + clips * steps * GPU_SECONDS_PER_CLIP_STEP)


def _run_pipeline(pipeline, request, callback, cancel):
    return pipeline(request, callback=callback, cancel=cancel)


run_pipeline = _run_pipeline if spaces is None else spaces.GPU(duration=_gpu_seconds)(_run_pipeline)


def session_of(request: gr.Request | None) -> str:
    """Who is asking: the browser tab or gradio_client session, so Cancel stops only its own run."""
    return getattr(request, "session_hash", None) or "local"


def preview_label(service: StudioService) -> str:
    """The Preview button's text: what a preview covers with the active model."""
    return f"Preview (first {PREVIEW_SECONDS:g} s, {count(service.preview_steps(), 'step')})"


def shown_in(widget: str | None):
    """A field of the ``RunView``: the ``elem_id`` of the widget it updates (None: a ``gr.State``, handed over by
    name); left out of a view, the widget stays as it is."""
    return field(default_factory=gr.skip, metadata={"widget": widget})


@dataclass(frozen=True)
class RunView:
    """What the Run panel shows at one moment of a run, in the order of the run endpoints' outputs."""

    video: object = shown_in("result")  # the mp4 path
    crop_video: object = shown_in("crop-video")  # the crop alone, beside a pasted-back video
    clips: object = shown_in("clips")  # [(gif path, caption)]
    status: object = shown_in("run-status")
    time: object = shown_in("run-time")  # the one time on the page: estimate, time left, time taken
    output: object = shown_in("output-size")
    settings: object = shown_in("run-settings")  # the settings JSON
    seed: object = shown_in("used-seed")
    cancel: object = shown_in("cancel")  # the Cancel button: usable while the run goes on
    saved: object = shown_in(None)  # the finished run for the History panel (a history.SavedRun)

    @classmethod
    def widgets(cls, blocks, **states) -> list:
        """The widgets of the fields in order: found among ``blocks`` by elem_id, ``states`` by field name."""
        named = {spec.name: spec.metadata["widget"] for spec in fields(cls) if spec.metadata["widget"]}
        found = find_widgets(blocks, named) | states
        return [found[spec.name] for spec in fields(cls)]

    def values(self) -> tuple:
        return tuple(getattr(self, spec.name) for spec in fields(self))


def in_words(seconds: float, estimate: TimeEstimate) -> str:
    """Seconds as the estimate words them ("45 s", "3 min 07 s")."""
    return replace(estimate, seconds=seconds).spent


def seconds_left(estimated: float, progress) -> float:
    """Seconds a run still needs after ``progress``: the pipeline's own ETA extrapolates the steps done so far, which
    is noisy after the first few, so it is weighed against the estimate made before the run by the share done."""
    total = progress.num_clips * progress.num_steps
    done = (progress.clip * progress.num_steps + progress.step) / total
    return done * progress.eta + (1 - done) * max(estimated - progress.elapsed, 0.0)


def output_words(size: tuple[int, int], crop: int, paste_back_off: bool) -> str:
    """ "Output: 1024×768 (whole portrait)" or "Output: 64×64 (crop)", with why there is no whole portrait."""
    width, height = size
    if (width, height) != (crop, crop):
        return f"Output: **{width}×{height}** (whole portrait; the {crop}×{crop} crop alone is downloadable too)"
    reason = "paste-back is off" if paste_back_off else "the crop covers the whole photo"
    return f"Output: **{width}×{height}** (crop: {reason})"


class RunPanel:
    """Estimate, Preview, Generate, Cancel and Load settings."""

    def __init__(self, service: StudioService):
        self.service = service

    def _require_model(self):
        if self.service.pipeline is None:
            raise gr.Error(
                "No model is loaded, so nothing can be generated yet: the bundled MEMO-Tiny is not in this checkout. "
                "Enter a weights folder or hub id in the Model panel and press Load.",
                title="No model",
            )
        return self.service.pipeline

    def build_request(self, form: RunForm, preview: bool) -> GenerationRequest:
        """A validated request of the form, written into a folder of its own in the app's output folder (the
        History panel renames the files once the run says which emotions it used); raises InputError listing every
        problem."""
        settings = self.service.settings
        folder = settings.output_dir / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}"
        output = folder / f"{'preview' if preview else 'video'}.mp4"
        request = form.to_request(output=output, max_audio_seconds=settings.max_audio_seconds, preview=preview)
        pipeline = self.service.pipeline
        if pipeline is not None and request.resolution not in (None, pipeline.model_info.resolution):
            raise InputError(
                f"The active model works at {pipeline.model_info.resolution} px only; got {request.resolution}."
            )
        return request

    def _plan(self, request: GenerationRequest, audio_seconds: float) -> tuple[TimeEstimate, str]:
        """What a run of ``request`` will take on this machine, and the size of its video in words; the portrait is
        the one the Portrait panel prepared (no second face detection)."""
        pipeline = self.service.pipeline
        crop = pipeline.model_info.resolution_for(request)
        portrait = self.service.portrait(request.image, crop, request.crop_scale)
        estimate = estimate_time(pipeline, request, audio_seconds, portrait)
        size = pipeline.output_resolution(request, portrait)
        return estimate, output_words(size, crop, request.paste_back is False)

    def estimate(self, **values) -> tuple[str, str]:
        """(the time line, the output size) of a generation of the whole speech with the current settings, on this
        machine; quiet ("", "") until a portrait and speech are chosen or while a setting cannot be used.

        Refreshed on every change of the form. The first estimate for a number of guidance passes times the
        pipeline's parts (a few seconds; estimate.py), later ones reuse them, scaled to the machine's speed now.
        """
        form = RunForm(**values)
        if self.service.pipeline is None or not form.image or not form.audio:
            return "", ""
        try:
            request = self.build_request(form, preview=False)
            audio_seconds = self.service.analysis(request.audio, request.fps).duration
            estimate, output = self._plan(request, audio_seconds)
        except InputError:
            return "", ""  # the run buttons say what is wrong; the estimate stays quiet
        return (
            f"Generate: **about {estimate.spent}** on this machine ({count(estimate.clips, 'clip')} × "
            f"{count(estimate.steps, 'step')}, {count(estimate.passes, 'guidance pass', 'guidance passes')})",
            output,
        )

    def waiting(self) -> tuple:
        """As soon as a run is asked for: the status cleared to say it waits for the generation slot, and the run
        buttons off until it is over: (status, Preview, Generate, A/B preview)."""
        off = gr.update(interactive=False)
        return WAITING, off, off, off

    def buttons(self, image, audio, table, global_choice, request: gr.Request) -> tuple:
        """Which run buttons can act now: Preview and Generate with a model, a portrait and speech, the A/B preview
        also with an emotion of your own, Cancel while this tab's run goes on. (Preview, Generate, A/B, Cancel)."""
        running = self.service.is_running(session_of(request))
        ready = self.service.pipeline is not None and bool(image) and bool(audio) and not running
        try:
            chosen = not emotion_overrides(global_choice, table).is_empty
        except InputError:  # the Emotions panel says what is wrong with the table
            chosen = False
        return (
            gr.update(interactive=ready),
            gr.update(interactive=ready),
            gr.update(interactive=ready and chosen),
            gr.update(interactive=running),
        )

    def preview(self, request: gr.Request, **values) -> Iterator[tuple]:
        """The first seconds with fewer steps; same outputs as ``generate``."""
        for view in self.run(RunForm(**values), True, session_of(request), "preview"):
            yield view.values()

    def generate(self, request: gr.Request, **values) -> Iterator[tuple]:
        """The full length; yields the ``RunView`` fields as the run goes on."""
        for view in self.run(RunForm(**values), False, session_of(request)):
            yield view.values()

    def run(self, form: RunForm, preview: bool, session: str, suffix: str = "") -> Iterator[RunView]:
        """Generate (or preview); yields what the Run panel shows as the run goes on. ``suffix`` ends the names of
        its files ("astronaut_happy_seed42_preview.mp4")."""
        pipeline = self._require_model()
        try:
            request = self.build_request(form, preview)
            waveform = load_audio(request.audio, max_seconds=request.max_audio_seconds)  # unreadable, silent, long
            estimate, output = self._plan(request, len(waveform) / SAMPLE_RATE)
        except InputError as error:
            raise input_error(error) from None
        cancel = self.service.start_job(session)
        updates: queue.Queue = queue.Queue()
        outcome: dict = {}
        clips_dir = Path(request.output).parent / "clips"
        clips_dir.mkdir(parents=True, exist_ok=True)

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
        first_frame = None
        steps = pipeline.model_info.steps_for(request)
        kind = f"Preview ({request.preview_length:g} s, {count(steps, 'step')})" if preview else "Generation"
        yield RunView(
            video=None,
            crop_video=None,
            clips=clips,
            status=f"{kind}: preparing the portrait, audio and emotions…",
            time=f"**about {estimate.spent} left**",
            output=output,
            settings=None,
            seed=request.seed,
            cancel=gr.update(interactive=True),
        )
        last_yield = time.perf_counter()
        try:
            while (progress := updates.get()) is not None:
                if progress.frames is not None:
                    gif = clip_gif(progress.frames, clips_dir, progress.clip, request.fps)
                    clips = [*clips, (gif, f"clip {progress.clip + 1}/{progress.num_clips}")]
                    first_frame = progress.frames[0] if first_frame is None else first_frame
                elif time.perf_counter() - last_yield < STATUS_INTERVAL:
                    continue
                last_yield = time.perf_counter()
                left = seconds_left(estimate.seconds, progress)
                yield RunView(
                    clips=clips,
                    status=f"{kind}: clip {progress.clip + 1}/{progress.num_clips} · "
                    f"step {progress.step}/{progress.num_steps}",
                    time=f"**about {in_words(left, estimate)} left**" if left >= 1 else "**finishing…**",
                )
        finally:
            cancel.set()  # a closed browser tab or a cancelled job stops the pipeline too
            worker.join()
            self.service.end_job(session)
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, InputError | SetupError):
                raise input_error(error)
            raise gr.Error(f"The generation failed: {type(error).__name__}: {error}", title="Generation failed")
        result = outcome["result"]
        if not result.cancelled:
            learn(pipeline, estimate, result.timings.get("total", 0.0))  # the next estimates know this machine
        saved = keep_run(result, suffix, first_frame)
        yield self._finished(result, saved, clips, kind, estimate, request)

    def _finished(self, result, saved, clips, kind, estimate: TimeEstimate, request) -> RunView:
        taken = in_words(result.timings.get("total", 0.0), estimate)
        if result.cancelled:
            kept = f"{result.duration:.1f} s kept as a partial video" if saved.video else "no clip had finished"
            status, time_line = f"Cancelled: {kind.lower()} stopped: {kept}.", f"Stopped after **{taken}**"
        else:
            status = f"{kind} finished: {result.num_frames} frames, {result.duration:.1f} s."
            time_line = f"Took **{taken}**"
        lines = [status]
        if saved.video:
            lines.append(f"Emotions used: {segment_list(result.clip_emotions.segments, until=result.duration)}.")
        lines += [f"Warning: {warning}" for warning in result.warnings]
        crop = self.service.pipeline.model_info.resolution_for(request)
        return RunView(
            video=saved.video,
            crop_video=saved.crop_video,
            clips=clips,
            status="\n\n".join(lines),
            time=time_line,
            output=output_words(result.resolution, crop, request.paste_back is False) if saved.video else "",
            settings=saved.settings,
            seed=result.seed,
            cancel=gr.update(interactive=False),
            saved=saved,
        )

    def ab_preview(self, request: gr.Request, **values) -> Iterator[tuple]:
        """The first seconds previewed twice, side by side: A with the detected emotions, B with the person's
        overrides; yields (video A, video B, status, the Cancel button) as the runs go on.

        Both are previews of the run form (``RunForm`` → ``GenerationRequest``, same steps and seed) and differ only
        in the emotions: A's form has its overrides cleared.
        """
        form = RunForm(**values)
        try:
            overrides = emotion_overrides(form.global_choice, form.table)
        except InputError as error:
            raise input_error(error) from None
        if overrides.is_empty:
            raise input_error(
                "The A/B preview compares the detected emotions with yours: choose an emotion for a segment or for "
                "the whole video first."
            )
        session = session_of(request)
        detected = replace(form, table=without_overrides(form.table), global_choice=USE_DETECTED)
        yield None, None, "A/B preview: A first, with the detected emotions…", gr.skip()
        video_a, report_a, seed = yield from self._ab_side(detected, 0, "", session)
        if video_a is None or "Cancelled" in report_a:
            yield video_a, None, report_a, gr.update(interactive=False)
            return
        yours = replace(form, seed=seed, random_seed=False)  # the seed A used, even when A drew a random one
        video_b, report_b, _ = yield from self._ab_side(yours, 1, report_a, session)
        yield video_a, video_b, f"{report_a}\n\n{report_b}", gr.update(interactive=False)

    def _ab_side(self, form: RunForm, side: int, before: str, session: str):
        """Side ``side`` (0 = A, 1 = B) of the A/B preview: yields (skip, skip, its status under ``before``, the
        Cancel button) as it runs; returns (video, its report, the seed used)."""
        title, suffix = AB_SIDES[side]
        for view in self.run(form, True, session, suffix):
            status = view.status if isinstance(view.status, str) else "running…"
            report = "\n\n".join(part for part in (before, f"**{title}:** {status}") if part)
            yield gr.skip(), gr.skip(), report, view.cancel
        return view.video, f"**{title}:** {view.status}", view.seed

    def cancel(self, request: gr.Request) -> tuple:
        """Stop this visitor's run before its next denoising step; the finished clips stay a playable video.
        (status, the Cancel button)."""
        if not self.service.cancel_job(session_of(request)):
            return "Nothing is running.", gr.update(interactive=False)
        return (
            "Cancelling: the run stops before its next denoising step and keeps the finished clips.",
            gr.update(interactive=False),
        )

    def load_settings(self, path: str | None) -> tuple:
        """Restore the run form from a settings JSON (the sidecar of a run, or a bare request): the values of the
        ``RESTORED`` fields, in that order, then the status line."""
        if not path:
            raise input_error(InputError("Choose a settings JSON file (the one downloaded next to a video)."))
        try:
            request = read_settings(path)
        except InputError as error:
            raise input_error(InputError(f"These settings cannot be used: {error}")) from None
        service = self.service
        form = RunForm.from_request(
            request,
            steps=service.default_steps(),
            guidance=service.default_guidance(),
            memory_decay=service.memory_decay(),
        )
        form = replace(form, image=self._example(request.image), audio=self._example(request.audio))
        status = "Settings loaded: press Generate to reproduce the run" + (
            "" if form.image else " (upload the same portrait and audio first)."
        )
        return (*form.values(RESTORED), status)

    def _example(self, value) -> str | None:
        """One of our own example files by the name in a settings file: only these are restored, never arbitrary
        paths."""
        candidate = self.service.settings.examples_dir / Path(str(value)).name
        try:
            return str(candidate) if candidate.is_file() else None
        except OSError:  # a name too long for the file system
            return None
