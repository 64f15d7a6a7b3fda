"""A synthetic sample: segments, per-frame labels aligned with frames and audio, reference image."""

from pathlib import Path

import numpy as np

from memo_model.audio.emotion import EMOTION_LABELS, ClassifierHeadDetector, detect_emotions, log_mel_statistics
from memo_model.data.synthetic.sample import (
    SEGMENT_SECONDS,
    TRANSITION_FRAMES,
    expression_track,
    make_sample,
    plan_segments,
)
from memo_model.data.synthetic.speech import FPS, samples_for_frames
from memo_model.models.emotion_classifier import AudioEmotionClassifier

SHIPPED_DETECTOR = Path(__file__).resolve().parents[2] / "assets" / "memo-tiny" / "misc" / "audio_emotion_classifier"


def test_segments_cover_the_video_and_change_emotion():
    rng = np.random.default_rng(0)
    for num_frames in (40, 300, 1000):
        segments = plan_segments(num_frames, rng)
        assert segments[0].start == 0 and segments[-1].end == num_frames
        for a, b in zip(segments[:-1], segments[1:], strict=True):
            assert a.end == b.start and a.emotion != b.emotion
        lengths = [s.end - s.start for s in segments]
        if num_frames >= SEGMENT_SECONDS[0] * FPS:
            assert min(lengths) >= SEGMENT_SECONDS[0] * FPS and max(lengths) <= SEGMENT_SECONDS[1] * FPS
        assert all(0 <= s.emotion < len(EMOTION_LABELS) - 1 for s in segments)  # never "unknown"


def test_expression_blends_around_changes():
    segments = plan_segments(200, np.random.default_rng(1))
    weights = expression_track(segments, 200)
    assert weights.shape == (200, 8)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-6)
    labels = np.concatenate([np.full(s.end - s.start, s.emotion) for s in segments])
    far = np.ones(200, dtype=bool)
    for s in segments[1:]:
        far[s.start - TRANSITION_FRAMES : s.start + TRANSITION_FRAMES] = False
        assert 0 < weights[s.start, s.emotion] < 1  # the change is a blend, not a jump
    assert np.allclose(weights[far].max(1), 1.0) and np.all(weights.argmax(1)[far] == labels[far])


def test_sample_labels_align_with_frames_and_audio():
    sample = make_sample(identity_seed=4, seed=2, num_frames=95, size=64)
    labels = sample.labels
    assert sample.frames.shape == (95, 64, 64, 3)
    assert sample.audio.shape == (samples_for_frames(95),)
    for key in ("emotion", "mouth_open", "mouth_shape", "blink"):
        assert len(labels[key]) == 95, key
    assert all(len(track) == 95 for track in labels["head_pose"].values())
    assert labels["segments"][0]["start_frame"] == 0 and labels["segments"][-1]["end_frame"] == 95
    assert labels["segments"][0]["label"] == EMOTION_LABELS[labels["segments"][0]["emotion"]]
    assert sample.reference.shape == (64, 64, 3)
    assert sample.reference_emotion != labels["segments"][0]["emotion"]


def test_sample_is_reproducible_and_head_moves_with_speech():
    a = make_sample(identity_seed=8, seed=3, num_frames=300, size=64)
    b = make_sample(identity_seed=8, seed=3, num_frames=300, size=64)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.audio, b.audio)
    yaw = np.abs(np.array(a.labels["head_pose"]["yaw"]))
    assert 0 < yaw.max() <= 0.6
    assert np.any(np.array(a.labels["blink"]) > 0.9)  # at least one blink in 10 s


def test_forced_emotions_are_used_in_order():
    sample = make_sample(identity_seed=1, seed=0, num_frames=200, emotions=[3, 6], render=False)
    assert sample.frames is None
    assert [s["emotion"] for s in sample.labels["segments"]][:2] == [3, 6]


def test_decoupled_speech_follows_its_own_plan_and_the_face_keeps_the_labelled_one():
    coupled = make_sample(identity_seed=1_000_007, seed=5, num_frames=600, size=64)
    decoupled = make_sample(identity_seed=1_000_007, seed=5, num_frames=600, size=64, decoupled=True)
    assert "speech_segments" not in coupled.labels
    assert decoupled.labels["segments"] == coupled.labels["segments"]  # the face's plan (the labels) is the same
    assert decoupled.reference_emotion == coupled.reference_emotion
    spoken = decoupled.labels["speech_segments"]
    assert spoken[0]["start_frame"] == 0 and spoken[-1]["end_frame"] == 600
    assert spoken != decoupled.labels["segments"]
    assert not np.array_equal(decoupled.audio, coupled.audio)

    # The bundled emotion detector hears the speech's plan, not the face's.
    detector = ClassifierHeadDetector(log_mel_statistics, AudioEmotionClassifier.from_pretrained(SHIPPED_DETECTOR))
    heard = detect_emotions(decoupled.audio, detector, fps=FPS, num_frames=600).frame_labels
    speech_track = np.concatenate([np.full(s["end_frame"] - s["start_frame"], s["emotion"]) for s in spoken])
    face_track = np.asarray(decoupled.labels["emotion"])
    assert np.mean(heard == speech_track) > np.mean(heard == face_track) + 0.2
