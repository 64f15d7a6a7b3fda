"""Pure metrics on arrays (mouth tracks, expression labels, identity embeddings, features), used by the data
filters (``data/preprocess/lipsync.py``), the synthetic world's ``synth score`` and the evaluation alike.

These are the synthetic analogues of the paper's measures:

- ``lip_sync``: Pearson correlation between the measured mouth opening and the audio-driven ground truth,
  searched over frame offsets — the best offset and a confidence (peak minus median over offsets) are the
  Sync-D / Sync-C analogues of SyncNet.
- ``expression_accuracy``: per-frame agreement of the read expression with the requested emotion labels.
- ``identity_similarity`` / ``identity_drift``: cosine similarity of per-frame identity embeddings to the
  reference image (the ArcFace CSIM analogue) and how it changes from the start to the end of a video.
- ``frechet_distance``: Fréchet distance between Gaussians fitted to analyzer features of two frame sets
  (the FID analogue).
"""

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_MAX_OFFSET = 15  # frames searched each way (0.5 s at 30 fps), as SyncNet's ±15-frame window


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays; 0 when either is constant."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denominator) if denominator > 0 else 0.0


@dataclass(frozen=True)
class LipSync:
    correlation: float  # at offset 0
    best_offset: int  # frames; positive = the video lags the audio
    best_correlation: float
    confidence: float  # best correlation minus the median over all offsets (Sync-C analogue)

    def to_dict(self) -> dict:
        return asdict(self)


def correlation_by_offset(measured: np.ndarray, reference: np.ndarray, max_offset: int) -> dict[int, float]:
    """Correlation of measured[t + k] with reference[t] for k in [-max_offset, max_offset]."""
    measured, reference = np.asarray(measured), np.asarray(reference)
    if measured.shape != reference.shape or measured.ndim != 1:
        raise ValueError(f"Tracks must be 1-D and equally long; got {measured.shape} and {reference.shape}.")
    result = {}
    for k in range(-max_offset, max_offset + 1):
        if k >= 0:
            a, b = measured[k:], reference[: len(reference) - k]
        else:
            a, b = measured[:k], reference[-k:]
        result[k] = pearson(a, b) if len(a) > 2 else 0.0
    return result


def lip_sync(measured: np.ndarray, reference: np.ndarray, max_offset: int = DEFAULT_MAX_OFFSET) -> LipSync:
    """Lip-sync of a measured mouth-opening track against the audio-driven one, both (f,)."""
    by_offset = correlation_by_offset(measured, reference, max_offset)
    best = max(by_offset, key=lambda k: (by_offset[k], -abs(k)))  # ties go to the smaller shift
    return LipSync(
        correlation=by_offset[0],
        best_offset=int(best),
        best_correlation=by_offset[best],
        confidence=float(by_offset[best] - np.median(list(by_offset.values()))),
    )


def frame_labels(segments: list[dict], num_frames: int) -> np.ndarray:
    """Per-frame emotion indices (f,) from segments [{"emotion", "start_frame", "end_frame"}]; -1 if uncovered."""
    labels = np.full(num_frames, -1, dtype=np.int64)
    for segment in segments:
        labels[segment["start_frame"] : min(segment["end_frame"], num_frames)] = segment["emotion"]
    return labels


def expression_accuracy(predicted: np.ndarray, requested: np.ndarray) -> float:
    """Share of frames whose read expression equals the requested label; frames labelled -1 are skipped."""
    predicted, requested = np.asarray(predicted), np.asarray(requested)
    keep = requested >= 0
    if not keep.any():
        raise ValueError("No frame has a requested emotion label; nothing to score.")
    return float(np.mean(predicted[keep] == requested[keep]))


def identity_similarity(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity of each frame embedding (f, e) to the reference embedding (e,). Shape (f,)."""
    embeddings = embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)
    reference = reference / np.linalg.norm(reference)
    return embeddings @ reference


def identity_drift(similarity: np.ndarray, window: int = 30) -> dict[str, float]:
    """Start vs end of a similarity track: mean over the first and last ``window`` frames and their difference."""
    window = max(1, min(window, len(similarity) // 2 or 1))
    start, end = float(np.mean(similarity[:window])), float(np.mean(similarity[-window:]))
    return {"mean": float(np.mean(similarity)), "start": start, "end": end, "drift": start - end}


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (n, d) and (m, d) feature sets."""
    if features_a.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"Feature sets must be (n, d) with equal d; got {features_a.shape} and {features_b.shape}.")
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a = np.atleast_2d(np.cov(features_a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(features_b, rowvar=False))
    # tr(sqrt(A B)) = sum of sqrt(eigenvalues of sqrt(A) B sqrt(A)); symmetric eigensolvers stay exact for the
    # singular covariances that dead ReLU features produce, where a general matrix square root breaks down.
    values, vectors = np.linalg.eigh(cov_a)
    sqrt_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a), 0, None)))
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    return float(max(distance, 0.0))
