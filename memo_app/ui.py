"""MEMO Studio's layout: widgets and events only; every handler is a method of its panel (``model_panel.py``,
``portrait_panel.py``, ``speech_panel.py``, ``emotion_panel.py``, ``runs.py``, ``history.py``), sharing one
``StudioService``.

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
from memo_app.history import NO_HISTORY, HistoryPanel
from memo_app.model_panel import MODEL_FIELDS, ModelPanel
from memo_app.portrait_panel import PortraitPanel
from memo_app.runs import AB_SIDES, RunPanel, RunView, preview_label
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
# Galleries of small pictures (clips, earlier runs) keep tiles of one size, however few there are: Gradio would
# stretch a lone clip over the whole width. The result plays at its own size and aspect (a model-size crop at least
# 256 px wide), never wider than the page nor taller than the screen.
CSS = """
.memo-status {min-height: 2.5em}
#run-time {font-size: 1.1em}
#clips .grid-container, #history .grid-container {
    grid-template-columns: repeat(auto-fill, minmax(110px, 150px)) !important
}
#result video {width: auto; min-width: min(100%, 256px); max-width: 100%; max-height: 70vh; margin: auto}
"""
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
    emotions, runs, history = EmotionPanel(service), RunPanel(service), HistoryPanel()
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
                portrait_notes = gr.Markdown(
                    label="Portrait notes", elem_classes="memo-status", elem_id="portrait-notes"
                )

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
                audio_info = gr.Markdown(speech.inspect_audio(None), label="Speech notes", elem_id="audio-info")

                with gr.Accordion("Model", open=service.pipeline is None):
                    model_status = gr.Markdown(model.model_status(), label="Model status", elem_id="model-status")
                    with gr.Row():
                        weights = gr.Textbox(
                            label="Weights: a local folder (official layout) or a hub id",
                            placeholder="memoavatar/memo  or  /path/to/weights  (empty = MEMO_WEIGHTS / bundled)",
                            scale=4,
                        )
                        load_model = gr.Button("Load", scale=1)

            # ---- right: emotions, controls, run ---------------------------------------------------------------
            with gr.Column(scale=7):
                gr.Markdown("### 3 · Emotion timeline", elem_id="emotions-heading")
                with gr.Row():
                    analyze = gr.Button("Analyze audio", variant="secondary", elem_id="analyze")
                    global_emotion = gr.Dropdown(
                        list(GLOBAL_CHOICES),
                        value=USE_DETECTED,
                        label="Emotion for the whole video",
                        info="'use detected' keeps the detected emotion of each segment",
                        elem_id="global-emotion",
                    )
                timeline = gr.Image(  # no label shown over the plot: the heading above names it
                    label="Emotion timeline",
                    show_label=False,
                    interactive=False,
                    height="auto",
                    buttons=["fullscreen"],
                    elem_id="timeline",
                )
                emotion_summary = gr.Markdown(
                    label="Emotion summary", elem_classes="memo-status", elem_id="emotion-summary"
                )
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
                precedence = gr.Markdown(
                    no_overrides.describe(), label="Which emotion wins", elem_id="emotion-precedence"
                )
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
                slider("emotion_guidance", guidance, elem_id="emotion-strength")
                ab_preview = gr.Button("A/B preview: detected vs. yours", interactive=False, elem_id="ab-preview")
                ab_status = gr.Markdown(
                    emotions.ab_note(no_overrides), label="A/B preview status", elem_classes="memo-status",
                    elem_id="ab-status",
                )  # fmt: skip
                with gr.Row():
                    ab_videos = [
                        gr.Video(label=title, interactive=False, height=220, elem_id=name.replace("_", "-"))
                        for title, name in AB_SIDES
                    ]

                gr.Markdown("### 4 · Settings")  # the run form's widgets carry the elem_ids RunForm names
                with gr.Row():
                    slider("reference_guidance", guidance, elem_id="reference-guidance")
                    slider("audio_guidance", guidance, elem_id="audio-guidance")
                with gr.Row():
                    slider("steps", service.default_steps(), elem_id="steps")  # the active model's
                    fps = slider("fps", elem_id="fps")
                with gr.Row():
                    with gr.Column(min_width=160):
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
                        min_width=160,
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

                with_true_or_false_check(
                    gr.Checkbox(
                        label="Paste the face back into the whole portrait",
                        info="On: when the photo is larger than the crop, the video shows the whole photo; the crop "
                        "alone is downloadable too. Off: the crop only.",
                        value=True,
                        elem_id="paste-back",
                    ),
                    "Paste the face back into the whole portrait",
                )

                gr.Markdown("### 5 · Run", elem_id="run-heading")
                with gr.Row():
                    preview = gr.Button(preview_label(service), interactive=False, elem_id="preview")
                    generate = gr.Button("Generate", variant="primary", interactive=False, elem_id="generate")
                    cancel = gr.Button("Cancel", variant="stop", interactive=False, elem_id="cancel")
                time_line = gr.Markdown(label="Time", elem_classes="memo-status", elem_id="run-time")
                status = gr.Markdown(label="Status", elem_classes="memo-status", elem_id="run-status")
                output_size = gr.Markdown(label="Output size", elem_id="output-size")
                gr.Video(label="Result (mp4 with your audio)", interactive=False, elem_id="result")
                gr.File(label="Crop-only video (mp4)", interactive=False, elem_id="crop-video")
                gr.File(label="Settings of this run (JSON)", interactive=False, elem_id="run-settings")
                gr.Gallery(label="Clips as they finish", columns=6, height=170, elem_id="clips")
                with gr.Row(equal_height=True):
                    gr.Number(label="Seed used", interactive=False, precision=0, min_width=160, elem_id="used-seed")
                    settings_in = gr.UploadButton(
                        "Load settings (JSON)…", file_types=[".json"], type="filepath", elem_id="load-settings"
                    )

                gr.Markdown("### 6 · History (this tab)")
                history_gallery = gr.Gallery(
                    label="Earlier results: click one for its files",
                    columns=4,
                    height=200,
                    allow_preview=False,
                    elem_id="history",
                )
                history_details = gr.Markdown(NO_HISTORY, label="History", elem_id="history-details")
                history_files = gr.File(
                    label="Files of that run", file_count="multiple", interactive=False, elem_id="history-files"
                )
                saved_run, saved_runs = gr.State(), gr.State([])

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
            [segment_picker, segment_emotion, precedence, ab_status],
            api_name="emotion_controls",
        )
        segment_picker.input(
            emotions.choose_segment, [table, segment_picker], segment_emotion, api_name="choose_segment"
        )
        picked = [segment_picker, segment_emotion]
        table.select(emotions.pick_row, table, picked, api_name="pick_row")
        timeline.select(emotions.pick_on_timeline, [audio, fps, table], picked, api_name="pick_on_timeline")

        run_form = RunForm.widgets(demo.blocks.values())  # {field: widget}: each reaches the handlers by its name
        run_view = RunView.widgets(demo.blocks.values(), saved=saved_run)  # what a run shows, in order
        # The estimate times the pipeline's parts: it queues in the generation slot, never beside a run. Every
        # change of the form (a slider dragged or typed into, a new portrait or speech) refreshes it; a burst of
        # changes gives one estimate, of the last.
        gr.on(
            [widget.change for widget in run_form.values()],
            runs.estimate,
            inputs_kwargs=run_form,
            outputs=[time_line, output_size],
            api_name="estimate",
            trigger_mode="always_last",
            concurrency_id=GENERATION,
            concurrency_limit=1,
            show_progress="hidden",
        )
        button_inputs = [image, audio, table, global_emotion]
        run_buttons = [preview, generate, ab_preview, cancel]
        gr.on(
            [image.change, audio.change, table.change, global_emotion.change],
            runs.buttons,
            button_inputs,
            run_buttons,
            api_name="run_buttons",
            queue=False,
        )
        # A run: its status cleared at once (it may wait for the slot), the run streaming into the Run panel (no
        # Gradio progress overlay: the panel says it), then the buttons as they can act again and, for a finished
        # run, the History panel.
        run_options = {"concurrency_id": GENERATION, "concurrency_limit": 1, "show_progress": "hidden"}
        history_outputs = [saved_runs, history_gallery, history_files, history_details]
        for button, handler, name in ((preview, runs.preview, "preview"), (generate, runs.generate, "generate")):
            run = button.click(
                runs.waiting, None, [status, preview, generate, ab_preview], api_name=f"{name}_waiting", queue=False
            ).then(handler, inputs_kwargs=run_form, outputs=run_view, api_name=name, **run_options)
            run.then(runs.buttons, button_inputs, run_buttons, api_name=f"{name}_ended", queue=False)
            run.success(history.remember, [saved_run, saved_runs], history_outputs, api_name=f"{name}_remembered")
        ab_run = ab_preview.click(  # the Emotions panel's A/B preview: two previews of the run form
            runs.waiting, None, [ab_status, preview, generate, ab_preview], api_name="ab_preview_waiting", queue=False
        ).then(
            runs.ab_preview,
            inputs_kwargs=run_form,
            outputs=[*ab_videos, ab_status, cancel],
            api_name="ab_preview",
            **run_options,
        )
        ab_run.then(runs.buttons, button_inputs, run_buttons, api_name="ab_preview_ended", queue=False)
        cancel.click(runs.cancel, None, [status, cancel], api_name="cancel", queue=False)
        history_gallery.select(history.pick, saved_runs, [history_files, history_details], api_name="pick_run")

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
        ).then(portrait.inspect_portrait, portrait_inputs, portrait_outputs, api_name="refresh_portrait").then(
            runs.buttons, button_inputs, run_buttons, api_name="model_buttons", queue=False
        )
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
