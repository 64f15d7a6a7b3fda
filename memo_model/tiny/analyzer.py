"""Training and held-out evaluation of the face analyzer (the network: ``data/synthetic/analyzer.py``), on renders
of the synthetic world.

Frames are rendered on the fly (in one DataLoader worker, so rendering overlaps the optimiser step) from
random per-frame states of training identities; every frame is new, so there is no fixed data set to
overfit. The identity embedding is trained with a cosine-margin softmax over the training identities
(CosFace), which makes cosine similarity a verification score for people never seen in training.

Run (36 minutes on the shared 2-core machine; writes assets/analyzer/)::

    python -m memo_model train-analyzer --steps 3000 --output assets/analyzer

Held-out evaluation uses identities from HELD_OUT_SEEDS only: mouth-opening R², expression accuracy on
rendered talking videos, and same/different verification accuracy with a threshold chosen on training
identities.
"""

import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset

from memo_model.data.synthetic.analyzer import (
    HEAD_POSE_NAMES,
    HEAD_POSE_SCALE,
    AnalyzerConfig,
    FaceAnalyzer,
    analyze_frames,
    prepare_frames,
    save_analyzer,
)
from memo_model.data.synthetic.identity import HELD_OUT_SEED_START, sample_identity
from memo_model.data.synthetic.renderer import FaceRenderer
from memo_model.data.synthetic.sample import make_sample, random_state
from memo_model.training.loop import cosine_share, set_learning_rate, write_report

RENDER_SIZES = (96, 128)  # render at several sizes so the analyzer does not depend on one rasterisation
COSFACE_SCALE = 16.0  # CosFace (Wang et al. 2018): logit scale and additive cosine margin
COSFACE_MARGIN = 0.2
LOSS_WEIGHTS = {"mouth_open": 10.0, "mouth_shape": 3.0, "expression": 1.0, "head_pose": 0.5, "identity": 0.5}


# ---------------------------------------------------------------------------------------------------------------
# Data: random frame states (sample.random_state) of random training identities
# ---------------------------------------------------------------------------------------------------------------
def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild blur and noise, so generated (softer, noisier) videos are read like renders."""
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.3:
        noise = rng.normal(0, rng.uniform(1, 6), image.shape)
        image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return image


class RenderedFrames(IterableDataset):
    """Endless batches: (images (b, 3, s, s), targets dict of tensors)."""

    def __init__(self, num_identities: int, batch_size: int, image_size: int, seed: int):
        self.num_identities = num_identities
        self.batch_size = batch_size
        self.image_size = image_size
        self.seed = seed

    def __iter__(self):
        rng = np.random.default_rng([self.seed, 0xA7A])
        renderers: dict[tuple[int, int], FaceRenderer] = {}
        while True:
            frames, targets = (
                [],
                {"mouth_open": [], "mouth_shape": [], "expression": [], "head_pose": [], "identity": []},
            )
            for _ in range(self.batch_size):
                identity = int(rng.integers(self.num_identities))
                size = int(rng.choice(RENDER_SIZES))
                if (identity, size) not in renderers:
                    renderers[(identity, size)] = FaceRenderer(sample_identity(identity), size)
                state = random_state(rng)
                frame = renderers[(identity, size)](state)
                frame = cv2.resize(frame, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
                frames.append(degrade(frame, rng))
                targets["mouth_open"].append(state.mouth_open)
                targets["mouth_shape"].append(state.mouth_shape)
                targets["expression"].append(state.expression)
                targets["head_pose"].append(
                    [getattr(state, n) / s for n, s in zip(HEAD_POSE_NAMES, HEAD_POSE_SCALE, strict=True)]
                )
                targets["identity"].append(identity)
            images = prepare_frames(np.stack(frames), self.image_size)
            yield images, {k: torch.tensor(np.array(v)) for k, v in targets.items()}


# ---------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------
def cosface_logits(embedding: torch.Tensor, class_weights: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Scaled cosine logits with the margin subtracted at the true class. embedding (b, e) unit-norm."""
    cosine = embedding @ F.normalize(class_weights, dim=-1).T  # (b, num_identities)
    return COSFACE_SCALE * (cosine - COSFACE_MARGIN * F.one_hot(labels, cosine.shape[1]))


def analyzer_losses(out, targets: dict[str, torch.Tensor], class_weights: torch.Tensor) -> dict[str, torch.Tensor]:
    expression = targets["expression"].float()
    return {
        "mouth_open": F.mse_loss(out.mouth_open, targets["mouth_open"].float()),
        "mouth_shape": F.mse_loss(out.mouth_shape, targets["mouth_shape"].float()),
        "expression": -(expression * out.expression_logits.log_softmax(-1)).sum(-1).mean(),  # soft-label CE
        "head_pose": F.mse_loss(out.head_pose, targets["head_pose"].float()),
        "identity": F.cross_entropy(
            cosface_logits(out.identity, class_weights, targets["identity"]), targets["identity"]
        ),
    }


# ---------------------------------------------------------------------------------------------------------------
# Held-out evaluation
# ---------------------------------------------------------------------------------------------------------------
def r_squared(predicted: np.ndarray, target: np.ndarray) -> float:
    return float(1 - np.sum((predicted - target) ** 2) / np.sum((target - target.mean()) ** 2))


def identity_pairs(
    model: FaceAnalyzer, first_seed: int, num_identities: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of same-person and different-person frame pairs (each (num_identities,)).

    Each person is rendered twice with independent random states (expression, mouth, pose, blink)."""
    rng = np.random.default_rng([seed, 0x1DE])
    frames = []
    for seed_i in range(first_seed, first_seed + num_identities):
        renderer = FaceRenderer(sample_identity(seed_i), int(rng.choice(RENDER_SIZES)))
        frames.extend(cv2.resize(renderer(random_state(rng)), (128, 128)) for _ in range(2))
    embeddings = analyze_frames(model, np.stack(frames))["identity"]
    first, second = embeddings[0::2], embeddings[1::2]
    same = np.sum(first * second, axis=1)
    different = np.sum(first * np.roll(second, 1, axis=0), axis=1)
    return same, different


def best_threshold(same: np.ndarray, different: np.ndarray) -> float:
    candidates = np.sort(np.concatenate([same, different]))
    accuracies = [(np.sum(same >= t) + np.sum(different < t)) / (len(same) + len(different)) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def verification_accuracy(same: np.ndarray, different: np.ndarray, threshold: float) -> float:
    return float((np.sum(same >= threshold) + np.sum(different < threshold)) / (len(same) + len(different)))


def evaluate_analyzer(
    model: FaceAnalyzer, num_videos: int = 24, num_frames: int = 150, num_pairs: int = 300, seed: int = 1
) -> dict:
    """Held-out numbers: identities from HELD_OUT_SEEDS only; the threshold comes from training identities."""
    model.eval()
    open_pred, open_true, shape_pred, shape_true, pose_pred, pose_true = [], [], [], [], [], []
    expr_pred, expr_true, settled = [], [], []
    for i in range(num_videos):
        sample = make_sample(HELD_OUT_SEED_START + 500_000 + i, seed * 1000 + i, num_frames)
        readings = analyze_frames(model, sample.frames)
        labels = sample.labels
        open_pred.append(readings["mouth_open"])
        open_true.append(np.array(labels["mouth_open"]))
        shape_pred.append(readings["mouth_shape"])
        shape_true.append(np.array(labels["mouth_shape"]))
        pose_pred.append(readings["head_pose"])
        pose_true.append(np.stack([labels["head_pose"][n] for n in HEAD_POSE_NAMES], 1))
        expr_pred.append(readings["expression"])
        expr_true.append(np.array(labels["emotion"]))
        boundary = np.zeros(num_frames, dtype=bool)
        for segment in labels["segments"][1:]:
            boundary[max(0, segment["start_frame"] - 3) : segment["start_frame"] + 3] = True
        settled.append(~boundary)
    open_pred, open_true = np.concatenate(open_pred), np.concatenate(open_true)
    expr_pred, expr_true, settled = np.concatenate(expr_pred), np.concatenate(expr_true), np.concatenate(settled)
    pose_pred, pose_true = np.concatenate(pose_pred), np.concatenate(pose_true)

    train_same, train_different = identity_pairs(model, 0, num_pairs, seed)
    threshold = best_threshold(train_same, train_different)
    same, different = identity_pairs(model, HELD_OUT_SEED_START, num_pairs, seed)
    return {
        "held_out_frames": int(open_true.shape[0]),
        "mouth_open_r2": r_squared(open_pred, open_true),
        "mouth_shape_r2": r_squared(np.concatenate(shape_pred), np.concatenate(shape_true)),
        "head_pose_r2": {n: r_squared(pose_pred[:, k], pose_true[:, k]) for k, n in enumerate(HEAD_POSE_NAMES)},
        "expression_accuracy": float(np.mean(expr_pred == expr_true)),
        "expression_accuracy_settled": float(np.mean(expr_pred[settled] == expr_true[settled])),
        "verification_threshold": threshold,
        "verification_accuracy": verification_accuracy(same, different, threshold),
        "verification_pairs": int(2 * num_pairs),
        "similarity_same_mean": float(same.mean()),
        "similarity_different_mean": float(different.mean()),
    }


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------
def train_analyzer(
    output_dir: str | Path,
    steps: int = 3000,
    batch_size: int = 64,
    num_identities: int = 1500,
    learning_rate: float = 2e-3,
    seed: int = 0,
    threads: int = 1,
    log_every: int = 50,
    evaluate: bool = True,
) -> dict:
    """Train from scratch, save to ``output_dir`` and return the held-out report (also saved as report.json)."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    started = time.time()
    config = AnalyzerConfig()
    model = FaceAnalyzer(config)
    class_weights = torch.nn.Parameter(torch.randn(num_identities, config.embedding_dim) * 0.01)
    optimizer = torch.optim.AdamW([*model.parameters(), class_weights], lr=learning_rate, weight_decay=1e-4)
    warmup_steps = max(1, steps // 20)  # the first 5 % of the run
    stream = RenderedFrames(num_identities, batch_size, config.image_size, seed)
    # One worker renders the next batch while the main process trains on this one.
    loader = DataLoader(stream, batch_size=None, num_workers=1, prefetch_factor=4)

    model.train()
    running: dict[str, float] = {}
    for step, (images, targets) in enumerate(loader, start=1):
        set_learning_rate(optimizer, learning_rate * cosine_share(step - 1, steps, warmup_steps))
        out = model(images)
        losses = analyzer_losses(out, targets, class_weights)
        loss = sum(LOSS_WEIGHTS[k] * v for k, v in losses.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + v.item() / log_every
        if step % log_every == 0:
            print(
                f"step {step}/{steps} ({time.time() - started:.0f}s) "
                + " ".join(f"{k}={v:.4f}" for k, v in running.items()),
                flush=True,
            )
            running = {}
        if step >= steps:
            break
    save_analyzer(model, output_dir)
    report = {
        "steps": steps,
        "batch_size": batch_size,
        "frames_seen": steps * batch_size,
        "training_identities": num_identities,
        "train_seconds": round(time.time() - started, 1),
    }
    if evaluate:
        report.update(evaluate_analyzer(model))
    write_report(Path(output_dir), report)
    return report
