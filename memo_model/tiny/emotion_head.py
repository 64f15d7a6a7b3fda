"""Train MEMO-Tiny's audio emotion detector head (paper §4.2 and appendix E.2).

The paper trains a 5-layer MLP classifier head over a fixed audio feature (emotion2vec, time-averaged) with
cross-entropy and gradient clipping at an l2 norm of 1.0. MEMO-Tiny keeps the head
(``AudioEmotionClassifier(num_classifier_layers=5)``) and the training recipe, and swaps the 1024-d emotion2vec
feature for ``log_mel_statistics(window, n_mels=40)`` (per-band mean and std of the log-mel spectrogram, 80-d):
no pretrained speech model can be fetched here, and the synthetic voices carry their emotion in loudness,
brightness, pitch and rhythm, which these statistics see.

Run (writes ``OUTPUT/classifier`` = config.json + diffusion_pytorch_model.safetensors, ``OUTPUT/checkpoint``,
``log.csv``, ``report.json``; the bundled head is ``assets/memo-tiny/misc/audio_emotion_classifier/``)::

    python -m memo_model train-emotion --output /tmp/tiny_parts/emotion_run --steps 3000
    python -m memo_model train-emotion --output /tmp/tiny_parts/emotion_run --steps 4000 --resume

Data, all from training speakers (seed < ``HELD_OUT_SEED_START``), features computed once and cached in
``OUTPUT/features.npz``:
  * single-emotion windows of synthetic speech (``speech.synthesize_speech``), 3 s long as the detector's middle
    windows and 2 s as its edge windows;
  * "talk" windows: speech whose emotion changes every 1-4 s (``sample.plan_segments``, as in the training videos),
    cut exactly as the detector cuts it (``emotion.emotion_windows``), each labelled with the majority ground truth
    of the samples that window labels. A 3 s window often straddles a change; these teach the head which
    emotion the detector is asked for there.
Evaluation: window accuracy on held-out speakers, and end to end on held-out talking samples
(``make_sample``): ``detect_emotions`` + ``clip_labels`` against the majority of each clip's ground-truth labels.

Input standardisation: the head has no normalisation layer (its layout is the official checkpoint contract), so
training standardises the features with the training set's mean and std and, before saving, folds that affine map
into ``fc1`` (W' = W / std, b' = b − W' · mean). The saved head therefore takes raw ``log_mel_statistics``.
"""

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from memo_model.audio.emotion import (
    CLIP_LENGTH,
    CONTEXT_SECONDS,
    DEFAULT_N_MELS,
    EDGE_WINDOW_SECONDS,
    HOP_SECONDS,
    LOG_MEL_STATISTICS_DIM,
    SELECTABLE_EMOTIONS,
    ClassifierHeadDetector,
    clip_labels,
    detect_emotions,
    emotion_windows,
    log_mel_statistics,
)
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START
from memo_model.data.synthetic.sample import make_sample, plan_segments
from memo_model.data.synthetic.speech import FPS, SAMPLE_RATE, sample_voice, synthesize_speech
from memo_model.models.emotion_classifier import AudioEmotionClassifier
from memo_model.training.checkpoints import CHECKPOINT_DIR, save_checkpoint
from memo_model.training.loop import (
    LOG_FILE,
    CsvLog,
    checkpoint_due,
    cosine_share,
    resume_step,
    set_learning_rate,
    write_report,
)

TINY_CLASSIFIER_CONFIG = {
    "num_classifier_layers": 5,  # paper appendix E.2: a 5-layer MLP head
    "num_classifier_channels": 128,  # official 2048; 128 is plenty for an 80-d feature and keeps the file ~0.2 MB
    "input_dim": LOG_MEL_STATISTICS_DIM,
}
GRADIENT_CLIP_NORM = 1.0  # paper appendix E.2
WINDOW_SECONDS = HOP_SECONDS + 2 * CONTEXT_SECONDS  # 3 s: the detector's middle windows
TALK_SECONDS = 6  # length of one multi-emotion "talk": 6 detector windows
EDGE_WINDOW_SHARE = 0.25  # share of 2 s windows, as the first and last window of every clip
STD_FLOOR = 1e-3  # a constant feature (e.g. an empty top band) must not blow up the standardisation
FEATURES_FILE = "features.npz"
LOG_COLUMNS = ("step", "loss", "train_accuracy", "lr", "seconds")


# --- data: feature windows of synthetic emotional speech (pure given the seeds) ------------------------------


def speech_window(speaker: int, emotion: int, seconds: int, seed: int) -> np.ndarray:
    """``seconds`` of speaker ``speaker`` speaking with emotion ``emotion`` (SELECTABLE_EMOTIONS index): (n,) f32."""
    return synthesize_speech([(emotion, seconds * FPS)], sample_voice(speaker), seed).audio


def window_features(
    first_speaker: int, num_speakers: int, per_emotion: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``per_emotion`` windows per selectable emotion, each from a random speaker of the range.

    Returns features (N, LOG_MEL_STATISTICS_DIM) float32 and labels (N,) int64 (EMOTION_LABELS indices, which equal
    SELECTABLE_EMOTIONS indices; "unknown" never appears).
    """
    rng = np.random.default_rng([seed, 0xE40])
    features, labels = [], []
    for emotion in range(len(SELECTABLE_EMOTIONS)):
        for _ in range(per_emotion):
            speaker = first_speaker + int(rng.integers(num_speakers))
            seconds = EDGE_WINDOW_SECONDS if rng.random() < EDGE_WINDOW_SHARE else WINDOW_SECONDS
            audio = speech_window(speaker, emotion, seconds, int(rng.integers(2**31)))
            features.append(log_mel_statistics(audio, n_mels=DEFAULT_N_MELS).numpy())
            labels.append(emotion)
    return np.stack(features), np.array(labels, dtype=np.int64)


def talk_windows(first_speaker: int, num_speakers: int, num_talks: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Detector windows of ``num_talks`` multi-emotion talks of TALK_SECONDS; labels are the majority ground truth
    over the samples each window labels. Returns features (N, LOG_MEL_STATISTICS_DIM) and labels (N,)."""
    rng = np.random.default_rng([seed, 0x7A1C])
    features, labels = [], []
    for _ in range(num_talks):
        speaker = first_speaker + int(rng.integers(num_speakers))
        segments = plan_segments(TALK_SECONDS * FPS, rng)
        speech = synthesize_speech(
            [(s.emotion, s.end - s.start) for s in segments], sample_voice(speaker), int(rng.integers(2**31))
        )
        frame_emotions = np.concatenate([np.full(s.end - s.start, s.emotion) for s in segments])  # (T,)
        plan = emotion_windows(len(speech.audio))
        votes = np.zeros((len(plan.windows), len(SELECTABLE_EMOTIONS)))  # (W, 8) labelled samples per emotion
        for (start, stop), window in zip(plan.spans, plan.span_windows, strict=True):
            frames = np.minimum(np.arange(start, stop) * FPS // SAMPLE_RATE, len(frame_emotions) - 1)
            votes[window] += np.bincount(frame_emotions[frames], minlength=len(SELECTABLE_EMOTIONS))
        for (start, stop), vote in zip(plan.windows, votes, strict=True):
            features.append(log_mel_statistics(speech.audio[start:stop], n_mels=DEFAULT_N_MELS).numpy())
            labels.append(int(vote.argmax()))
    return np.stack(features), np.array(labels, dtype=np.int64)


def cached_features(path: Path, per_emotion: int, talks: int, num_speakers: int, seed: int) -> dict[str, np.ndarray]:
    """Training-speaker and held-out-speaker windows (single-emotion and talk), computed once and cached."""
    if path.is_file():
        cached = dict(np.load(path))
        sizes = (len(cached["train_labels"]), int(cached.get("talks", -1)))
        if sizes == (per_emotion * len(SELECTABLE_EMOTIONS), talks):
            return cached
    held_per_emotion, held_talks = max(1, per_emotion // 4), max(1, talks // 4)
    train_x, train_y = window_features(0, num_speakers, per_emotion, seed)
    test_x, test_y = window_features(HELD_OUT_SEED_START, num_speakers, held_per_emotion, seed + 1)
    talk_x, talk_y = talk_windows(0, num_speakers, talks, seed) if talks else (train_x[:0], train_y[:0])
    held_talk_x, held_talk_y = talk_windows(HELD_OUT_SEED_START, num_speakers, held_talks, seed + 1)
    data = {
        "train_features": train_x,
        "train_labels": train_y,
        "test_features": test_x,
        "test_labels": test_y,
        "talk_features": talk_x,
        "talk_labels": talk_y,
        "test_talk_features": held_talk_x,
        "test_talk_labels": held_talk_y,
        "talks": np.array(talks),
    }
    np.savez(path, **data)
    return data


# --- model helpers (pure) --------------------------------------------------------------------------------------


def fold_standardisation(classifier: AudioEmotionClassifier, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make ``classifier(x)`` equal the trained ``classifier((x - mean) / std)``, in place, by rewriting fc1."""
    fc1 = classifier.layers.fc1
    with torch.no_grad():
        fc1.weight.div_(std)  # (out, in) / (in,)
        fc1.bias.sub_(fc1.weight @ mean)


def accuracy(classifier: AudioEmotionClassifier, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (classifier.logits(features).argmax(-1) == labels).float().mean().item()


def per_emotion_accuracy(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    present = [(i, name) for i, name in enumerate(SELECTABLE_EMOTIONS) if (labels == i).any()]
    return {name: float((predicted[labels == i] == i).mean()) for i, name in present}


def ground_truth_clip_labels(frame_emotions: np.ndarray, num_frames: int) -> np.ndarray:
    """Majority ground-truth label per clip, over the frames padded (with the last label) to ``num_frames``."""
    padded = np.concatenate([frame_emotions, np.full(num_frames - len(frame_emotions), frame_emotions[-1])])
    return clip_labels(padded)


def evaluate_end_to_end(
    classifier: AudioEmotionClassifier, num_samples: int = 8, seconds: float = 8.0, seed: int = 3
) -> dict[str, float]:
    """``detect_emotions`` + ``clip_labels`` on held-out talking samples vs. their ground-truth clip labels.

    Returns clip accuracy over all clips and over clips whose ground truth is one emotion throughout (a clip that
    straddles a change has no single right answer).
    """
    detector = ClassifierHeadDetector(log_mel_statistics, classifier)
    correct, total, pure_correct, pure_total = 0, 0, 0, 0
    for i in range(num_samples):
        sample = make_sample(HELD_OUT_SEED_START + 700_000 + i, seed * 1000 + i, int(seconds * FPS), render=False)
        emotions = np.asarray(sample.labels["emotion"], dtype=np.int64)  # (T,) ground truth per video frame
        track = detect_emotions(sample.audio, detector, fps=FPS)
        detected = clip_labels(track.frame_labels)
        truth = ground_truth_clip_labels(emotions, track.num_frames)
        padded = np.concatenate([emotions, np.full(track.num_frames - len(emotions), emotions[-1])])
        pure = np.array([len(set(padded[c : c + CLIP_LENGTH])) == 1 for c in range(0, len(padded), CLIP_LENGTH)])
        correct += int((detected == truth).sum())
        total += len(truth)
        pure_correct += int((detected == truth)[pure].sum())
        pure_total += int(pure.sum())
    return {
        "clip_accuracy": correct / total,
        "clip_accuracy_single_emotion_clips": pure_correct / max(pure_total, 1),
        "clips": total,
        "samples": num_samples,
    }


# --- the training run -----------------------------------------------------------------------------------------


def train_emotion(
    output_dir: str | Path,
    steps: int = 3000,
    resume: bool = False,
    per_emotion: int = 150,
    talks: int = 150,
    num_speakers: int = 100_000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    checkpoint_every: int = 500,
    log_every: int = 100,
    seed: int = 0,
    threads: int = 1,
    end_to_end_samples: int = 8,
) -> dict:
    """Train (or continue) the detector head; writes ``output_dir/classifier`` and returns the report."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    started = time.time()

    # 1. Features of training and held-out windows (cached: synthesis dominates the run time)
    data = cached_features(output / FEATURES_FILE, per_emotion, talks, num_speakers, seed)
    train_x = torch.from_numpy(np.concatenate([data["train_features"], data["talk_features"]]))
    train_y = torch.from_numpy(np.concatenate([data["train_labels"], data["talk_labels"]]))
    talk_x, talk_y = torch.from_numpy(data["test_talk_features"]), torch.from_numpy(data["test_talk_labels"])
    test_x, test_y = torch.from_numpy(data["test_features"]), torch.from_numpy(data["test_labels"])
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(STD_FLOOR)
    feature_seconds = time.time() - started

    # 2. Model, optimiser, previous run
    classifier = AudioEmotionClassifier(**TINY_CLASSIFIER_CONFIG)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=learning_rate, weight_decay=weight_decay)
    checkpoint = output / CHECKPOINT_DIR
    step = resume_step(checkpoint, classifier, optimizer) if resume else 0

    # 3. Training loop: cross-entropy on logits of standardised features, gradient clipping 1.0 (appendix E.2)
    generator = torch.Generator().manual_seed(seed + step)
    log = CsvLog(output / LOG_FILE, LOG_COLUMNS, append=resume)
    classifier.train()
    running_loss, running_correct = 0.0, 0.0
    while step < steps:
        set_learning_rate(optimizer, learning_rate * cosine_share(step, steps))  # cosine decay over the run
        batch = torch.randint(len(train_y), (batch_size,), generator=generator)
        logits = classifier.logits((train_x[batch] - mean) / std)
        loss = F.cross_entropy(logits, train_y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(classifier.parameters(), GRADIENT_CLIP_NORM)
        optimizer.step()
        step += 1
        running_loss += loss.item() / log_every
        running_correct += (logits.argmax(-1) == train_y[batch]).float().mean().item() / log_every
        if step % log_every == 0:
            row = [step, round(running_loss, 5), round(running_correct, 4)]
            row += [f"{optimizer.param_groups[0]['lr']:.2e}", round(time.time() - started, 1)]
            log.write(row)
            running_loss, running_correct = 0.0, 0.0
        if checkpoint_due(step, steps, checkpoint_every):
            save_checkpoint(checkpoint, classifier, optimizer, step)

    # 4. Fold the standardisation into fc1, evaluate on held-out speakers, save
    classifier.eval()
    fold_standardisation(classifier, mean, std)
    classifier.save_pretrained(output / "classifier")
    with torch.no_grad():
        predicted = classifier.logits(test_x).argmax(-1).numpy()
    report = {
        "steps": step,
        "train_windows": len(train_y),
        "held_out_windows": len(test_y),
        "feature_seconds": round(feature_seconds, 1),
        "train_accuracy": accuracy(classifier, train_x, train_y),
        "held_out_window_accuracy": float((predicted == test_y.numpy()).mean()),
        "held_out_per_emotion": per_emotion_accuracy(predicted, test_y.numpy()),
        "held_out_talk_windows": len(talk_y),
        "held_out_talk_window_accuracy": accuracy(classifier, talk_x, talk_y),
        "end_to_end": evaluate_end_to_end(classifier, end_to_end_samples) if end_to_end_samples else None,
    }
    report["seconds"] = round(time.time() - started, 1)
    write_report(output, report)
    print(json.dumps(report, indent=2))
    return report
