"""Speech of the synthetic world: lengths, per-emotion prosody, and the mouth tracks it drives."""

import numpy as np

from memo_model.data.synthetic.speech import (
    FPS,
    SAMPLE_RATE,
    background_sound,
    mouth_open_from_audio,
    sample_voice,
    samples_for_frames,
    synthesize_segment,
    synthesize_speech,
)
from memo_model.metrics import pearson


def syllables_per_second(openness: np.ndarray) -> float:
    onsets = np.sum((openness[1:] > 0) & (openness[:-1] == 0))
    return onsets / (len(openness) / SAMPLE_RATE)


def segment(emotion: str, seconds: float = 6.0, seed: int = 0):
    return synthesize_segment(int(seconds * SAMPLE_RATE), emotion, sample_voice(3), np.random.default_rng(seed))


def test_lengths_match_the_video():
    speech = synthesize_speech([(4, 45), (3, 62)], sample_voice(1), seed=0)
    assert speech.audio.shape == (samples_for_frames(107),) and speech.audio.dtype == np.float32
    assert speech.mouth_open.shape == speech.mouth_shape.shape == speech.energy.shape == (107,)
    assert np.abs(speech.audio).max() <= 1.0
    assert samples_for_frames(FPS) == SAMPLE_RATE


def test_speech_is_deterministic():
    a = synthesize_speech([(0, 60)], sample_voice(2), seed=5)
    b = synthesize_speech([(0, 60)], sample_voice(2), seed=5)
    np.testing.assert_array_equal(a.audio, b.audio)
    c = synthesize_speech([(0, 60)], sample_voice(2), seed=6)
    assert not np.array_equal(a.audio, c.audio)


def test_speaking_rate_follows_emotion():
    rates = {
        e: np.mean([syllables_per_second(segment(e, seed=s)[1]) for s in range(3)])
        for e in ("sad", "neutral", "fearful")
    }
    assert rates["sad"] < rates["neutral"] < rates["fearful"]
    assert 1.5 < rates["sad"] and rates["fearful"] < 8  # plausible human syllable rates


def test_loudness_follows_emotion():
    rms = {e: float(np.sqrt(np.mean(segment(e)[0] ** 2))) for e in ("angry", "neutral", "sad")}
    assert rms["angry"] > rms["neutral"] > rms["sad"]


def test_mouth_tracks_follow_the_audio():
    speech = synthesize_speech([(4, 150)], sample_voice(9), seed=1)
    assert pearson(mouth_open_from_audio(speech.audio, 150), speech.mouth_open) > 0.7
    silent = speech.energy == 0
    assert silent.any() and np.all(speech.mouth_open[silent] == 0)
    assert np.all(np.abs(speech.mouth_shape) <= 1.0)


def test_background_sounds_are_bounded():
    rng = np.random.default_rng(0)
    for kind in ("noise", "music"):
        sound = background_sound(SAMPLE_RATE, kind, 0.05, rng)
        assert sound.shape == (SAMPLE_RATE,) and np.isclose(np.abs(sound).max(), 0.05, atol=1e-4)
