"""The Speech panel: the audio's duration, its clips and the length limit, or what is wrong with the file."""

from memo_app.form import PREVIEW_SECONDS
from memo_app.service import StudioService
from memo_model.errors import InputError
from memo_model.pipelines.request import CLIP_FRAMES, LIMITS


class SpeechPanel:
    """Inspect the speech whenever it changes (the analysis is kept for the Emotions panel)."""

    def __init__(self, service: StudioService):
        self.service = service

    def inspect_audio(self, audio: str | None) -> str:
        """Duration, clip count and the length limit, or what is wrong with the file."""
        limit = self.service.settings.max_audio_seconds
        if not audio:
            return f"Upload or record speech (at most {limit:g} s), or pick an example."
        try:
            analysis = self.service.analysis(audio, LIMITS["fps"].default)
        except InputError as error:
            return f"Warning: {error}"
        summary = (
            f"Duration **{analysis.duration:.1f} s** (limit {limit:g} s) · {analysis.num_clips} clip(s) of "
            f"{CLIP_FRAMES} frames at {analysis.fps} fps · a preview animates the first {PREVIEW_SECONDS:g} s."
        )
        return "\n\n".join([summary, *(f"Warning: {note}" for note in analysis.notes)])
