"""The Run panel: the time estimate, Preview, Generate, Cancel, and a run's settings file in and out.

A run is one ``GenerationRequest`` built from the run form (``form.py``) and handed to the pipeline on a worker
thread; the handler streams what the pipeline reports: progress (clip i/N, step, ETA), each finished clip as a small
looping GIF, then the mp4 and its settings JSON. Cancel sets the run's event; the pipeline stops before its next
denoising step and keeps the clips already written as a playable partial video.

The run handlers receive the form's values by name (``**values``, one per ``RunForm`` field), never by position.
"""

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import gradio as gr

from memo_app.display import clip_gif, count, input_error, segment_list
from memo_app.emotion_panel import USE_DETECTED, emotion_overrides, without_overrides
from memo_app.form import PREVIEW_SECONDS, RESTORED, RunForm, read_settings
from memo_app.service import StudioService
from memo_model.audio.io import load_audio
from memo_model.errors import InputError, SetupError
from memo_model.pipelines.estimate import clips_for, estimate_time
from memo_model.pipelines.request import GenerationRequest

STATUS_INTERVAL = 0.5  # seconds between streamed status updates during a run
# Rough GPU seconds per clip and denoising step at 512 px (4 guidance passes): sizes a ZeroGPU reservation.
GPU_SECONDS_PER_CLIP_STEP = 1.5
GPU_OVERHEAD_SECONDS = 30
# The A/B preview's two sides: (title, output file name); ui.py labels the two videos with these titles.
AB_SIDES = (("A · detected emotions", "ab_detected"), ("B · your emotions", "ab_yours"))

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

    def build_request(self, form: RunForm, preview: bool, name: str | None = None) -> GenerationRequest:
        """A validated request of the form, written into the app's output folder as ``{time}_{name}.mp4`` (by
        default "preview" or "video"); raises InputError listing every problem."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kind = name or ("preview" if preview else "video")
        settings = self.service.settings
        output = settings.output_dir / f"{stamp}_{kind}.mp4"
        request = form.to_request(output=output, max_audio_seconds=settings.max_audio_seconds, preview=preview)
        pipeline = self.service.pipeline
        if pipeline is not None and request.resolution not in (None, pipeline.model_info.resolution):
            raise InputError(
                f"The active model works at {pipeline.model_info.resolution} px only; got {request.resolution}."
            )
        return request

    def estimate(self, **values) -> str:
        """Expected wall time of a preview and of the whole video with the current settings, on this machine.

        The first estimate for a number of guidance passes runs a short probe of the real pipeline (a few seconds;
        estimate.py), later ones reuse it. Shown before a run; nothing is said until a portrait and audio are chosen.
        """
        form = RunForm(**values)
        pipeline = self.service.pipeline
        if pipeline is None or not form.image or not form.audio:
            return ""
        try:
            request = self.build_request(form, preview=False)
            duration = self.service.analysis(request.audio, request.fps).duration
        except InputError:
            return ""  # the run buttons say what is wrong; the estimate stays quiet
        preview = estimate_time(pipeline, request.replace(preview_seconds=PREVIEW_SECONDS), duration)
        full = estimate_time(pipeline, request, duration)
        return (
            f"Expected time on this machine: preview **{preview.spent}**, "
            f"full video **{full.spent}** ({full.clips} clips × {full.steps} steps, "
            f"{full.passes} guidance passes)."
        )

    def preview(self, request: gr.Request, progress=gr.Progress(), **values) -> Iterator[tuple]:
        """The first seconds with fewer steps; same outputs as ``generate``."""
        yield from self.run(RunForm(**values), True, session_of(request), progress)

    def generate(self, request: gr.Request, progress=gr.Progress(), **values) -> Iterator[tuple]:
        """The full length; yields (video, clips, status, settings file, used seed) as the run goes on."""
        yield from self.run(RunForm(**values), False, session_of(request), progress)

    def run(
        self, form: RunForm, preview: bool, session: str, progress_bar=None, name: str | None = None
    ) -> Iterator[tuple]:
        """Generate (or preview); yields (video, clips, status, settings file, used seed) as the run goes on."""
        pipeline = self._require_model()
        try:
            request = self.build_request(form, preview, name)
            load_audio(request.audio, max_seconds=request.max_audio_seconds)  # unreadable / silent / too long
        except InputError as error:
            raise input_error(error) from None
        cancel = self.service.start_job(session)
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
                    gif = clip_gif(progress.frames, run_dir, progress.clip, request.fps)
                    clips = [*clips, (gif, f"clip {progress.clip + 1}")]
                elif time.perf_counter() - last_yield < STATUS_INTERVAL:
                    continue
                last_yield = time.perf_counter()
                yield gr.skip(), clips, status, gr.skip(), request.seed
        finally:
            cancel.set()  # a closed browser tab or a cancelled job stops the pipeline too
            worker.join()
            self.service.end_job(session)
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, InputError | SetupError):
                raise input_error(error)
            raise gr.Error(f"The generation failed: {type(error).__name__}: {error}", title="Generation failed")
        yield self._finished(outcome["result"], clips, kind)

    def _finished(self, result, clips, kind) -> tuple:
        notes = [f"Warning: {warning}" for warning in result.warnings]
        timing = result.timings.get("total", 0.0)
        video = str(result.video_path) if result.video_path.is_file() and result.num_frames else None
        if result.cancelled:
            kept = f"{result.duration:.1f} s kept as a partial video" if video else "no clip had finished"
            status = f"Cancelled: {kind.lower()} stopped after {timing:.0f} s: {kept}."
        else:
            status = f"{kind} finished in {timing:.1f} s: {result.num_frames} frames, {result.duration:.1f} s."
        used = segment_list(result.clip_emotions.segments, until=result.duration)
        status = "\n\n".join([status, f"Emotions used: {used}.", *notes])
        settings = str(result.settings_path) if result.settings_path.is_file() else None
        return video, clips, status, settings, result.seed

    def ab_preview(self, request: gr.Request, progress=gr.Progress(), **values) -> Iterator[tuple]:
        """The first seconds previewed twice, side by side: A with the detected emotions, B with the person's
        overrides; yields (video A, video B, status) as the runs go on.

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
        yield None, None, "A/B preview: A first, with the detected emotions…"
        video_a, report_a, seed = yield from self._ab_side(detected, 0, "", session, progress)
        if video_a is None or "Cancelled" in report_a:
            yield video_a, None, report_a
            return
        yours = replace(form, seed=seed, random_seed=False)  # the seed A used, even when A drew a random one
        video_b, report_b, _ = yield from self._ab_side(yours, 1, report_a, session, progress)
        yield video_a, video_b, f"{report_a}\n\n{report_b}"

    def _ab_side(self, form: RunForm, side: int, before: str, session: str, progress):
        """Side ``side`` (0 = A, 1 = B) of the A/B preview: yields (skip, skip, its status under ``before``) as it
        runs; returns (video, its report, the seed used)."""
        title, name = AB_SIDES[side]
        for outputs in self.run(form, True, session, progress, name):
            yield gr.skip(), gr.skip(), "\n\n".join(part for part in (before, f"**{title}:** {outputs[2]}") if part)
        video, _, status, _, seed = outputs
        return video, f"**{title}:** {status}", seed

    def cancel(self, request: gr.Request) -> str:
        """Stop this visitor's run before its next denoising step; the finished clips stay a playable video."""
        if not self.service.cancel_job(session_of(request)):
            return "Nothing is running."
        return "Cancelling: the run stops before its next denoising step and keeps the finished clips."

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
