"""pipelines.emotions: the overrides and their JSON forms, precedence, display segments and the per-clip plan."""

import json

import numpy as np
import pytest

from memo_model.audio.emotion import EMOTION_LABELS, NUM_EMOTIONS, EmotionTrack, clip_labels, emotion_index
from memo_model.errors import InputError
from memo_model.pipelines.emotions import (
    FALLBACK_EMOTION,
    EmotionOverrides,
    EmotionSegment,
    SegmentOverride,
    detect_track,
    plan_clip_emotions,
    plan_emotions,
    segments,
)
from memo_model.pipelines.request import GenerationRequest


def constructed_track() -> EmotionTrack:
    """12 frames at 4 fps, clips of 4: happy, happy, sad (2 frames disagree within the first clip)."""
    happy, sad, neutral = (emotion_index(name) for name in ("happy", "sad", "neutral"))
    probabilities = np.zeros((12, NUM_EMOTIONS), np.float32)
    probabilities[:8, happy] = 0.8
    probabilities[:8, neutral] = 0.2
    probabilities[1:3, [happy, neutral]] = [0.4, 0.6]
    probabilities[8:, sad] = 1.0
    return EmotionTrack.from_probabilities(probabilities, fps=4)


def names(labels) -> list[str | None]:
    return [None if label is None else EMOTION_LABELS[label] for label in labels]


# --- display segments -------------------------------------------------------------------------------------------


def test_segments_from_a_track():
    found = segments(constructed_track(), clip_length=4)
    assert [(s.start, s.end, s.label) for s in found] == [(0.0, 2.0, "happy"), (2.0, 3.0, "sad")]
    assert found[0].confidence == pytest.approx((6 * 0.8 + 2 * 0.4) / 8)
    assert found[0].probabilities["neutral"] == pytest.approx((6 * 0.2 + 2 * 0.6) / 8)
    assert found[1].confidence == pytest.approx(1.0)
    assert sum(found[0].probabilities.values()) == pytest.approx(1.0)
    assert EmotionSegment.from_dict(json.loads(json.dumps(found[0].to_dict()))) == found[0]


def test_segments_of_used_labels_and_a_partial_last_clip():
    track = constructed_track()
    used = EmotionOverrides("angry").apply(clip_labels(track.frame_labels, 5), fps=4, clip_length=5)
    found = segments(track, clip_length=5, labels=used)
    assert [(s.start, s.end, s.label) for s in found] == [(0.0, 3.0, "angry")]
    assert found[0].confidence == pytest.approx(0.0)


# --- overrides and precedence -----------------------------------------------------------------------------------


def test_global_override_replaces_every_clip():
    used = EmotionOverrides(global_label="Happy").apply(np.array([0, 3, 6]), fps=16)
    np.testing.assert_array_equal(used, [emotion_index("happy")] * 3)


def test_segment_override_applies_to_clips_whose_centre_it_covers():
    # clips of 1 s at fps=16: centres 0.5, 1.5, 2.5, 3.5
    overrides = EmotionOverrides(segments=(SegmentOverride(1.0, 2.6, "sad"),))
    used = overrides.apply(np.zeros(4, np.int64), fps=16)
    np.testing.assert_array_equal(used, [0, emotion_index("sad"), emotion_index("sad"), 0])


def test_segments_win_over_the_global_emotion_and_later_segments_win():
    overrides = EmotionOverrides("happy", ((0.0, 2.0, "sad"), (1.0, 3.0, "angry")))
    used = overrides.apply(np.zeros(4, np.int64), fps=16)
    assert names(used) == ["sad", "angry", "angry", "happy"]


def test_an_override_to_the_end_of_the_audio_covers_the_padded_last_clip():
    overrides = EmotionOverrides(segments=((1.0, 2.2, "fearful"),))
    assert EMOTION_LABELS[overrides.apply(np.zeros(3, np.int64), fps=16)[-1]] == "angry"
    used = overrides.apply(np.zeros(3, np.int64), fps=16, duration=2.2)
    assert EMOTION_LABELS[used[-1]] == "fearful"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (EmotionOverrides(), "every clip uses its detected emotion"),
        (EmotionOverrides("happy"), "'happy' replaces the detected emotion of every clip"),
        (EmotionOverrides(segments=((1.0, 2.0, "sad"),)), "Your segments (sad 1.0-2.0 s) replace the detected"),
        (EmotionOverrides("happy", ((1.0, 2.0, "sad"),)), "every clip except in your segments (sad 1.0-2.0 s)"),
        (EmotionOverrides(segments=((0.0, 2.0, "sad"), (1.0, 3.0, "angry"))), "the later one wins"),
    ],
)
def test_the_precedence_in_words_says_what_apply_does(overrides, says):
    text = overrides.describe()
    assert text.startswith(EmotionOverrides.PRECEDENCE) and says in text
    if overrides.global_label and overrides.segments:  # what the words promise, apply does: the segment wins
        used = overrides.apply(np.zeros(4, np.int64), fps=16)  # clips of 1 s: centres 0.5, 1.5, 2.5, 3.5
        assert names(used) == ["happy", "sad", "happy", "happy"]


def test_bad_overrides_explain_the_choices():
    with pytest.raises(ValueError, match="choose one of: angry, disgusted"):
        EmotionOverrides(global_label="joyful")
    with pytest.raises(ValueError, match="start < end"):
        SegmentOverride(2.0, 1.0, "sad")
    with pytest.raises(ValueError, match="choose one of"):
        SegmentOverride(0.0, 1.0, "meh")


def test_every_problem_of_the_overrides_is_listed_at_once():
    with pytest.raises(InputError) as caught:
        EmotionOverrides("joyful", ((3, 1, "sad"), (0, 1, "meh"), (0, 1)))
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    assert "Unknown emotion 'joyful' for the whole video" in lines[0]
    assert "0 <= start < end; got 3-1 s" in lines[1]
    assert "Unknown emotion 'meh' in the segment 0-1 s" in lines[2]
    assert "(start, end, label)" in lines[3]


def test_overrides_are_kept_in_canonical_form():
    overrides = EmotionOverrides(" Happy ", [(0, 2, "SAD")])
    assert overrides == EmotionOverrides("happy", (SegmentOverride(0.0, 2.0, "sad"),))
    assert overrides.segments[0].start == 0.0 and isinstance(overrides.segments[0].start, float)
    assert EmotionOverrides().is_empty and not overrides.is_empty


def test_load_overrides_from_a_file_and_from_text(tmp_path):
    path = tmp_path / "emotions.json"
    data = {"global": "neutral", "segments": [{"start": 0, "end": 2.5, "label": "SAD"}]}
    path.write_text(json.dumps(data))
    loaded = EmotionOverrides.load(path)
    assert loaded == EmotionOverrides("neutral", (SegmentOverride(0.0, 2.5, "sad"),))
    assert EmotionOverrides.load(str(path)) == loaded
    assert EmotionOverrides.load(json.dumps(loaded.to_dict())) == loaded
    assert EmotionOverrides.load('{"global": "happy"}') == EmotionOverrides("happy")
    assert EmotionOverrides.load({"segments": []}).is_empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"global": "happy",', "not valid JSON"),
        ('["happy"]', "JSON object"),
        ('{"emotion": "happy"}', "Unknown key"),
        ('{"segments": {"start": 0}}', "must be a list"),
        ('{"segments": [{"start": 0, "end": 1}]}', "exactly the keys"),
        ('{"segments": [{"start": "0", "end": 1, "label": "sad"}]}', "number of seconds"),
        ('{"segments": [{"start": 0, "end": 1, "label": "bored"}]}', "choose one of"),
    ],
)
def test_bad_override_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        EmotionOverrides.load(path)


def test_missing_override_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        EmotionOverrides.load(tmp_path / "nope.json")


# --- the overrides inside a request's settings ------------------------------------------------------------------


def test_a_request_with_overrides_round_trips_through_json():
    original = GenerationRequest(
        image="portrait.png", audio="speech.wav", emotions=EmotionOverrides("happy", [(0.0, 1.0, "sad")])
    )
    saved = json.loads(json.dumps(original.to_dict()))
    assert saved["emotion"] == "happy" and saved["emotion_segments"] == [[0.0, 1.0, "sad"]]
    assert "emotions" not in saved
    assert list(saved).index("emotion") == list(saved).index("emotion_guidance") + 1  # where files have them
    assert GenerationRequest.from_dict(saved) == original


def test_settings_files_written_before_the_overrides_object_still_load():
    """A settings sidecar / generate-batch job as earlier versions wrote them: flat "emotion" and
    "emotion_segments", labels in any case, numbers as JSON has them."""
    old = json.loads(
        '{"image": "portrait.png", "audio": "speech.wav", "steps": 20.0, "emotion": "Happy", '
        '"emotion_segments": [[0, 1.5, "SAD"], [2, 3, "angry"]]}'
    )
    request = GenerationRequest.from_dict(old)
    assert request.emotions == EmotionOverrides("happy", ((0.0, 1.5, "sad"), (2.0, 3.0, "angry")))
    assert GenerationRequest.from_dict({"image": "a.png", "audio": "b.wav"}).emotions.is_empty
    assert GenerationRequest.from_dict({"image": "a.png", "audio": "b.wav", "emotion": None}).emotions.is_empty


def test_bad_emotion_settings_are_listed_with_the_requests_other_problems():
    with pytest.raises(InputError) as caught:
        GenerationRequest.from_dict({"image": "a.png", "audio": "b.wav", "steps": 0, "emotion": "joyful"})
    assert "Denoising steps must be between 1 and 100" in str(caught.value)
    assert "Unknown emotion 'joyful'" in str(caught.value)
    with pytest.raises(InputError, match="Unknown setting"):  # the object is saved flat, never as "emotions"
        GenerationRequest.from_dict({"image": "a.png", "audio": "b.wav", "emotions": {"global": "happy"}})
    problems = GenerationRequest(image="a", audio="b", emotions="happy").problems(check_files=False)
    assert problems == ['"emotions" must be an EmotionOverrides, e.g. EmotionOverrides("happy", [(0.0, 2.5, "sad")]); '
                        "got 'happy'."]  # fmt: skip


# --- the plan ---------------------------------------------------------------------------------------------------


class FirstHalfHappyDetector:
    """Happy in the first half of the audio, sad after: a detector whose answer is known."""

    def window_probabilities(self, waveform, windows):
        half = len(waveform) / 2
        probabilities = np.zeros((len(windows), NUM_EMOTIONS), np.float32)
        for row, (start, stop) in enumerate(windows):
            probabilities[row, emotion_index("happy" if (start + stop) / 2 < half else "sad")] = 1.0
        return probabilities


def test_the_plan_without_a_detector_uses_the_fallback_and_the_overrides():
    num_samples = 16000  # 1 s at 30 fps: 30 frames, 2 clips of 16
    plan = plan_clip_emotions(None, EmotionOverrides(), 30, 16, num_samples)
    assert plan.detected == (None, None) and names(plan.used) == [FALLBACK_EMOTION] * 2
    assert plan.warnings and plan.detected_segments == ()
    assert plan.timeline == (
        {"start": 0.0, "end": 1.0, "label": "neutral", "detected": None, "confidence": None, "probabilities": None},
    )
    plan = plan_clip_emotions(None, EmotionOverrides("happy", [(0.6, 1.0, "sad")]), 30, 16, num_samples)
    assert names(plan.used) == ["happy", "sad"] and not plan.warnings
    assert [(s["start"], s["end"], s["label"]) for s in plan.timeline] == [(0.0, 0.533, "happy"), (0.533, 1.0, "sad")]


def test_the_plan_with_a_detector_keeps_detected_and_used_labels_apart():
    waveform = np.zeros(4 * 16000, np.float32)  # 4 s at 16 fps: 64 frames, 4 clips of 1 s
    track = detect_track(waveform, FirstHalfHappyDetector(), fps=16, clip_length=16)
    assert track.num_frames == 64
    plan = plan_clip_emotions(track, EmotionOverrides(segments=[(1.0, 2.0, "angry")]), 16, 16, len(waveform))
    assert names(plan.detected) == ["happy", "happy", "sad", "sad"]
    assert names(plan.used) == ["happy", "angry", "sad", "sad"]
    assert [s["label"] for s in plan.detected_segments] == ["happy", "sad"]
    assert [s["label"] for s in plan.segments] == ["happy", "angry", "sad"]
    assert [(s["start"], s["end"], s["detected"], s["label"]) for s in plan.timeline] == [
        (0.0, 1.0, "happy", "happy"),
        (1.0, 2.0, "happy", "angry"),
        (2.0, 4.0, "sad", "sad"),
    ]
    assert all(s["confidence"] == pytest.approx(1.0) for s in plan.timeline)
    assert [max(s["probabilities"], key=s["probabilities"].get) for s in plan.timeline] == ["happy", "happy", "sad"]
    assert all(sum(s["probabilities"].values()) == pytest.approx(1.0) for s in plan.timeline)
    assert plan.to_dict()["used_per_clip"] == ["happy", "angry", "sad", "sad"]


def test_a_timeline_segment_carries_the_detectors_mean_probabilities():
    """The app shows each segment's top three from these: the mean over the segment's frames, not the winner's 1.0."""
    waveform = np.zeros(3 * 16000, np.float32)
    track = constructed_track()  # 3 s: 12 frames at 4 fps in clips of 4 -> happy, happy, sad
    plan = plan_clip_emotions(track, EmotionOverrides(), 4, 4, len(waveform))
    happy = plan.timeline[0]
    assert (happy["start"], happy["end"], happy["detected"]) == (0.0, 2.0, "happy")
    assert happy["probabilities"]["happy"] == pytest.approx(happy["confidence"]) == pytest.approx((6 * 0.8 + 0.8) / 8)
    assert happy["probabilities"]["neutral"] == pytest.approx((6 * 0.2 + 2 * 0.6) / 8)


def test_the_pipeline_plan_is_the_plan_of_its_request():
    waveform = np.zeros(4 * 16000, np.float32)
    request = GenerationRequest(image="a.png", audio="b.wav", fps=16, emotions=EmotionOverrides("fearful"))
    planned = plan_emotions(waveform, FirstHalfHappyDetector(), request, 16)
    track = detect_track(waveform, FirstHalfHappyDetector(), 16, 16)
    assert planned == plan_clip_emotions(track, request.emotions, 16, 16, len(waveform))
    assert names(planned.used) == ["fearful"] * 4
