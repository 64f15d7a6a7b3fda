"""MEMO Studio's layout: widgets and events only; every handler is a method of its panel (``model_panel.py``,
``portrait_panel.py``, ``speech_panel.py``, ``emotion_panel.py``, ``runs.py``), all sharing one ``StudioService``.

Every event has an ``api_name``, so ``gradio_client`` drives exactly what the buttons do. Slider ranges, defaults,
labels and help texts come from ``memo_model.pipelines.request.LIMITS``, the table the CLI uses too. The run
settings' widgets are found from the one field list of ``form.RunForm`` (by ``elem_id``) and reach the run handlers
by name.
"""

import math
from pathlib import Path

import gradio as gr

from memo_app.display import input_error
from memo_app.emotion_panel import (
    GLOBAL_CHOICES,
    STATIC_COLUMNS,
    TABLE_HEADERS,
    TABLE_TYPES,
    USE_DETECTED,
    EmotionPanel,
)
from memo_app.form import RESTORED, RunForm
from memo_app.model_panel import MODEL_FIELDS, ModelPanel
from memo_app.portrait_panel import PortraitPanel
from memo_app.runs import AB_SIDES, RunPanel, preview_label
from memo_app.service import PAPER_MEMORY_DECAY, StudioService
from memo_app.speech_panel import SpeechPanel
from memo_model import EmotionOverrides
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


def with_handler_check(component: gr.Dropdown) -> gr.Dropdown:
    """Hand the value over as sent: the segment list's choices change with every analysis, per browser tab, so a
    script that sends a segment number is answered by the handler, which knows the table, in words."""
    component.preprocess = lambda payload: payload
    return component


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
            raise input_error(error) from None
        except (OSError, ValueError):  # Gradio could not decode a data: URL
            name = Path(getattr(payload, "orig_name", None) or "the file").name
            message = f"{name} is not an image that can be read — upload a photo (PNG, JPEG or WebP) with one face."
            raise input_error(message) from None
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
            raise input_error(f"{limit.label} must be a number {limit.span}; got {shown(payload)}.")
        if not limit.minimum <= value <= limit.maximum:
            raise input_error(f"{limit.label} must be {limit.span}; got {shown(value)}.")
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
            raise input_error(f"{label} must be true or false; got {shown(payload)}.")
        return preprocess(payload)

    component.preprocess = checked
    return component


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
    model, portrait, speech = ModelPanel(service), PortraitPanel(service), SpeechPanel(service)
    emotions, runs = EmotionPanel(service), RunPanel(service)
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
                crop_scale = slider("crop_scale", elem_id="crop-scale")
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
                audio_info = gr.Markdown(speech.inspect_audio(None), elem_id="audio-info")

                with gr.Accordion("Model", open=service.pipeline is None):
                    model_status = gr.Markdown(model.model_status(), elem_id="model-status")
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
                timeline = gr.Image(  # no label over the plot: the heading above names it
                    show_label=False, interactive=False, height="auto", buttons=["fullscreen"], elem_id="timeline"
                )
                emotion_summary = gr.Markdown(elem_classes="memo-status", elem_id="emotion-summary")
                with gr.Row():  # choices from lists only: nothing to mistype
                    segment_picker = with_handler_check(
                        gr.Dropdown(
                            [],
                            label="Segment",
                            info="or click it on the timeline or in the table",
                            filterable=False,
                            interactive=False,
                            elem_id="segment-picker",
                        )
                    )
                    segment_emotion = gr.Dropdown(
                        list(GLOBAL_CHOICES),
                        value=USE_DETECTED,
                        label="Its emotion",
                        info="applied as soon as you choose",
                        filterable=False,
                        interactive=False,
                        elem_id="segment-emotion",
                    )
                    clear_overrides = gr.Button("Clear overrides", scale=0, min_width=190, elem_id="clear-overrides")
                no_overrides = EmotionOverrides()
                precedence = gr.Markdown(no_overrides.describe(), elem_id="emotion-precedence")
                table = gr.Dataframe(
                    headers=TABLE_HEADERS,
                    datatype=TABLE_TYPES,
                    label="Segments: click a row to choose its emotion above; edit start/end or add a row for a "
                    "stretch of your own",
                    interactive=True,
                    row_count=(0, "dynamic"),
                    static_columns=STATIC_COLUMNS,
                    column_widths=["80px", "70px", "100px", "320px", "100px"],  # a phone scrolls them sideways
                    wrap=True,
                    elem_id="segments",
                )
                guidance = service.default_guidance()  # the active model's (3.5 for the official weights)
                emotion_strength = slider("emotion_guidance", guidance, elem_id="emotion-strength")
                ab_preview = gr.Button("A/B preview: detected vs. yours", interactive=False, elem_id="ab-preview")
                ab_status = gr.Markdown(
                    emotions.ab_note(no_overrides), elem_classes="memo-status", elem_id="ab-status"
                )
                with gr.Row():
                    ab_videos = [
                        gr.Video(label=title, interactive=False, height=220, elem_id=name.replace("_", "-"))
                        for title, name in AB_SIDES
                    ]

                gr.Markdown("### 4 · Settings")  # the run form's widgets carry the elem_ids RunForm names
                with gr.Row():
                    reference_guidance = slider("reference_guidance", guidance, elem_id="reference-guidance")
                    audio_guidance = slider("audio_guidance", guidance, elem_id="audio-guidance")
                with gr.Row():
                    steps = slider("steps", service.default_steps(), elem_id="steps")  # the active model's
                    fps = slider("fps", elem_id="fps")
                with gr.Row():
                    seed_limit = LIMITS["seed"]
                    with_number_check(
                        gr.Number(
                            value=seed_limit.default,
                            label=seed_limit.label,
                            info=seed_limit.help,
                            precision=0,
                            minimum=seed_limit.minimum,
                            maximum=seed_limit.maximum,
                            elem_id="seed",
                        ),
                        seed_limit,
                    )
                    with_true_or_false_check(
                        gr.Checkbox(label="Random seed", value=False, elem_id="random-seed"), "Random seed"
                    )
                    gr.Dropdown(
                        label="Resolution (px)",
                        info="What the active model supports",
                        elem_id="resolution",
                        **model.resolution_choices(),
                    )
                with gr.Accordion("Advanced", open=False):
                    slider("past_frames", elem_id="past-frames")
                    with gr.Row():
                        slider("memory_decay", value=PAPER_MEMORY_DECAY, elem_id="memory-decay")
                        with_true_or_false_check(
                            gr.Checkbox(label="Use the model's memory decay", value=True, elem_id="model-decay"),
                            "Use the model's memory decay",
                        )

                gr.Markdown("### 5 · Run")
                with gr.Row():
                    preview = gr.Button(preview_label(service), elem_id="preview")
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
        image.change(portrait.inspect_portrait, portrait_inputs, portrait_outputs, api_name="inspect_portrait")
        crop_scale.release(portrait.inspect_portrait, portrait_inputs, portrait_outputs, api_name="set_crop_scale")
        audio.change(speech.inspect_audio, audio, audio_info, api_name="inspect_audio")

        analyze.click(
            emotions.analyze, [audio, fps, global_emotion], [timeline, table, emotion_summary], api_name="analyze"
        )
        timeline_inputs = [audio, fps, table, global_emotion]
        table.input(emotions.update_timeline, timeline_inputs, [timeline, emotion_summary], api_name="update_timeline")
        global_emotion.input(
            emotions.update_timeline, timeline_inputs, [timeline, emotion_summary], api_name="set_global_emotion"
        )
        segment_emotion.input(
            emotions.set_segment, [table, segment_picker, segment_emotion], table, api_name="set_segment"
        ).success(emotions.update_timeline, timeline_inputs, [timeline, emotion_summary], api_name="redraw_timeline")
        clear_overrides.click(
            emotions.clear_overrides, table, [table, global_emotion], api_name="clear_overrides"
        ).success(emotions.update_timeline, timeline_inputs, [timeline, emotion_summary], api_name="redraw_cleared")
        gr.on(
            [table.change, global_emotion.change],
            emotions.controls,
            [table, global_emotion, segment_picker],
            [segment_picker, segment_emotion, precedence, ab_preview, ab_status],
            api_name="emotion_controls",
        )
        segment_picker.input(
            emotions.choose_segment, [table, segment_picker], segment_emotion, api_name="choose_segment"
        )
        picked = [segment_picker, segment_emotion]
        table.select(emotions.pick_row, table, picked, api_name="pick_row")
        timeline.select(emotions.pick_on_timeline, [audio, fps, table], picked, api_name="pick_on_timeline")

        run_form = RunForm.widgets(demo.blocks.values())  # {field: widget}: each reaches the handlers by its name
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
            runs.estimate,
            inputs_kwargs=run_form,
            outputs=estimate,
            api_name="estimate",
            **estimate_options,
        )
        run_options = {"concurrency_id": GENERATION, "concurrency_limit": 1, "show_progress_on": [status]}
        preview.click(runs.preview, inputs_kwargs=run_form, outputs=run_outputs, api_name="preview", **run_options)
        generate.click(runs.generate, inputs_kwargs=run_form, outputs=run_outputs, api_name="generate", **run_options)
        cancel.click(runs.cancel, None, status, api_name="cancel", queue=False)
        ab_preview.click(  # the Emotions panel's A/B preview: two previews of the run form, in the generation slot
            runs.ab_preview,
            inputs_kwargs=run_form,
            outputs=[*ab_videos, ab_status],
            api_name="ab_preview",
            **{**run_options, "show_progress_on": [ab_status]},
        )

        settings_in.upload(
            runs.load_settings,
            settings_in,
            [run_form[name] for name in RESTORED] + [status],
            api_name="load_settings",
        )
        load_model.click(
            model.load_model,
            weights,
            [model_status, preview] + [run_form[name] for name in MODEL_FIELDS],
            api_name="load_model",
            concurrency_id=GENERATION,
            concurrency_limit=1,
        ).then(portrait.inspect_portrait, portrait_inputs, portrait_outputs, api_name="refresh_portrait")
        demo.load(model.model_status, None, model_status, api_name="model_status")
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
