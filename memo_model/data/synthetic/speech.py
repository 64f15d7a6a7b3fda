"""Speech-like audio for the synthetic world, with the mouth motion that produced it.

A source-filter voice: a glottal pulse train (pitch contour, jitter, tremor, spectral tilt, breathiness) is
shaped by vowel formant resonators into syllables; syllables may start with a noise burst (consonant) and are
grouped into words and phrases separated by pauses. Each emotion has its own prosody (``PROSODY``): pitch
level and range, speaking rate, loudness, tilt, jitter and pause habits, so emotion is audible and learnable
from the waveform alone. Each speaker (identity seed) has a base pitch and vocal-tract length.

Ground truth per video frame comes from the synthesis itself: ``mouth_open`` is the vowel's openness times
its amplitude envelope, ``mouth_shape`` the vowel's lip shape (-1 round .. +1 wide). Open vowels are
also intrinsically louder, as in real speech, so the loudness envelope tracks the mouth.
"""

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from memo_model.audio.emotion import SELECTABLE_EMOTIONS

SAMPLE_RATE = 16_000
FPS = 30

# Vowel: formants F1..F3 (Hz, adult average), mouth openness (0..1), lip shape (-1 round .. +1 wide).
VOWELS: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "a": ((730.0, 1090.0, 2440.0), 1.0, 0.3),
    "e": ((530.0, 1840.0, 2480.0), 0.6, 0.7),
    "i": ((270.0, 2290.0, 3010.0), 0.3, 1.0),
    "o": ((570.0, 840.0, 2410.0), 0.75, -0.7),
    "u": ((300.0, 870.0, 2240.0), 0.35, -1.0),
}
_FORMANT_BANDWIDTHS = (90.0, 110.0, 170.0)  # Hz
F1_BAND_HZ = (400.0, 1100.0)  # where open vowels (a, o, e) have their first formant; i and u sit below
_ATTACK_S = 0.03
_RELEASE_S = 0.05


@dataclass(frozen=True)
class Prosody:
    """How an emotion sounds. Pitch values are relative to the speaker's base pitch."""

    pitch: float  # multiplier on the speaker's base f0
    pitch_range: float  # semitones of syllable-to-syllable pitch movement
    contour: float  # semitones of rise (+) or fall (-) over a phrase
    rate: float  # syllables per second
    loudness: float  # peak amplitude, 0..1
    tilt: float  # one-pole low-pass coefficient: higher = darker voice
    jitter: float  # relative random pitch perturbation per glottal period
    tremor_hz: float  # pitch/amplitude tremor rate (0 = none)
    breathiness: float  # share of aspiration noise in the voice
    pause: float  # probability of a pause after a word


PROSODY: dict[str, Prosody] = {
    "angry": Prosody(1.15, 2.0, -4.0, 6.0, 1.0, 0.1, 0.015, 0.0, 0.03, 0.15),
    "disgusted": Prosody(0.85, 2.0, -3.0, 3.4, 0.5, 0.7, 0.06, 0.0, 0.15, 0.35),
    "fearful": Prosody(1.35, 1.5, 0.0, 6.5, 0.4, 0.55, 0.02, 7.0, 0.35, 0.2),
    "happy": Prosody(1.25, 6.0, 1.0, 4.8, 0.75, 0.35, 0.01, 0.0, 0.05, 0.2),
    "neutral": Prosody(1.0, 1.0, -1.0, 4.3, 0.6, 0.55, 0.008, 0.0, 0.05, 0.25),
    "other": Prosody(1.05, 2.5, 4.0, 4.0, 0.45, 0.5, 0.01, 0.0, 0.7, 0.25),
    "sad": Prosody(0.82, 0.6, -2.5, 2.8, 0.28, 0.85, 0.015, 0.0, 0.2, 0.5),
    "surprised": Prosody(1.5, 3.5, 9.0, 3.8, 0.85, 0.4, 0.01, 0.0, 0.1, 0.3),
}


@dataclass(frozen=True)
class Voice:
    """A speaker: base pitch and vocal tract length (formant scale)."""

    f0: float
    formant_scale: float


def sample_voice(seed: int) -> Voice:
    rng = np.random.default_rng([seed, 0xA0D])
    return Voice(f0=float(rng.uniform(95, 230)), formant_scale=float(rng.uniform(0.9, 1.15)))


@dataclass
class Speech:
    """Audio and its per-frame ground truth. ``audio`` (n,) float32 at SAMPLE_RATE; tracks (f,) at FPS."""

    audio: np.ndarray
    mouth_open: np.ndarray
    mouth_shape: np.ndarray
    energy: np.ndarray  # per-frame voiced envelope (0..1), drives head motion


def samples_for_frames(num_frames: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """Audio length that exactly spans ``num_frames`` video frames."""
    return int(round(num_frames * sample_rate / fps))


def _resonator(frequency: float, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order all-pole resonator coefficients (b, a) with unit gain at DC."""
    r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    theta = 2 * np.pi * frequency / SAMPLE_RATE
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    return np.array([a.sum()]), a


def _formant_filter(signal: np.ndarray, formants: tuple[float, ...]) -> np.ndarray:
    out = signal
    for frequency, bandwidth in zip(formants, _FORMANT_BANDWIDTHS, strict=True):
        b, a = _resonator(min(frequency, SAMPLE_RATE * 0.45), bandwidth)
        out = lfilter(b, a, out)
    return out


def _envelope(length: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(length)
    attack, release = min(attack, length // 2), min(release, length // 2)
    env[:attack] = np.sin(np.linspace(0, np.pi / 2, attack)) ** 2
    env[length - release :] = np.cos(np.linspace(0, np.pi / 2, release)) ** 2
    return env


def _plan_syllables(num_samples: int, prosody: Prosody, rng: np.random.Generator) -> list[tuple[int, int, str, bool]]:
    """(start, end, vowel, has_consonant) for each syllable that fits in ``num_samples``."""
    plan = []
    position = int(rng.uniform(0.02, 0.15) * SAMPLE_RATE)  # a short breath before speaking
    syllable = SAMPLE_RATE / prosody.rate
    while True:
        for _ in range(int(rng.integers(1, 4))):  # a word of 1-3 syllables
            length = int(syllable * rng.uniform(0.75, 1.25))
            if position + length > num_samples:
                return plan
            plan.append((position, position + length, str(rng.choice(list(VOWELS))), bool(rng.random() < 0.7)))
            position += length
        if rng.random() < prosody.pause:
            position += int(syllable * rng.uniform(0.8, 2.5))
        else:
            position += int(syllable * rng.uniform(0.05, 0.2))


def synthesize_segment(
    num_samples: int, emotion: str, voice: Voice, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Speech for one emotion segment: (audio, openness envelope, shape-weighted envelope), each (num_samples,)."""
    prosody = PROSODY[emotion]
    audio = np.zeros(num_samples)
    openness = np.zeros(num_samples)
    shaped = np.zeros(num_samples)
    plan = _plan_syllables(num_samples, prosody, rng)
    if not plan:
        return audio.astype(np.float32), openness, shaped

    # 1. Pitch contour: phrase-level rise/fall plus a random accent per syllable, smoothed.
    t = np.arange(num_samples) / num_samples
    semitones = prosody.contour * (t - 0.5)
    accents = np.zeros(num_samples)
    for start, end, _, _ in plan:
        accents[start:end] = rng.normal(0, prosody.pitch_range)
    kernel = np.hanning(int(0.08 * SAMPLE_RATE))
    accents = np.convolve(accents, kernel / kernel.sum(), mode="same")
    if prosody.tremor_hz:
        semitones = semitones + 0.8 * np.sin(2 * np.pi * prosody.tremor_hz * np.arange(num_samples) / SAMPLE_RATE)
    f0 = voice.f0 * prosody.pitch * 2 ** ((semitones + accents) / 12)
    # Jitter: the period length wanders randomly; held for ~5 ms so it acts per glottal cycle.
    hold = SAMPLE_RATE // 200
    jitter = np.repeat(rng.normal(0, prosody.jitter, num_samples // hold + 1), hold)[:num_samples]
    f0 = f0 * (1 + jitter)

    # 2. Glottal source: a sawtooth from the running phase, darkened by the emotion's spectral tilt.
    phase = np.cumsum(f0 / SAMPLE_RATE)
    source = 2 * (phase % 1.0) - 1
    source = lfilter([1 - prosody.tilt], [1, -prosody.tilt], source)
    source = source / (np.std(source) + 1e-8)
    aspiration = rng.normal(0, 1, num_samples)
    source = (1 - prosody.breathiness) * source + prosody.breathiness * aspiration

    # 3. Syllables: formant-filtered vowels with envelopes, optional consonant bursts.
    attack, release = int(_ATTACK_S * SAMPLE_RATE), int(_RELEASE_S * SAMPLE_RATE)
    for start, end, vowel, consonant in plan:
        formants, open_amount, lip_shape = VOWELS[vowel]
        voiced_start = start
        if consonant:
            burst = int(rng.uniform(0.02, 0.05) * SAMPLE_RATE)
            noise = rng.normal(0, 1, burst) * _envelope(burst, burst // 4, burst // 2)
            noise = lfilter([1, -0.95], [1], noise)  # pre-emphasis: a bright, fricative-like burst
            audio[start : start + burst] += 0.25 * prosody.loudness * noise / (np.abs(noise).max() + 1e-8)
            voiced_start = start + burst
        length = end - voiced_start
        env = _envelope(length, attack, release)
        vowel_audio = _formant_filter(source[voiced_start:end], tuple(f * voice.formant_scale for f in formants))
        vowel_audio = vowel_audio / (np.abs(vowel_audio).max() + 1e-8)
        amplitude = prosody.loudness * (0.55 + 0.45 * open_amount)  # open vowels are intrinsically louder
        if prosody.tremor_hz:
            env = env * (1 + 0.3 * np.sin(2 * np.pi * prosody.tremor_hz * np.arange(voiced_start, end) / SAMPLE_RATE))
        audio[voiced_start:end] += amplitude * env * vowel_audio
        openness[voiced_start:end] = open_amount * np.clip(env, 0, 1)
        shaped[voiced_start:end] = lip_shape * np.clip(env, 0, 1)
    return audio.astype(np.float32), openness, shaped


def frame_tracks(
    openness: np.ndarray, shaped: np.ndarray, num_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (mouth_open, mouth_shape, energy) from sample-level envelopes, each (num_frames,)."""
    edges = np.round(np.arange(num_frames + 1) * SAMPLE_RATE / FPS).astype(int)
    open_sum = np.add.reduceat(openness, edges[:-1])
    shape_sum = np.add.reduceat(shaped, edges[:-1])
    voiced = np.add.reduceat((openness > 0).astype(np.float64), edges[:-1])
    counts = np.diff(edges)
    mouth_open = open_sum / counts
    energy = voiced / counts
    # Lips relax to neutral in silence: shape fades with the share of voiced samples in the frame.
    mouth_shape = shape_sum / np.maximum(voiced, 1) * np.clip(energy * 2, 0, 1)
    return mouth_open.astype(np.float32), mouth_shape.astype(np.float32), energy.astype(np.float32)


def background_sound(num_samples: int, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """Optional background: "noise" (pink-ish hiss) or "music" (slow chords), scaled to peak ``level``."""
    if kind == "noise":
        sound = lfilter([1.0], [1.0, -0.9], rng.normal(0, 1, num_samples))
    elif kind == "music":
        t = np.arange(num_samples) / SAMPLE_RATE
        root = 110 * 2 ** (rng.integers(0, 12) / 12)
        chord_change = np.floor(t / 2.0)  # a new chord every two seconds
        shift = 2 ** (np.array([0, 5, 7, 3])[(chord_change % 4).astype(int)] / 12)
        sound = sum(np.sin(2 * np.pi * root * ratio * shift * t) for ratio in (1.0, 1.26, 1.5))
    elif kind == "none":
        return np.zeros(num_samples, dtype=np.float32)
    else:
        raise ValueError(f"Unknown background {kind!r}; use 'none', 'noise' or 'music'.")
    return (level * sound / (np.abs(sound).max() + 1e-8)).astype(np.float32)


def synthesize_speech(
    segments: list[tuple[int, int]],
    voice: Voice,
    seed: int,
    background: str = "none",
    background_level: float = 0.05,
) -> Speech:
    """Speech for consecutive emotion segments given as (emotion index, num_frames)."""
    rng = np.random.default_rng([seed, 0x5EEC])
    num_frames = sum(n for _, n in segments)
    total = samples_for_frames(num_frames)
    parts, open_parts, shape_parts = [], [], []
    frame = 0
    for emotion, n in segments:
        length = samples_for_frames(frame + n) - samples_for_frames(frame)
        audio, openness, shaped = synthesize_segment(length, SELECTABLE_EMOTIONS[emotion], voice, rng)
        parts.append(audio)
        open_parts.append(openness)
        shape_parts.append(shaped)
        frame += n
    audio = np.concatenate(parts)
    assert audio.shape[0] == total
    audio = audio + background_sound(total, background, background_level, rng)
    mouth_open, mouth_shape, energy = frame_tracks(np.concatenate(open_parts), np.concatenate(shape_parts), num_frames)
    return Speech(np.clip(audio, -1, 1).astype(np.float32), mouth_open, mouth_shape, energy)


def mouth_open_from_audio(audio: np.ndarray, num_frames: int | None = None) -> np.ndarray:
    """Audio-only estimate of the per-frame mouth opening, for videos without labels. Shape (f,).

    Per-frame RMS of the first-formant band (F1 rises with jaw opening, and consonant noise lies above it),
    normalised by its 1-second running maximum so loudness changes between emotions do not dominate. This is
    the audio side of the lip-sync metric when no synthesis ground truth exists.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if num_frames is None:
        num_frames = int(round(audio.shape[0] * FPS / SAMPLE_RATE))
    band = sosfilt(butter(4, F1_BAND_HZ, btype="band", fs=SAMPLE_RATE, output="sos"), audio)
    edges = np.round(np.arange(num_frames + 1) * SAMPLE_RATE / FPS).astype(int)
    edges = np.clip(edges, 0, audio.shape[0])
    squares = np.concatenate([[0.0], np.cumsum(band**2)])
    counts = np.maximum(np.diff(edges), 1)
    rms = np.sqrt(np.maximum(squares[edges[1:]] - squares[edges[:-1]], 0) / counts)
    window = FPS  # one second of frames
    padded = np.pad(rms, window // 2, mode="edge")
    running_max = np.lib.stride_tricks.sliding_window_view(padded, window + 1).max(axis=1)[:num_frames]
    return (rms / (running_max + 1e-6)).astype(np.float32)
