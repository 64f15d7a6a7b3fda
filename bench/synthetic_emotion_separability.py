"""Is the synthetic speech's emotion learnable from audio alone? A linear probe on simple audio statistics.

Renders single-emotion speech segments (1-4 s) from training speakers and from held-out speakers (identity
seeds never used for training), describes each by log-mel mean/std, delta std, its loudness-envelope
modulation spectrum and speaker-relative pitch statistics (librosa's YIN), fits a logistic regression on the
training speakers and reports held-out accuracy.

Run::

    python -m bench.synthetic_emotion_separability --per-emotion 120 \
        --output /tmp/synth_work/emotion_separability.json
"""

import argparse
import json
import time

import librosa
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from memo_model.audio.emotion import SELECTABLE_EMOTIONS
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.data.synthetic.speech import SAMPLE_RATE, sample_voice, synthesize_segment

N_MELS = 40
HOP = 160  # 10 ms
ENVELOPE_RATE = SAMPLE_RATE / HOP
MODULATION_BANDS_HZ = (0.5, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12)  # syllable and tremor rates live here


def audio_features(audio: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=512, hop_length=HOP, n_mels=N_MELS)
    log_mel = np.log(mel + 1e-6)  # (m, t)
    delta = np.diff(log_mel, axis=1)
    envelope = np.sqrt(mel.sum(0))
    envelope = envelope - envelope.mean()
    spectrum = np.abs(np.fft.rfft(envelope, n=1024))
    frequencies = np.fft.rfftfreq(1024, 1 / ENVELOPE_RATE)
    modulation = np.interp(MODULATION_BANDS_HZ, frequencies, spectrum) / (spectrum.sum() + 1e-8)
    voiced = (envelope > 0).mean()
    return np.concatenate([log_mel.mean(1), log_mel.std(1), delta.std(1), modulation, [voiced], pitch_features(audio)])


def pitch_features(audio: np.ndarray) -> np.ndarray:
    """Speaker-relative pitch statistics in semitones: level, spread, range, slope and period-to-period wobble."""
    f0 = librosa.yin(audio, fmin=60, fmax=700, sr=SAMPLE_RATE, frame_length=1024, hop_length=HOP)
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=HOP)[0][: len(f0)]
    voiced = rms > 0.3 * rms.max()  # yin guesses a pitch everywhere; keep only loud (voiced) frames
    if voiced.sum() < 4:
        return np.zeros(6)
    semitones = 12 * np.log2(f0[voiced])
    centred = semitones - np.median(semitones)
    time_axis = np.linspace(0, 1, len(centred))
    slope = np.polyfit(time_axis, centred, 1)[0]
    wobble = np.median(np.abs(np.diff(centred)))
    return np.array(
        [
            np.median(semitones),
            centred.std(),
            np.percentile(centred, 90) - np.percentile(centred, 10),
            slope,
            wobble,
            voiced.mean(),
        ]
    )


def make_set(first_speaker: int, num_speakers: int, per_emotion: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features, labels = [], []
    for emotion_index, emotion in enumerate(SELECTABLE_EMOTIONS):
        for _ in range(per_emotion):
            voice = sample_voice(first_speaker + int(rng.integers(num_speakers)))
            length = int(rng.uniform(1.0, 4.0) * SAMPLE_RATE)
            audio, _, _ = synthesize_segment(length, emotion, voice, rng)
            features.append(audio_features(audio))
            labels.append(emotion_index)
    return np.array(features), np.array(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-emotion", type=int, default=120, help="training segments per emotion")
    parser.add_argument("--output", default=None, help="write the result JSON here")
    args = parser.parse_args()
    started = time.time()
    x_train, y_train = make_set(0, 500, args.per_emotion, seed=0)
    x_test, y_test = make_set(HELD_OUT_SEED_START, 500, max(20, args.per_emotion // 3), seed=1)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    probe.fit(x_train, y_train)
    predicted = probe.predict(x_test)
    result = {
        "classifier": "logistic regression: log-mel mean/std, delta std, envelope modulation, relative pitch",
        "train_segments": int(len(y_train)),
        "held_out_segments": int(len(y_test)),
        "held_out_speakers": "identity seeds >= HELD_OUT_SEED_START",
        "held_out_accuracy": float(np.mean(predicted == y_test)),
        "train_accuracy": float(probe.score(x_train, y_train)),
        "per_emotion_accuracy": {
            e: float(np.mean(predicted[y_test == i] == i)) for i, e in enumerate(SELECTABLE_EMOTIONS)
        },
        "confusion": confusion_matrix(y_test, predicted).tolist(),
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps(result, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
