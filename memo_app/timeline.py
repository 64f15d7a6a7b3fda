"""The emotion timeline: the waveform with one coloured band per segment and the frame-level probabilities.

Pure drawing (matplotlib, Agg backend, no GUI): data in, PNG out. The top panel is the waveform with the segments
actually used (a hatched band marks a segment a person overrode, labelled "detected → used"); the bottom panel is
the detector's probability per emotion over time.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402

from memo_model.audio.emotion import EMOTION_LABELS  # noqa: E402

EMOTION_COLOURS = {
    "angry": "#d62728",
    "disgusted": "#8c564b",
    "fearful": "#9467bd",
    "happy": "#f2b701",
    "neutral": "#7f7f7f",
    "other": "#17becf",
    "sad": "#1f77b4",
    "surprised": "#ff7f0e",
    "unknown": "#c7c7c7",
}
WAVEFORM_POINTS = 2000  # the waveform is drawn as a min/max envelope of this many columns


def _envelope(waveform: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """(points,) lower and upper envelope of a long waveform, so drawing cost does not grow with its length."""
    usable = len(waveform) // points * points
    if usable == 0:
        return waveform, waveform
    columns = waveform[:usable].reshape(points, -1)
    return columns.min(axis=1), columns.max(axis=1)


def draw_timeline(
    path: str | Path,
    waveform: np.ndarray,
    sample_rate: int,
    segments: list[dict],
    probabilities: np.ndarray | None = None,
    fps: float = 30.0,
    title: str = "",
) -> Path:
    """Draw the timeline into ``path`` (PNG) and return it.

    waveform: (n,) mono float. segments: dicts with start, end, label (used), detected, confidence (of the
    detected label; None without a detector). probabilities: (T, K) per video frame, or None without a detector.
    """
    duration = len(waveform) / sample_rate
    end = max([duration] + [s["end"] for s in segments])
    rows = 2 if probabilities is not None else 1
    figure, axes = plt.subplots(
        rows,
        1,
        figsize=(10, 3.6 if rows == 2 else 2.2),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [1.2, 1][:rows]},
    )
    wave_axis = axes[0, 0]
    low, high = _envelope(np.asarray(waveform, dtype=np.float32), WAVEFORM_POINTS)
    times = np.linspace(0, duration, len(low))
    peak = max(float(np.abs(waveform).max()), 1e-6)
    for segment in segments:
        label, detected = segment["label"], segment.get("detected")
        overridden = detected is not None and detected != label
        wave_axis.axvspan(
            segment["start"],
            segment["end"],
            color=EMOTION_COLOURS.get(label, "#cccccc"),
            alpha=0.35,
            lw=0,
            hatch="//" if overridden else None,
        )
        confidence = segment.get("confidence")
        text = f"{detected} → {label}" if overridden else label
        if confidence is not None and not overridden:
            text += f" {confidence:.0%}"
        wave_axis.text(
            (segment["start"] + segment["end"]) / 2,
            0.92 * peak,
            text,
            ha="center",
            va="top",
            fontsize=8,
            clip_on=True,
        )
        wave_axis.axvline(segment["start"], color="black", lw=0.5, alpha=0.4)
    wave_axis.fill_between(times, low, high, color="#222222", lw=0.3)
    wave_axis.set_ylim(-1.05 * peak, 1.05 * peak)
    wave_axis.set_yticks([])
    wave_axis.set_xlim(0, end)
    if title:
        wave_axis.set_title(title, fontsize=9, loc="left")
    if probabilities is not None:
        prob_axis = axes[1, 0]
        frame_times = np.arange(len(probabilities)) / fps
        for index, name in enumerate(EMOTION_LABELS):
            if probabilities[:, index].max() >= 0.05:  # leave out emotions the detector never considered
                prob_axis.plot(frame_times, probabilities[:, index], color=EMOTION_COLOURS[name], lw=1.2, label=name)
        prob_axis.set_ylim(0, 1)
        prob_axis.set_ylabel("probability", fontsize=8)
        prob_axis.legend(fontsize=7, ncol=5, loc="upper right", framealpha=0.7)
    axes[-1, 0].set_xlabel("seconds", fontsize=8)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
