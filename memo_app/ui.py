"""MEMO Studio's layout: widgets and events only; every handler is a ``StudioService`` method.

Every event has an ``api_name``, so ``gradio_client`` drives exactly what the buttons do. Slider ranges, defaults,
labels and help texts come from ``memo_model.pipelines.request.LIMITS``, the table the CLI uses too.
"""

import math
from pathlib import Path

import gradio as gr

from memo_app.service import (
    GLOBAL_CHOICES,
    PAPER_MEMORY_DECAY,
    TABLE_HEADERS,
    USE_DETECTED,
    StudioService,
)
from memo_model.audio.emotion import SELECTABLE_EMOTIONS
from memo_model.errors import InputError, shown
from memo_model.pipelines.request import LIMITS, Limit
from memo_model.vision.face import check_image

TITLE = "MEMO Studio"
INTRO = (
    "# MEMO Studio\nMemory-guided, emotion-aware talking video from one portrait and a voice. "
    "**1** choose a portrait and speech, **2** analyze the emotions and change any you like, **3** preview, "
    "then generate."
)
CSS = ".memo-status {min-height: 2.5em} footer {display: none !important}"
GENERATION = "generation"  # preview, generate and model loading share one slot: one run at a time
SEGMENT_NUMBER = Limit(1, math.inf, 1, 1, "Segment", "Row of the segment table to set")


def with_readable_image_errors(component: gr.Image) -> gr.Image:
    """Hand an uploaded picture over as its file, untouched, and answer a file that is not an image with a message
    for people instead of Gradio's processing error.

    Gradio's own preprocessing would convert the pixels (16-bit grey clipped to white) and open the file with PIL's
    defaults (a decompression bomb becomes an internal error); ``memo_model``'s loader does both properly, and
    ``check_image`` reads only the header here. Wraps the instance's ``preprocess`` (a ``gr.Image`` subclass would
    make Gradio write a ``.pyi`` stub here).
    """
    preprocess = component.preprocess

    def checked(payload):
        if payload is None:
            return None
        local = payload.path and not (payload.url or "").startswith("data:")
        try:
            path = payload.path if local else preprocess(payload)  # a data: URL is decoded to a file by Gradio
            check_image(path)
        except InputError as error:
            raise _input_error(str(error)) from None
        except (OSError, ValueError):  # Gradio could not decode a data: URL
            name = Path(getattr(payload, "orig_name", None) or "the file").name
            message = f"{name} is not an image that can be read — upload a photo (PNG, JPEG or WebP) with one face."
            raise _input_error(message) from None
        return path

    component.preprocess = checked
    return component


def with_number_check(component: gr.Slider | gr.Number, limit: Limit):
    """Answer a value that is not a finite number in ``limit``'s range (text, NaN or infinity sent through the API)
    with a message naming the setting and its range, before Gradio's own preprocessing turns it into an internal
    error."""
    preprocess = component.preprocess

    def checked(payload):
        if payload is None and isinstance(component, gr.Number):
            return preprocess(payload)  # an empty number box: the handler says what is missing
        value = _finite_number(payload)
        if value is None:
            raise _input_error(f"{limit.label} must be a number {limit.span}; got {shown(payload)}.")
        if not limit.minimum <= value <= limit.maximum:
            raise _input_error(f"{limit.label} must be {limit.span}; got {shown(value)}.")
        return preprocess(payload if isinstance(payload, int) else value)

    component.preprocess = checked
    return component


def _finite_number(payload) -> float | None:
    """``payload`` as a finite number (numeric text too), or None when it is not one."""
    if isinstance(payload, bool) or not isinstance(payload, int | float | str):
        return None
    try:
        value = float(payload)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def with_true_or_false_check(component: gr.Checkbox, label: str) -> gr.Checkbox:
    """Refuse anything but true or false (``"no"`` sent through the API would otherwise count as ticked)."""
    preprocess = component.preprocess

    def checked(payload):
        if payload is not None and not isinstance(payload, bool):
            raise _input_error(f"{label} must be true or false; got {shown(payload)}.")
        return preprocess(payload)

    component.preprocess = checked
    return component


def _input_error(message: str) -> gr.Error:
    return gr.Error(message, title="Please check the input", print_exception=False)


def slider(name: str, value=None, **kwargs) -> gr.Slider:
    """A slider whose range, step, default, label and help are those of ``LIMITS[name]``."""
    limit = LIMITS[name]
    default = limit.default if value is None else value
    component = gr.Slider(
        minimum=limit.minimum,
        maximum=limit.maximum,
        value=default,
        step=limit.step,
        label=limit.label,
        info=limit.help,
        **kwargs,
    )
    return with_number_check(component, limit)


def _examples(folder: Path, pattern: str) -> list[str]:
    return [str(path) for path in sorted(folder.glob(pattern))]


def build_demo(service: StudioService) -> gr.Blocks:
    settings = service.settings
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            # ---- left: inputs ---------------------------------------------------------------------------------
            with gr.Column(scale=5):
                gr.Markdown("### 1 · Portrait")
                image = with_readable_image_errors(
                    gr.Image(
                        label="Portrait",
                        sources=["upload", "webcam", "clipboard"],
                        type="filepath",
                        image_mode=None,  # the file as uploaded: memo_model's loader converts every mode
                        height=280,
                        elem_id="portrait",
                    )
                )
                portrait_examples = _examples(settings.examples_dir, "*.png") + _examples(
                    settings.examples_dir, "*.jpg"
                )
                if portrait_examples:
                    gr.Examples(portrait_examples, inputs=image, label="Example portraits", examples_per_page=8)
                crop_scale = slider("crop_scale")
                with gr.Row():
                    face_view = gr.Image(label="Face (green), crop (orange)", interactive=False, height=220)
                    crop_view = gr.Image(label="Model input", interactive=False, height=220)
                portrait_notes = gr.Markdown(elem_classes="memo-status", elem_id="portrait-notes")

                gr.Markdown("### 2 · Speech")
                audio = gr.Audio(
                    label=f"Speech (at most {settings.max_audio_seconds:g} s; use the scissors to trim)",
                    sources=["upload", "microphone"],
                    type="filepath",
                    editable=True,
                    elem_id="speech",
                )
                audio_examples = _examples(settings.examples_dir, "*.wav")
                if audio_examples:
                    gr.Examples(audio_examples, inputs=audio, label="Example speech", examples_per_page=8)
                audio_info = gr.Markdown(service.inspect_audio(None), elem_id="audio-info")

                with gr.Accordion("Model", open=service.pipeline is None):
                    model_status = gr.Markdown(service.model_status(), elem_id="model-status")
                    with gr.Row():
                        weights = gr.Textbox(
                            label="Weights: a local folder (official layout) or a hub id",
                            placeholder="memoavatar/memo  or  /path/to/weights  (empty = MEMO_WEIGHTS / bundled)",
                            scale=4,
                        )
                        load_model = gr.Button("Load", scale=1)

            # ---- right: emotions, controls, run ---------------------------------------------------------------
            with gr.Column(scale=7):
                gr.Markdown("### 3 · Emotion timeline")
                with gr.Row():
                    analyze = gr.Button("Analyze audio", variant="secondary", elem_id="analyze")
                    global_emotion = gr.Dropdown(
                        list(GLOBAL_CHOICES),
                        value=USE_DETECTED,
                        label="Emotion for the whole video",
                        info="'use detected' keeps the detected emotion of each segment",
                        elem_id="global-emotion",
                    )
                timeline = gr.Image(label="Emotion timeline", interactive=False, elem_id="timeline")
                emotion_summary = gr.Markdown(elem_classes="memo-status", elem_id="emotion-summary")
                table = gr.Dataframe(
                    headers=TABLE_HEADERS,
                    datatype=["number", "number", "str", "number", "str"],
                    label=f"Segments — type an emotion in 'override' ({', '.join(SELECTABLE_EMOTIONS)}); add rows "
                    "for your own segments",
                    interactive=True,
                    row_count=(0, "dynamic"),
                    column_count=(5, "fixed"),
                    elem_id="segments",
                )
                with gr.Row():
                    segment_number = with_number_check(
                        gr.Number(label="Segment", value=1, precision=0, minimum=1, elem_id="segment-number"),
                        SEGMENT_NUMBER,
                    )
                    segment_emotion = gr.Dropdown(
                        [USE_DETECTED, *SELECTABLE_EMOTIONS], value="happy", label="Emotion", elem_id="segment-emotion"
                    )
                    set_segment = gr.Button("Set segment emotion", elem_id="set-segment")
                guidance = service.default_guidance()  # the active model's (3.5 for the official weights)
                emotion_strength = slider("emotion_guidance", guidance)

                gr.Markdown("### 4 · Settings")
                with gr.Row():
                    reference_guidance = slider("reference_guidance", guidance)
                    audio_guidance = slider("audio_guidance", guidance)
                with gr.Row():
                    steps = slider("steps", service.default_steps())  # the active model's (official 20)
                    fps = slider("fps")
                with gr.Row():
                    seed_limit = LIMITS["seed"]
                    seed = with_number_check(
                        gr.Number(
                            value=seed_limit.default,
                            label=seed_limit.label,
                            info=seed_limit.help,
                            precision=0,
                            minimum=seed_limit.minimum,
                            maximum=seed_limit.maximum,
                        ),
                        seed_limit,
                    )
                    random_seed = with_true_or_false_check(
                        gr.Checkbox(label="Random seed", value=False), "Random seed"
                    )
                    resolution = gr.Dropdown(
                        label="Resolution (px)",
                        info="What the active model supports",
                        elem_id="resolution",
                        **service.resolution_choices(),
                    )
                with gr.Accordion("Advanced", open=False):
                    past_frames = slider("past_frames")
                    with gr.Row():
                        memory_decay = slider("memory_decay", value=PAPER_MEMORY_DECAY)
                        model_decay = with_true_or_false_check(
                            gr.Checkbox(label="Use the model's memory decay", value=True),
                            "Use the model's memory decay",
                        )

                gr.Markdown("### 5 · Run")
                with gr.Row():
                    preview = gr.Button(service.preview_label(), elem_id="preview")
                    generate = gr.Button("Generate", variant="primary", elem_id="generate")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
                estimate = gr.Markdown(elem_classes="memo-status", elem_id="run-estimate")
                status = gr.Markdown(elem_classes="memo-status", elem_id="run-status")
                video = gr.Video(label="Result (mp4 with audio)", interactive=False, height=360, elem_id="result")
                clips = gr.Gallery(label="Clips as they finish", columns=6, height=170, elem_id="clips")
                with gr.Row():
                    settings_file = gr.File(label="Settings of this run (JSON)", interactive=False)
                    used_seed = gr.Number(label="Seed used", interactive=False, precision=0)
                with gr.Row():
                    settings_in = gr.File(label="Load settings (JSON)", file_types=[".json"], type="filepath")

        # ---- events -----------------------------------------------------------------------------------------------
        portrait_inputs = [image, crop_scale]
        portrait_outputs = [face_view, crop_view, portrait_notes]
        image.change(service.inspect_portrait, portrait_inputs, portrait_outputs, api_name="inspect_portrait")
        crop_scale.release(service.inspect_portrait, portrait_inputs, portrait_outputs, api_name="set_crop_scale")
        audio.change(service.inspect_audio, audio, audio_info, api_name="inspect_audio")

        analyze.click(
            service.analyze, [audio, fps, global_emotion], [timeline, table, emotion_summary], api_name="analyze"
        )
        timeline_inputs = [audio, fps, table, global_emotion]
        table.input(service.update_timeline, timeline_inputs, [timeline, emotion_summary], api_name="update_timeline")
        global_emotion.input(
            service.update_timeline, timeline_inputs, [timeline, emotion_summary], api_name="set_global_emotion"
        )
        set_segment.click(
            service.set_segment, [table, segment_number, segment_emotion], table, api_name="set_segment"
        ).success(service.update_timeline, timeline_inputs, [timeline, emotion_summary], api_name="redraw_timeline")

        run_inputs = [
            image,
            audio,
            table,
            global_emotion,
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
        ]
        run_outputs = [video, clips, status, settings_file, used_seed]
        # The estimate's probe runs the pipeline: it queues in the generation slot, never beside a run.
        estimate_options = {"concurrency_id": GENERATION, "concurrency_limit": 1, "show_progress": "hidden"}
        gr.on(
            [
                analyze.click,
                steps.release,
                reference_guidance.release,
                audio_guidance.release,
                emotion_strength.release,
            ],
            service.estimate,
            run_inputs,
            estimate,
            api_name="estimate",
            **estimate_options,
        )
        run_options = {"concurrency_id": GENERATION, "concurrency_limit": 1, "show_progress_on": [status]}
        preview.click(service.preview, run_inputs, run_outputs, api_name="preview", **run_options)
        generate.click(service.generate, run_inputs, run_outputs, api_name="generate", **run_options)
        cancel.click(service.cancel, None, status, api_name="cancel", queue=False)

        settings_in.upload(
            service.load_settings,
            settings_in,
            # the run's inputs except the resolution (the active model decides it), then the status line
            [widget for widget in run_inputs if widget is not resolution] + [status],
            api_name="load_settings",
        )
        load_model.click(
            service.load_model,
            weights,
            [model_status, resolution, preview, emotion_strength, reference_guidance, audio_guidance, steps],
            api_name="load_model",
            concurrency_id=GENERATION,
            concurrency_limit=1,
        ).then(service.inspect_portrait, portrait_inputs, portrait_outputs, api_name="refresh_portrait")
        demo.load(service.model_status, None, model_status, api_name="model_status")
    return demo


def launch(demo: gr.Blocks, service: StudioService, **kwargs):
    """Queue (bounded, one generation at a time) and serve only the app's own folders."""
    settings = service.settings
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    options = {
        "server_name": settings.server_name,
        "server_port": settings.server_port,
        "max_file_size": settings.max_upload,
        "allowed_paths": [str(settings.output_dir), str(settings.examples_dir)],
        "css": CSS,
        "theme": gr.themes.Soft(),
        "show_error": True,
    }
    return demo.launch(**{**options, **kwargs})
