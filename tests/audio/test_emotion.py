"""audio.emotion: official windows and frame mapping, clip votes, and the detectors (overrides, segments and the
per-clip plan: tests/pipelines/test_emotions.py)."""

import sys

import numpy as np
import pytest
import torch

from memo_model.audio.emotion import (
    LOG_MEL_STATISTICS_DIM,
    NUM_EMOTIONS,
    ClassifierHeadDetector,
    Emotion2VecDetector,
    EmotionTrack,
    clip_labels,
    detect_emotions,
    emotion_windows,
    frame_sample_indices,
    log_mel_statistics,
)
from memo_model.errors import InputError, SetupError
from memo_model.models.emotion_classifier import AudioEmotionClassifier

SR = 16_000


def official_paint(num_samples: int, sr: int) -> list[tuple[int, int]]:
    """The official per-sample assignment written out literally (audio_utils.py:217-226): the window each sample's
    label comes from, with Python slicing clipping windows to the audio."""
    first = (0, min(2 * sr, num_samples))
    window_of = [first] * num_samples
    for i in range(sr, num_samples - sr, sr):
        for sample in range(i, min(i + sr, num_samples)):
            window_of[sample] = (i - sr, min(i + 2 * sr, num_samples))
    for sample in range(max(0, num_samples - sr), num_samples):
        window_of[sample] = (max(0, num_samples - 2 * sr), num_samples)
    return window_of


def assigned_windows(num_samples: int, sr: int) -> list[tuple[int, int]]:
    plan = emotion_windows(num_samples, sr)
    return [plan.windows[w] for w in plan.window_of_samples(np.arange(num_samples))]


# --- windows --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_samples", range(1, 75))
def test_windows_match_the_official_painting(num_samples):
    assert assigned_windows(num_samples, sr=10) == official_paint(num_samples, sr=10)


@pytest.mark.parametrize("seconds", [0.5, 1.5, 2.0])
def test_audio_of_two_seconds_or_less_is_one_window(seconds):
    plan = emotion_windows(int(seconds * SR))
    assert plan.windows == ((0, int(seconds * SR)),)
    assert plan.spans == ((0, int(seconds * SR)),)


def test_windows_of_2_5_seconds():
    plan = emotion_windows(int(2.5 * SR))
    assert plan.windows == ((0, 2 * SR), (0, int(2.5 * SR)), (SR // 2, int(2.5 * SR)))
    assert plan.spans == ((0, SR), (SR, int(1.5 * SR)), (int(1.5 * SR), int(2.5 * SR)))
    assert plan.span_windows == (0, 1, 2)


def test_windows_of_3_7_seconds():
    n = int(3.7 * SR)
    plan = emotion_windows(n)
    assigned = dict(zip(plan.spans, (plan.windows[w] for w in plan.span_windows), strict=True))
    assert assigned == {
        (0, SR): (0, 2 * SR),  # first second <- first 2 s
        (SR, 2 * SR): (0, 3 * SR),  # [1, 2) <- [0, 3)
        (2 * SR, n - SR): (SR, n),  # [2, 2.7) <- [1, 4) clipped to the audio
        (n - SR, n): (n - 2 * SR, n),  # last second <- last 2 s
    }


def test_windows_of_10_seconds_label_every_second_from_its_3_second_window():
    plan = emotion_windows(10 * SR)
    assert plan.spans == tuple((s * SR, (s + 1) * SR) for s in range(10))
    windows = [plan.windows[w] for w in plan.span_windows]
    assert windows[0] == (0, 2 * SR) and windows[-1] == (8 * SR, 10 * SR)
    assert windows[1:-1] == [((s - 1) * SR, (s + 2) * SR) for s in range(1, 9)]
    assert len(plan.windows) == 10


def test_empty_audio_is_refused():
    with pytest.raises(InputError, match="empty"):
        emotion_windows(0)


# --- frames -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_samples", "num_frames"), [(160_000, 304), (59_200, 112), (8_000, 16), (7, 16), (5, 10), (33, 33)]
)
def test_frame_mapping_is_torch_nearest_interpolation(num_samples, num_frames):
    samples = torch.arange(num_samples, dtype=torch.float32)[None, None]  # (1, 1, n), exact in float32
    expected = torch.nn.functional.interpolate(samples, size=num_frames, mode="nearest")[0, 0].long().numpy()
    np.testing.assert_array_equal(frame_sample_indices(num_samples, num_frames), expected)


def test_frames_take_the_probabilities_of_their_second():
    class SecondDetector:
        """Window i says emotion i (mod K) with certainty: which window a frame listened to is visible."""

        def window_probabilities(self, waveform, windows):
            return np.eye(NUM_EMOTIONS, dtype=np.float32)[np.arange(len(windows)) % NUM_EMOTIONS]

    track = detect_emotions(np.zeros(5 * SR, np.float32), SecondDetector(), fps=30)
    assert track.num_frames == 160  # 150 frames padded to whole clips
    # frame t reads sample floor(t * 80000 / 160) = t * 500: second floor(t / 32)
    np.testing.assert_array_equal(track.frame_labels, np.arange(160) // 32)
    np.testing.assert_allclose(track.frame_probabilities.sum(axis=1), 1.0)


# --- clips ------------------------------------------------------------------------------------------------------


def test_majority_vote_per_clip_with_ties_to_the_smallest_label():
    frames = np.array([3, 3, 3, 1] + [6, 6, 2, 2] + [4])
    np.testing.assert_array_equal(clip_labels(frames, clip_length=4), [3, 2, 4])  # tie 6/2 -> 2; partial clip


def test_majority_vote_agrees_with_torch_mode_on_cpu():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 3, size=16 * 40)  # few classes: many ties
    expected = torch.from_numpy(frames).view(-1, 16).mode(dim=1).values.numpy()
    np.testing.assert_array_equal(clip_labels(frames), expected)


def test_clip_labels_reject_non_emotions():
    with pytest.raises(ValueError, match="emotion indices"):
        clip_labels(np.array([0, NUM_EMOTIONS]))


def test_track_is_read_only():
    track = EmotionTrack.from_probabilities(np.eye(NUM_EMOTIONS, dtype=np.float32)[:3], fps=4)
    with pytest.raises(ValueError):
        track.frame_labels[0] = 1


# --- detectors --------------------------------------------------------------------------------------------------


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 5)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * voice + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def tiny_head_detector() -> ClassifierHeadDetector:
    torch.manual_seed(0)
    classifier = AudioEmotionClassifier(
        num_classifier_layers=2, num_classifier_channels=8, input_dim=LOG_MEL_STATISTICS_DIM
    )
    return ClassifierHeadDetector(log_mel_statistics, classifier)


def test_log_mel_statistics_size():
    assert log_mel_statistics(speech_like(0.3)).shape == (LOG_MEL_STATISTICS_DIM,)
    assert log_mel_statistics(speech_like(0.3), n_mels=8).shape == (16,)


@pytest.mark.parametrize("seconds", [0.5, 3.7])
def test_classifier_head_detector_end_to_end(seconds):
    waveform = speech_like(seconds)
    detector = tiny_head_detector()
    track = detect_emotions(waveform, detector, fps=25)
    frames = -(-int(seconds * 25) // 16) * 16  # ceil to whole clips
    assert track.frame_probabilities.shape == (frames, NUM_EMOTIONS)
    assert track.frame_labels.shape == (frames,)
    np.testing.assert_allclose(track.frame_probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(track.frame_labels, track.frame_probabilities.argmax(axis=1))
    again = detect_emotions(waveform, detector, fps=25)
    np.testing.assert_array_equal(again.frame_probabilities, track.frame_probabilities)
    assert track.duration == pytest.approx(frames / 25)
    assert detect_emotions(waveform, detector, fps=25, num_frames=7).num_frames == 7


def test_classifier_head_detector_checks_the_feature_size():
    classifier = AudioEmotionClassifier(num_classifier_layers=2, num_classifier_channels=8, input_dim=10)
    with pytest.raises(ValueError, match="input_dim"):
        detect_emotions(speech_like(0.5), ClassifierHeadDetector(log_mel_statistics, classifier))


def test_emotion2vec_detector_says_what_to_download(tmp_path):
    classifier = AudioEmotionClassifier(num_classifier_layers=2, num_classifier_channels=8)
    with pytest.raises(SetupError, match="iic/emotion2vec_plus_large"):
        Emotion2VecDetector(tmp_path / "missing", classifier)
    with pytest.raises(SetupError, match="model.pt"):
        Emotion2VecDetector(tmp_path, classifier)


def test_emotion2vec_detector_names_the_missing_packages(tmp_path, monkeypatch):
    for name in Emotion2VecDetector.REQUIRED_FILES:
        (tmp_path / name).write_text("")
    monkeypatch.setitem(sys.modules, "funasr", None)  # import funasr fails, whether or not it is installed
    classifier = AudioEmotionClassifier(num_classifier_layers=2, num_classifier_channels=8)
    with pytest.raises(SetupError, match="funasr and modelscope.*requirements-official.txt"):
        Emotion2VecDetector(tmp_path, classifier)


def test_importing_the_labels_does_not_import_torch():
    import subprocess

    code = "import sys, memo_model.audio.emotion; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
