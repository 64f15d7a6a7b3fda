"""The Emotions panel: analyze the speech, see which emotion each clip gets, and choose others.

The panel's global choice and segment table become one ``EmotionOverrides`` (``emotion_overrides``), and the
timeline draws ``memo_model.pipelines.emotions.plan_clip_emotions``: the very plan a run of those choices uses.
"""

import time

from memo_app.display import input_error, segment_list
from memo_app.service import AudioAnalysis, StudioService
from memo_app.timeline import draw_timeline
from memo_model.audio.emotion import SELECTABLE_EMOTIONS
from memo_model.audio.io import SAMPLE_RATE
from memo_model.errors import InputError, shown
from memo_model.pipelines.emotions import EmotionOverrides, SegmentOverride, plan_clip_emotions
from memo_model.pipelines.request import CLIP_FRAMES

USE_DETECTED = "use detected"
GLOBAL_CHOICES = (USE_DETECTED, *SELECTABLE_EMOTIONS)
TABLE_HEADERS = ["start (s)", "end (s)", "detected", "confidence", "override"]
OVERRIDE_COLUMN = TABLE_HEADERS.index("override")
NO_DETECTOR = "—"


# --- the panel's choices as EmotionOverrides, and back ---------------------------------------------------------


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
    if _is_unset(row[OVERRIDE_COLUMN]):
        return None
    try:
        return SegmentOverride(_seconds(row[0]), _seconds(row[1]), row[OVERRIDE_COLUMN])
    except InputError as error:
        raise InputError(f"Row {number} of the segment table: {error}") from None


def emotion_overrides(global_choice, table) -> EmotionOverrides:
    """The emotions chosen in the Emotions panel: the global choice and every table row whose override is set."""
    rows = enumerate(table_rows(table), start=1)
    segments = tuple(segment for number, row in rows if (segment := table_segment(number, row)) is not None)
    return EmotionOverrides(None if _is_unset(global_choice) else global_choice, segments)


def global_choice_for(overrides: EmotionOverrides) -> str:
    """The global dropdown's value that chooses ``overrides``' emotion for the whole video."""
    return overrides.global_label or USE_DETECTED


def table_for(overrides: EmotionOverrides) -> list[list]:
    """The segment table that chooses ``overrides``' segments (nothing detected yet)."""
    return [[s.start, s.end, "", None, s.label] for s in overrides.segments]


# --- the panel's handlers ----------------------------------------------------------------------------------------


class EmotionPanel:
    """Analyze, the timeline, the global emotion and the segment table."""

    def __init__(self, service: StudioService):
        self.service = service

    def timeline(self, analysis: AudioAnalysis, overrides: EmotionOverrides) -> tuple[str, list[dict]]:
        """The timeline plot and its segments: the pipeline's own plan of which emotion each clip gets."""
        plan = plan_clip_emotions(analysis.track, overrides, analysis.fps, CLIP_FRAMES, len(analysis.waveform))
        segments = list(plan.timeline)
        path = self.service.settings.output_dir / "timelines" / f"timeline_{time.time_ns()}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        probabilities = None if analysis.track is None else analysis.track.frame_probabilities
        draw_timeline(path, analysis.waveform, SAMPLE_RATE, segments, probabilities, analysis.fps)
        return str(path), segments

    def analyze(self, audio: str | None, fps, global_choice) -> tuple:
        """Detect emotions: the timeline plot, the segment table (one row per detected segment) and a summary."""
        try:
            analysis = self.service.analysis(audio, fps)
            overrides = emotion_overrides(global_choice, None)
            plot, segments = self.timeline(analysis, EmotionOverrides())
            if not overrides.is_empty:
                plot, _ = self.timeline(analysis, overrides)
        except InputError as error:
            raise input_error(error) from None
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
            reason = "no model is loaded" if self.service.pipeline is None else "this model has no emotion detector"
            summary = (
                f"{analysis.duration:.1f} s of audio. Emotion detection is unavailable ({reason}): every clip "
                "uses 'neutral' unless you choose an emotion below."
            )
        else:
            found = segment_list(segments, label="detected")
            summary = f"{analysis.duration:.1f} s of audio, {len(segments)} segment(s): {found}."
        return plot, rows, summary

    def update_timeline(self, audio: str | None, fps, table, global_choice) -> tuple:
        """Re-draw the timeline with the table's overrides and the global override (after every edit)."""
        try:
            analysis = self.service.analysis(audio, fps)
            overrides = emotion_overrides(global_choice, table)
            plot, segments = self.timeline(analysis, overrides)
        except InputError as error:
            raise input_error(error) from None
        return plot, f"Clips will use: {segment_list(segments)}."

    def set_segment(self, table, row, emotion) -> list[list]:
        """Set row ``row`` (1-based) of the segment table to ``emotion`` (or back to the detected one)."""
        rows = table_rows(table)
        try:
            index = int(row) - 1
        except (TypeError, ValueError):
            raise input_error(InputError(f"Choose a segment number; got {shown(row)}.")) from None
        if not 0 <= index < len(rows):
            raise input_error(
                InputError(f"There is no segment {row}; the table has {len(rows)} row(s). Analyze first.")
            )
        rows[index][OVERRIDE_COLUMN] = "" if _is_unset(emotion) else emotion
        try:
            segment = table_segment(index + 1, rows[index])
        except InputError as error:
            raise input_error(error) from None
        rows[index][OVERRIDE_COLUMN] = "" if segment is None else segment.label
        return rows
