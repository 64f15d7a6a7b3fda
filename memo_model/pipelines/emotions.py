"""Which emotion each clip is generated with: detected from the audio, then what a person chose (paper §4.2).

Dimension legend: T video frames (padded to whole clips), C clips, K emotions (9).

The one home of that choice, for the pipeline, the CLI and the app alike:

  1. overrides (``EmotionOverrides``): one emotion for the whole video and emotions for parts of it, checked when
     built, with their two JSON forms (an ``--emotion-segments`` file, and a request's flat settings);
  2. precedence (``EmotionOverrides.apply``): segment overrides over the global emotion over the detected labels,
     and the same in words (``EmotionOverrides.describe``) for the app to show;
  3. display segments (``EmotionSegment``, ``segments``): runs of clips with one label, with the detector's
     probabilities;
  4. the plan (``plan_clip_emotions``): per clip the detected and the used label, and the segments people see.
     The pipeline calls it through ``plan_emotions``; the app's timeline calls it on the track it analysed.

Detection itself (windows, detectors, the per-clip majority vote) is ``memo_model.audio.emotion``. Official
behaviour (docs/CHECKPOINT.md §1.4): one label per 16-frame clip, the majority of its frame labels, each frame
labelled from a 3 s window of the original audio. The paper lets a person replace the detected emotion (§4.2, last
sentence); overrides replace labels clip by clip.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memo_model.audio.emotion import (
    CLIP_LENGTH,
    EMOTION_LABELS,
    NUM_EMOTIONS,
    EmotionDetector,
    EmotionTrack,
    clip_labels,
    detect_emotions,
    emotion_index,
)
from memo_model.audio.features import padded_frame_count
from memo_model.audio.io import SAMPLE_RATE
from memo_model.errors import InputError, shown

FALLBACK_EMOTION = "neutral"  # used for every clip when a model has no detector and nobody chose an emotion


# --- 1. overrides: what a person chose instead -------------------------------------------------------------------


def _unknown_label(value: Any, where: str) -> str | None:
    """Why ``value`` is not an emotion label (a message that lists the choices), or None when it is one."""
    if isinstance(value, str) and value.strip().lower() in EMOTION_LABELS:
        return None
    return f"Unknown emotion {shown(value)} {where}; choose one of: {', '.join(EMOTION_LABELS)}."


def _is_seconds(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


@dataclass(frozen=True)
class SegmentOverride:
    """Use ``label`` for the clips whose centre lies in [start, end) seconds. Checked when built: an ``InputError``
    lists everything wrong with it; the label is kept in lower case."""

    start: float
    end: float
    label: str

    def __post_init__(self):
        found = [
            f"An emotion segment's {name} must be a number of seconds; got {shown(value)}."
            for name, value in (("start", self.start), ("end", self.end))
            if not _is_seconds(value)
        ]
        if not found and not 0 <= self.start < self.end:
            found.append(
                "An emotion segment must start at 0 s or later and before end "
                f"(0 <= start < end; got {shown(self.start)}-{shown(self.end)} s)."
            )
        unknown = _unknown_label(self.label, f"in the segment {shown(self.start)}-{shown(self.end)} s")
        if unknown:
            found.append(unknown)
        if found:
            raise InputError("\n".join(found))
        object.__setattr__(self, "start", float(self.start))
        object.__setattr__(self, "end", float(self.end))
        object.__setattr__(self, "label", self.label.strip().lower())

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label": self.label}


SEGMENT_KEYS = frozenset({"start", "end", "label"})
OVERRIDE_KEYS = frozenset({"global", "segments"})
OVERRIDES_EXAMPLE = '{"global": "happy"} or {"segments": [{"start": 0.0, "end": 2.5, "label": "sad"}]}'
# A request's settings (settings sidecars, generate-batch jobs, the app's settings files) hold the overrides flat,
# under these two keys and of these types: ``EmotionOverrides.to_settings`` / ``from_settings``.
SETTINGS_TYPES: dict[str, Any] = {"emotion": str | None, "emotion_segments": tuple[tuple[float, float, str], ...]}


@dataclass(frozen=True)
class EmotionOverrides:
    """Emotions chosen by a person instead of the detected ones; the empty default keeps what is detected.

    ``global_label``: one emotion for the whole video (None = use the detected ones). ``segments``: emotions for
    parts of it; ``(start, end, label)`` tuples are accepted and converted. Checked when built: one ``InputError``
    lists every problem. Precedence (``apply``), lowest to highest: detected, ``global_label``, ``segments`` in
    order — so a segment edited after choosing a global emotion sticks, and where two segment overrides overlap the
    later one wins.
    """

    global_label: str | None = None
    segments: tuple[SegmentOverride, ...] = ()

    def __post_init__(self):
        found = []
        if self.global_label is not None:
            unknown = _unknown_label(self.global_label, "for the whole video")
            if unknown:
                found.append(unknown)
            else:
                object.__setattr__(self, "global_label", self.global_label.strip().lower())
        converted = []
        for segment in self.segments:
            if isinstance(segment, SegmentOverride):
                converted.append(segment)
            elif not isinstance(segment, tuple | list) or len(segment) != 3:
                found.append(
                    f"An emotion segment is (start, end, label), e.g. (0.0, 2.5, 'sad'); got {shown(segment)}."
                )
            else:
                try:
                    converted.append(SegmentOverride(*segment))
                except InputError as error:
                    found.append(str(error))
        if found:
            raise InputError("\n".join(found))
        object.__setattr__(self, "segments", tuple(converted))

    @property
    def is_empty(self) -> bool:
        return self.global_label is None and not self.segments

    def apply(
        self, detected: np.ndarray, fps: float, clip_length: int = CLIP_LENGTH, duration: float | None = None
    ) -> np.ndarray:
        """The emotion used for each clip: (C,) detected labels -> (C,) int64 labels after the overrides.

        A clip takes a segment override's label when the override covers the clip's centre time,
        start <= centre < end: each clip gets exactly one label and a boundary between two overrides falls where a
        person would put it. With ``duration`` (seconds of real audio), each clip's time is cut at the end of the
        audio before taking its centre, so an override that runs "to the end" also covers a last clip made mostly
        of padding. Precedence: segment overrides (later ones win where they overlap) over ``global_label`` over
        the detected labels.
        """
        labels = np.array(detected, dtype=np.int64)
        if self.global_label is not None:
            labels[:] = emotion_index(self.global_label)
        clip_seconds = clip_length / fps
        starts = np.arange(len(labels)) * clip_seconds
        ends = starts + clip_seconds
        if duration is not None:
            ends = np.where(starts < duration, np.minimum(ends, duration), ends)
        centres = (starts + ends) / 2
        for override in self.segments:  # in order, so a later override overwrites an earlier one
            labels[(centres >= override.start) & (centres < override.end)] = emotion_index(override.label)
        return labels

    # The order ``apply`` writes the labels in (detected, then global, then segments), said highest first.
    PRECEDENCE = "Segment overrides win over the whole-video emotion, which wins over detection."

    def describe(self) -> str:
        """``PRECEDENCE`` and what it means for these overrides, in words a person reads next to their controls."""
        spans = ", ".join(f"{s.label} {s.start:.1f}-{s.end:.1f} s" for s in self.segments)
        if self.is_empty:
            effect = "No overrides: every clip uses its detected emotion."
        elif not self.segments:
            effect = f"'{self.global_label}' replaces the detected emotion of every clip."
        elif self.global_label is None:
            effect = f"Your segments ({spans}) replace the detected emotion there; other clips keep theirs."
        else:
            effect = (
                f"'{self.global_label}' replaces the detected emotion of every clip except in your segments "
                f"({spans}), which keep their own emotion."
            )
        if self._overlapping():
            effect += " Where two of your segments overlap, the later one wins."
        return f"{self.PRECEDENCE} {effect}"

    def _overlapping(self) -> bool:
        return any(
            a.start < b.end and b.start < a.end for i, a in enumerate(self.segments) for b in self.segments[i + 1 :]
        )

    # The ``--emotion-segments FILE.json`` form

    def to_dict(self) -> dict[str, Any]:
        """The ``--emotion-segments`` JSON format (see ``load``)."""
        return {"global": self.global_label, "segments": [segment.to_dict() for segment in self.segments]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmotionOverrides:
        if not isinstance(data, Mapping):
            raise InputError(f"Emotion overrides must be a JSON object like {OVERRIDES_EXAMPLE}; got {shown(data)}.")
        unknown = set(data) - OVERRIDE_KEYS
        if unknown:
            raise InputError(
                f"Unknown key(s) {', '.join(sorted(map(shown, unknown)))} in the emotion overrides; the keys are "
                f'"global" and "segments", e.g. {OVERRIDES_EXAMPLE}.'
            )
        entries = data.get("segments", [])
        if not isinstance(entries, list):
            raise InputError(
                f'"segments" must be a list of {{"start", "end", "label"}} objects; got {shown(entries)}.'
            )
        for number, entry in enumerate(entries, start=1):
            if not isinstance(entry, Mapping) or set(entry) != SEGMENT_KEYS:
                raise InputError(
                    f'Emotion segment {number} must have exactly the keys "start", "end" and "label" '
                    f'(e.g. {{"start": 0.0, "end": 2.5, "label": "sad"}}); got {shown(entry)}.'
                )
        return cls(data.get("global"), tuple((e["start"], e["end"], e["label"]) for e in entries))

    @classmethod
    def load(cls, path_or_json: str | Path | Mapping[str, Any]) -> EmotionOverrides:
        """Emotion overrides from a JSON file (the CLI's ``--emotion-segments FILE.json``), JSON text, or a dict.

        The format is one JSON object with either or both keys::

            {"global": "happy"}                         one emotion for the whole video (null = use detected)
            {"segments": [{"start": 0.0, "end": 2.5, "label": "sad"},
                          {"start": 4.0, "end": 6.0, "label": "surprised"}]}

        Times are seconds; labels are any of ``EMOTION_LABELS``, in any case. Segment overrides win over the global
        emotion, and a later segment wins over an earlier one where they overlap. A string that starts with "{" is
        read as JSON text, anything else as a file path. Bad files raise ``InputError`` saying what is wrong.
        """
        if isinstance(path_or_json, Mapping):
            return cls.from_dict(path_or_json)
        if isinstance(path_or_json, str) and path_or_json.lstrip().startswith("{"):
            text, source = path_or_json, "The emotion overrides"
        else:
            path = Path(path_or_json)
            if not path.is_file():
                raise InputError(
                    f"The emotion segments file {path} does not exist — pass a JSON file like {OVERRIDES_EXAMPLE}."
                )
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise InputError(
                    f"Could not read the emotion segments file {path} ({error}); it must be UTF-8 JSON."
                ) from None
            source = f"The emotion segments file {path}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(
                f"{source} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                f"expected something like {OVERRIDES_EXAMPLE}."
            ) from None
        except (ValueError, RecursionError):  # json refuses integers of thousands of digits and very deep nesting
            raise InputError(f"{source} holds a number too long or lists nested too deeply.") from None
        return cls.from_dict(data)

    # The form inside a request's settings: two flat keys, as settings files have always held them

    def to_settings(self) -> dict[str, Any]:
        """``{"emotion": label or None, "emotion_segments": [[start, end, label], ...]}`` (``SETTINGS_TYPES``)."""
        return {
            "emotion": self.global_label,
            "emotion_segments": [[segment.start, segment.end, segment.label] for segment in self.segments],
        }

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> EmotionOverrides:
        """The inverse of ``to_settings``; either key may be missing. Types are the caller's to check first
        (``GenerationRequest.from_dict`` checks them against ``SETTINGS_TYPES``); values are checked here."""
        return cls(settings.get("emotion"), tuple(settings.get("emotion_segments", ())))


# --- 2. display segments -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmotionSegment:
    """A run of clips with the same emotion: [start, end) seconds, the label, and the detector's mean probabilities
    over the run's frames (``confidence`` = that of ``label``)."""

    start: float
    end: float
    label: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmotionSegment:
        label = EMOTION_LABELS[emotion_index(data["label"])]
        probabilities = {EMOTION_LABELS[emotion_index(k)]: float(v) for k, v in data.get("probabilities", {}).items()}
        return cls(float(data["start"]), float(data["end"]), label, float(data["confidence"]), probabilities)


def segments(
    track: EmotionTrack, clip_length: int = CLIP_LENGTH, labels: np.ndarray | None = None
) -> list[EmotionSegment]:
    """Runs of equal clip labels as timed segments.

    ``labels`` (C,) are the per-clip labels to group: by default the detected majority vote (``clip_labels``); pass
    the used labels (``EmotionOverrides.apply``) to get the segments actually used. A segment ends at the end of its
    last clip, or of the track for a partial last clip.
    """
    per_clip = clip_labels(track.frame_labels, clip_length) if labels is None else np.asarray(labels, dtype=np.int64)
    expected = math.ceil(track.num_frames / clip_length)
    if per_clip.shape != (expected,):
        raise ValueError(f"Expected {expected} clip labels for {track.num_frames} frames; got shape {per_clip.shape}.")
    changes = np.flatnonzero(np.diff(per_clip)) + 1
    found = []
    for first, stop in zip(np.r_[0, changes], np.r_[changes, len(per_clip)], strict=True):
        frame_start, frame_stop = first * clip_length, min(stop * clip_length, track.num_frames)
        mean = track.frame_probabilities[frame_start:frame_stop].mean(axis=0)  # (K,)
        label = int(per_clip[first])
        found.append(
            EmotionSegment(
                start=frame_start / track.fps,
                end=frame_stop / track.fps,
                label=EMOTION_LABELS[label],
                confidence=float(mean[label]),
                probabilities={name: float(p) for name, p in zip(EMOTION_LABELS, mean, strict=True)},
            )
        )
    return found


def _timeline(
    track: EmotionTrack | None, detected: np.ndarray, used: np.ndarray, fps: float, clip_length: int, duration: float
) -> tuple[dict, ...]:
    """Runs of clips with the same (detected, used) labels (C,), cut at the end of the audio; ``detected``,
    ``confidence`` (of the detected label) and ``probabilities`` (the detector's mean over the run's frames, every
    label) are None without a track."""
    clip_seconds = clip_length / fps
    runs: list[dict] = []
    for clip, (detected_label, used_label) in enumerate(zip(detected, used, strict=True)):
        key = (None if track is None else int(detected_label), int(used_label))
        start, end = clip * clip_seconds, min((clip + 1) * clip_seconds, duration)
        if runs and runs[-1]["key"] == key:
            runs[-1]["end"], runs[-1]["last"] = end, clip
        else:
            runs.append({"key": key, "first": clip, "last": clip, "start": start, "end": end})
    found = []
    for run in runs:
        detected_label, used_label = run["key"]
        confidence, probabilities = None, None
        if track is not None:
            first, stop = run["first"] * clip_length, (run["last"] + 1) * clip_length
            mean = track.frame_probabilities[first:stop].mean(axis=0)  # (K,)
            confidence = float(mean[detected_label])
            probabilities = {name: float(p) for name, p in zip(EMOTION_LABELS, mean, strict=True)}
        found.append(
            {
                "start": round(run["start"], 3),
                "end": round(run["end"], 3),
                "label": EMOTION_LABELS[used_label],
                "detected": None if detected_label is None else EMOTION_LABELS[detected_label],
                "confidence": confidence,
                "probabilities": probabilities,
            }
        )
    return tuple(found)


# --- 3. the plan: detected and used label per clip ---------------------------------------------------------------


@dataclass(frozen=True)
class ClipEmotions:
    """Per clip: the detected label index (None without a detector) and the one used; the segments shown to people.

    ``segments`` / ``detected_segments``: runs of used / detected labels (start, end, label, confidence,
    probabilities), as the settings sidecar records them. ``timeline``: runs of clips with the same detected and
    used labels, cut at the end of the audio (start, end, label = used, detected, confidence of the detected label,
    probabilities of every label), as the app's timeline and segment table show them.
    """

    detected: tuple[int | None, ...]
    used: tuple[int, ...]
    segments: tuple[dict, ...]
    detected_segments: tuple[dict, ...]
    timeline: tuple[dict, ...] = ()
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def name(index):
            return None if index is None else EMOTION_LABELS[index]

        return {
            "detected_per_clip": [name(i) for i in self.detected],
            "used_per_clip": [name(i) for i in self.used],
            "segments": list(self.segments),
            "detected_segments": list(self.detected_segments),
        }


def detect_track(
    waveform: np.ndarray, detector: EmotionDetector | None, fps: float, clip_length: int = CLIP_LENGTH
) -> EmotionTrack | None:
    """The detected emotions of ``waveform`` (n,) over its frames padded to whole clips (T = C · clip_length), or
    None when the model has no detector."""
    if detector is None:
        return None
    num_frames = padded_frame_count(len(waveform), fps, clip_length)
    return detect_emotions(waveform, detector, fps=fps, num_frames=num_frames)


def plan_clip_emotions(
    track: EmotionTrack | None,
    overrides: EmotionOverrides,
    fps: float,
    clip_length: int,
    num_samples: int,
) -> ClipEmotions:
    """Which emotion each clip of ``num_samples`` samples of audio gets, and the segments that describe it.

    ``track``: the detected emotions (``detect_track``), or None when the model has no detector: every clip is then
    detected as ``FALLBACK_EMOTION`` (with a warning unless a global emotion is chosen). The overrides win as
    ``EmotionOverrides.apply`` says.
    """
    duration = num_samples / SAMPLE_RATE
    warnings = []
    if track is not None:
        shown_track = track
        detected = clip_labels(track.frame_labels, clip_length)  # (C,)
        detected_segments = tuple(s.to_dict() for s in segments(track, clip_length))
    else:
        num_frames = padded_frame_count(num_samples, fps, clip_length)
        fallback = emotion_index(FALLBACK_EMOTION)
        probabilities = np.zeros((num_frames, NUM_EMOTIONS), dtype=np.float32)  # (T, K): sure of the fallback
        probabilities[:, fallback] = 1.0
        shown_track = EmotionTrack.from_probabilities(probabilities, fps)
        detected = np.full(num_frames // clip_length, fallback)  # (C,)
        detected_segments = ()
        if overrides.global_label is None:
            warnings.append(f"This model has no emotion detector: clips use '{FALLBACK_EMOTION}' unless you choose.")
    used = overrides.apply(detected, fps, clip_length, duration=duration)  # (C,)
    return ClipEmotions(
        detected=tuple(int(i) for i in detected) if track is not None else (None,) * len(detected),
        used=tuple(int(i) for i in used),
        segments=tuple(s.to_dict() for s in segments(shown_track, clip_length, labels=used)),
        detected_segments=detected_segments,
        timeline=_timeline(track, detected, used, fps, clip_length, duration),
        warnings=warnings,
    )


def plan_emotions(
    waveform: np.ndarray, detector: EmotionDetector | None, request, clip_length: int = CLIP_LENGTH
) -> ClipEmotions:
    """Detect (when the model has a detector) on ``waveform`` (n,), the original mix as in the official code, and
    apply the request's overrides (``request.emotions``, at ``request.fps``)."""
    track = detect_track(waveform, detector, request.fps, clip_length)
    return plan_clip_emotions(track, request.emotions, request.fps, clip_length, len(waveform))
