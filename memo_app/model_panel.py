"""The Model panel: which weights are active, and loading others (a folder, a hub id, or the bundled MEMO-Tiny).

A newly loaded model also moves the run form's model-dependent widgets (``MODEL_FIELDS``) to its own defaults and
relabels the Preview button; a failed load leaves them as the user set them.
"""

import gradio as gr

from memo_app.runs import preview_label
from memo_app.service import NO_MODEL_MESSAGE, StudioService

GUIDANCE_FIELDS = ("emotion_strength", "reference_guidance", "audio_guidance")
MODEL_FIELDS = ("resolution", *GUIDANCE_FIELDS, "steps")  # the run form's fields a loaded model sets


class ModelPanel:
    """Load weights and show the active model."""

    def __init__(self, service: StudioService):
        self.service = service

    def load_model(self, weights: str | None) -> tuple:
        """Load weights (a folder, a hub id, or empty = the bundled MEMO-Tiny); on error keep the model we had.

        Returns the status, the Preview button, then one update per ``MODEL_FIELDS`` widget: the resolution choices,
        and the guidance and steps sliders set to the new model's defaults when it loaded, untouched when it did not.
        """
        loaded = self.service.load_model(weights)
        # one update per slider: gradio consumes an update's value when it applies it
        updates = {name: gr.update() for name in MODEL_FIELDS}
        if loaded:
            updates |= {name: gr.update(value=self.service.default_guidance()) for name in GUIDANCE_FIELDS}
            updates["steps"] = gr.update(value=self.service.default_steps())
        updates["resolution"] = gr.update(**self.resolution_choices())
        preview = gr.update(value=preview_label(self.service))
        return self.model_status(), preview, *(updates[name] for name in MODEL_FIELDS)

    def model_status(self) -> str:
        pipeline = self.service.pipeline
        if pipeline is None:
            return NO_MODEL_MESSAGE if self.service.model_error is None else self.service.model_error
        info = pipeline.model_info
        dtype = str(pipeline.dtype).removeprefix("torch.")
        detector = "yes" if pipeline.emotion_detector is not None else "no (choose emotions by hand)"
        lines = [
            f"**Active model:** {info.name}  \n**Source:** `{info.source}`  \n"
            f"**Resolution:** {info.resolution} px · {info.fps} fps · default guidance {info.default_guidance:g} · "
            f"default steps {info.default_steps}  \n"
            f"**Device:** {pipeline.device} · {dtype}  \n"
            f"**Emotion detector:** {detector}"
        ]
        if info.notes:
            lines.append(f"_{info.notes}_")
        if self.service.model_error:
            lines.append(f"Warning: {self.service.model_error}")
        return "\n\n".join(lines)

    def resolution_choices(self) -> dict:
        """The resolution dropdown's choices: only what the active model was trained at."""
        if self.service.pipeline is None:
            return {"choices": [], "value": None, "interactive": False}
        resolution = self.service.pipeline.model_info.resolution
        return {"choices": [resolution], "value": resolution, "interactive": True}
