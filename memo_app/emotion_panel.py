"""The Emotions panel: analyze the speech, see which emotion each clip gets, and choose others.

Choices come from lists only: a segment is picked by clicking it on the timeline or in the table (or from the
segment list), and its emotion from the emotion list; nothing is typed. The panel's global choice and segment
table become one ``EmotionOverrides`` (``emotion_overrides``); the timeline draws
``memo_model.pipelines.emotions.plan_clip_emotions``, the very plan a run of those choices uses, and the words
next to the controls are ``EmotionOverrides.describe``, from the same place as the precedence itself.
"""

import math
import time

import gradio as gr

from memo_app.display import count, input_error, segment_list
from memo_app.portrait_panel import PortraitPanel
from memo_app.service import AudioAnalysis, StudioService
from memo_app.timeline import draw_timeline, percent, seconds_at
from memo_model.audio.emotion import SELECTABLE_EMOTIONS
from memo_model.audio.io import SAMPLE_RATE
from memo_model.errors import InputError, shown
from memo_model.pipelines.emotions import EmotionOverrides, SegmentOverride, plan_clip_emotions
from memo_model.pipelines.request import CLIP_FRAMES, LIMITS

USE_DETECTED = "use detected"
GLOBAL_CHOICES = (USE_DETECTED, *SELECTABLE_EMOTIONS)  # also the choices of one segment
TABLE_HEADERS = ["start (s)", "end (s)", "detected", "detector's top 3", "override"]
TABLE_TYPES = ["number", "number", "str", "str", "str"]
OVERRIDE_COLUMN = TABLE_HEADERS.index("override")
# What the detector said, and the override (set from the emotion list only): never typed into.
STATIC_COLUMNS = [TABLE_HEADERS.index(name) for name in ("detected", "detector's top 3", "override")]
NO_DETECTOR = "—"
TOP_EMOTIONS = 3  # per segment, the detector's most likely emotions shown with their share


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
    """An empty choice keeps the detected emotion (a new table row's empty cell may arrive as NaN)."""
    if isinstance(choice, float) and math.isnan(choice):
        return True
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


def without_overrides(table) -> list[list]:
    """The segment table with every override cleared: each segment keeps its detected emotion."""
    return [[*row[:OVERRIDE_COLUMN], "", *row[OVERRIDE_COLUMN + 1 :]] for row in table_rows(table)]


def override_of(rows: list[list], number) -> str:
    """The emotion list's entry for row ``number`` (1-based): its override, or 'use detected'."""
    index = _row_index(number, rows)
    if index is None or _is_unset(rows[index][OVERRIDE_COLUMN]):
        return USE_DETECTED
    return str(rows[index][OVERRIDE_COLUMN]).strip().lower()


def _times(row: list) -> tuple[float, float] | None:
    """A row's (start, end) in seconds, None while either is not a number (a new row being filled in)."""
    start, end = (_seconds(cell) for cell in row[:2])
    if all(isinstance(t, float) and math.isfinite(t) for t in (start, end)):
        return start, end
    return None


def _row_index(number, rows: list[list]) -> int | None:
    """Row ``number`` (1-based, as the segment list sends it) as a list index, None when there is no such row."""
    try:
        index = int(number) - 1
    except (TypeError, ValueError, OverflowError):
        return None
    return index if 0 <= index < len(rows) else None


# --- how the detector's answer is shown --------------------------------------------------------------------------


def top_emotions(probabilities: dict[str, float] | None, k: int = TOP_EMOTIONS) -> str:
    """The detector's ``k`` most likely emotions, "fearful 62 % · sad 21 % · neutral 9 %"; "—" without a detector."""
    if not probabilities:
        return NO_DETECTOR
    ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)[:k]
    return " · ".join(f"{name} {percent(p)}" for name, p in ranked)


def segment_choices(rows: list[list]) -> list[tuple[str, int]]:
    """The segment list: ("2 · 1.1-2.1 s · sad → happy", 2) per table row."""
    choices = []
    for number, row in enumerate(rows, start=1):
        times = _times(row)
        span = "times not set" if times is None else f"{times[0]:.1f}-{times[1]:.1f} s"
        detected = row[2] if row[2] not in (None, "") else "your segment"
        choice = override_of(rows, number)
        change = "" if choice == USE_DETECTED else f" → {choice}"
        choices.append((f"{number} · {span} · {detected}{change}", number))
    return choices


# --- the panel's handlers ----------------------------------------------------------------------------------------


class EmotionPanel:
    """Analyze, the timeline, the global emotion, picking a segment and its emotion, and clearing the overrides."""

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

    def detector_note(self) -> str:
        """What a person should know about the active model's emotion detector ("" when nothing)."""
        pipeline = self.service.pipeline
        if pipeline is None or pipeline.emotion_detector is None:
            return ""
        if not PortraitPanel(self.service).trained_on_synthetic:  # the one place that knows what a model saw
            return ""
        return (
            "Note: this model's emotion detector learned from synthetic speech only. On a real recording its "
            "percentages say little (it can be sure of the wrong emotion): listen, and choose the emotion yourself "
            "where it is wrong."
        )

    def _with_note(self, text: str) -> str:
        return "\n\n".join(part for part in (text, self.detector_note()) if part)

    def analyze(self, audio: str | None, fps, global_choice) -> tuple:
        """Detect emotions: the timeline plot, the segment table (one row per detected segment, with the detector's
        top three) and a summary."""
        try:
            analysis = self.service.analysis(audio, fps)
            overrides = emotion_overrides(global_choice, None)
            plot, segments = self.timeline(analysis, EmotionOverrides())
            if not overrides.is_empty:
                plot, _ = self.timeline(analysis, overrides)
        except InputError as error:
            raise input_error(error) from None
        rows = [
            [s["start"], s["end"], s["detected"] or NO_DETECTOR, top_emotions(s["probabilities"]), ""]
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
            summary = f"{analysis.duration:.1f} s of audio, {count(len(segments), 'segment')}: {found}."
        return plot, rows, self._with_note(summary)

    def update_timeline(self, audio: str | None, fps, table, global_choice) -> tuple:
        """Re-draw the timeline with the table's overrides and the global override (after every edit).

        An edit that cannot be used (a segment's times, sent by a script or typed into the table) leaves the last
        good timeline in place and says what is wrong, once, in the summary.
        """
        try:
            analysis = self.service.analysis(audio, fps)
            overrides = emotion_overrides(global_choice, table)
            plot, segments = self.timeline(analysis, overrides)
        except InputError as error:
            return gr.skip(), f"**Not applied:** {error}\n\nThe timeline still shows the last choices that worked."
        return plot, self._with_note(f"Clips will use: {segment_list(segments)}.")

    def set_segment(self, table, row, emotion) -> list[list]:
        """Set row ``row`` (1-based) of the segment table to ``emotion`` (or back to the detected one)."""
        rows = table_rows(table)
        index = _row_index(row, rows)
        if index is None:
            if not rows:
                message = "Analyze the audio first, then pick a segment on the timeline or in the table."
            else:
                message = f"There is no segment {shown(row)}; choose one of 1-{len(rows)}."
            raise input_error(InputError(message))
        rows[index][OVERRIDE_COLUMN] = "" if _is_unset(emotion) else emotion
        try:
            segment = table_segment(index + 1, rows[index])
        except InputError as error:
            raise input_error(error) from None
        rows[index][OVERRIDE_COLUMN] = "" if segment is None else segment.label
        return rows

    def clear_overrides(self, table) -> tuple[list[list], str]:
        """Every segment and the whole video back to the detected emotions: the table, then the global choice."""
        return without_overrides(table), USE_DETECTED

    def controls(self, table, global_choice, picked) -> tuple:
        """After any change of the choices: the segment list (its labels show the overrides), the segment's emotion,
        the precedence in words, and what the A/B preview will do or why it cannot (``RunPanel.buttons`` decides
        whether its button can act)."""
        rows = table_rows(table)
        index = _row_index(picked, rows)
        picked = index + 1 if index is not None else (1 if rows else None)
        segment = gr.update(choices=segment_choices(rows), value=picked, interactive=bool(rows))
        emotion = gr.update(value=override_of(rows, picked), interactive=bool(rows))
        try:
            overrides = emotion_overrides(global_choice, rows)
        except InputError:  # update_timeline says what is wrong; these keep the last good state
            return segment, emotion, gr.skip(), gr.skip()
        return segment, emotion, overrides.describe(), self.ab_note(overrides)

    def ab_note(self, overrides: EmotionOverrides) -> str:
        """What the A/B preview button will do with ``overrides``, or why it cannot."""
        if overrides.is_empty:
            return "The **A/B preview** compares the detected emotions with yours: choose an emotion first."
        seconds = float(LIMITS["preview_seconds"].default)
        steps = count(self.service.preview_steps(), "step")
        return (
            f"The **A/B preview** renders the first {seconds:g} s twice ({steps}, the same seed): A with the "
            "detected emotions, B with yours."
        )

    def choose_segment(self, table, picked) -> str:
        """The emotion list shows the picked segment's current choice."""
        return override_of(table_rows(table), picked)

    def pick_row(self, table, selected: gr.SelectData) -> tuple:
        """A click on a table row picks that segment: (segment number, its current choice)."""
        rows = table_rows(table)
        number = selected.index[0] + 1
        if _row_index(number, rows) is None:
            return gr.skip(), gr.skip()
        return number, override_of(rows, number)

    def pick_on_timeline(self, audio: str | None, fps, table, selected: gr.SelectData) -> tuple:
        """A click on the timeline picks the table row under it (the last one, as later overrides win)."""
        rows = table_rows(table)
        try:
            duration = self.service.analysis(audio, fps).duration
        except InputError:
            return gr.skip(), gr.skip()
        moment = seconds_at(selected.index[0], duration)
        if moment is None:
            return gr.skip(), gr.skip()
        moment = min(moment, duration * (1 - 1e-9))  # the very end belongs to the last segment
        spans = [(number, _times(row)) for number, row in enumerate(rows, start=1)]
        under = [number for number, times in spans if times is not None and times[0] <= moment < times[1]]
        if not under:
            return gr.skip(), gr.skip()
        return under[-1], override_of(rows, under[-1])
