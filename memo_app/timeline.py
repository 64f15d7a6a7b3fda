"""The emotion timeline: which emotion each stretch of the speech gets, over its waveform and the detector's
probabilities.

Pure drawing (matplotlib, Agg backend, no GUI): data in, PNG out. Three rows share one time axis:

  1. the segments actually used, one coloured band each, labelled "used 62 %" (the detector's share of it) or
     "detected → used" with hatching where a person overrode it — labels live here, never over the waveform;
  2. the waveform, under the same colours;
  3. the detector's probability per emotion over time (without a detector, this row is left out), with headroom
     above 100 % so a certain detector's line stays visible, and its legend outside the plot.

The plot area sits at a fixed place in the image (``PLOT_LEFT`` to ``PLOT_RIGHT`` of its width), so a click on the
picture maps back to a time (``seconds_at``).
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
WIDTH_INCHES, DPI = 10.0, 110  # 1100 px: wider than the page shows it, so the browser only ever scales it down
PIXEL_WIDTH = round(WIDTH_INCHES * DPI)
PLOT_LEFT, PLOT_RIGHT = 0.07, 0.86  # the time axis, as fractions of the image width; the legend sits to the right
ROW_INCHES = {"segments": 0.5, "waveform": 1.0, "probabilities": 1.5}
MARGIN_INCHES = {"top": 0.08, "bottom": 0.5, "between": 0.08}
HEADROOM = 1.12  # the probability axis reaches past 100 %
SHOWN_PROBABILITY = 0.05  # an emotion whose probability never reaches this is left off the plot
FONT_SIZE = 13  # large: the page shows the 1100 px picture at about 700 px, a phone at 360
CHARACTER_PIXELS = 11  # about the width of one label character at FONT_SIZE and DPI: longer labels are shortened


def seconds_at(x: float, duration: float, image_width: float = PIXEL_WIDTH) -> float | None:
    """The time under pixel column ``x`` of a timeline image ``image_width`` pixels wide, or None off the plot."""
    fraction = (x / image_width - PLOT_LEFT) / (PLOT_RIGHT - PLOT_LEFT)
    if not 0 <= fraction <= 1:
        return None
    return fraction * duration


def _envelope(waveform: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """(points,) lower and upper envelope of a long waveform, so drawing cost does not grow with its length."""
    usable = len(waveform) // points * points
    if usable == 0:
        return waveform, waveform
    columns = waveform[:usable].reshape(points, -1)
    return columns.min(axis=1), columns.max(axis=1)


def percent(probability: float) -> str:
    """A probability as a whole percentage that never claims more certainty than there is: "62 %", ">99 %",
    "<1 %" (the plot's labels and the segment table's top three alike)."""
    shown_value = round(probability * 100)
    if shown_value == 100 and probability < 1:
        return ">99 %"
    if shown_value == 0 and probability > 0:
        return "<1 %"
    return f"{shown_value} %"


def segment_label(segment: dict) -> str:
    """What a segment's band says: "sad 62 %" (used = detected, with the detector's share), "happy → sad" where a
    person overrode it, or the used label alone without a detector."""
    label, detected, confidence = segment["label"], segment.get("detected"), segment.get("confidence")
    if detected is not None and detected != label:
        return f"{detected} → {label}"
    if confidence is None:
        return label
    return f"{label} {percent(confidence)}"


def _label_that_fits(segment: dict, pixels: float) -> str:
    for text in (segment_label(segment), segment["label"]):
        if len(text) * CHARACTER_PIXELS <= pixels:
            return text
    return ""


def draw_timeline(
    path: str | Path,
    waveform: np.ndarray,
    sample_rate: int,
    segments: list[dict],
    probabilities: np.ndarray | None = None,
    fps: float = 30.0,
) -> Path:
    """Draw the timeline into ``path`` (PNG) and return it.

    waveform: (n,) mono float. segments: dicts with start, end, label (used), detected, confidence (of the
    detected label; None without a detector). probabilities: (T, K) per video frame, or None without a detector.
    """
    duration = len(waveform) / sample_rate
    rows = ["segments", "waveform"] + (["probabilities"] if probabilities is not None else [])
    heights = [ROW_INCHES[row] for row in rows]
    height = sum(heights) + MARGIN_INCHES["top"] + MARGIN_INCHES["bottom"] + MARGIN_INCHES["between"] * (len(rows) - 1)
    figure, axes = plt.subplots(
        len(rows), 1, figsize=(WIDTH_INCHES, height), sharex=True, gridspec_kw={"height_ratios": heights}
    )
    figure.subplots_adjust(
        left=PLOT_LEFT,
        right=PLOT_RIGHT,
        top=1 - MARGIN_INCHES["top"] / height,
        bottom=MARGIN_INCHES["bottom"] / height,
        hspace=MARGIN_INCHES["between"] / (sum(heights) / len(rows)),
    )
    axis = dict(zip(rows, axes, strict=True))
    plot_pixels = PIXEL_WIDTH * (PLOT_RIGHT - PLOT_LEFT)

    # 1. the segments used, labelled in their own row
    strip = axis["segments"]
    for segment in segments:
        start, end, label = segment["start"], segment["end"], segment["label"]
        overridden = segment.get("detected") is not None and segment["detected"] != label
        colour = EMOTION_COLOURS.get(label, "#cccccc")
        strip.axvspan(start, end, color=colour, alpha=0.55, lw=0, hatch="//" if overridden else None)
        axis["waveform"].axvspan(start, end, color=colour, alpha=0.2, lw=0)
        for row in axes:
            row.axvline(start, color="black", lw=0.6, alpha=0.5)
        text = _label_that_fits(segment, (end - start) / max(duration, 1e-6) * plot_pixels)
        strip.text((start + end) / 2, 0.5, text, ha="center", va="center", fontsize=FONT_SIZE, clip_on=True)
    strip.set_ylim(0, 1)
    strip.set_yticks([])

    # 2. the waveform
    wave = axis["waveform"]
    low, high = _envelope(np.asarray(waveform, dtype=np.float32), WAVEFORM_POINTS)
    peak = max(float(np.abs(waveform).max()), 1e-6)
    wave.fill_between(np.linspace(0, duration, len(low)), low, high, color="#222222", lw=0.3)
    wave.set_ylim(-1.08 * peak, 1.08 * peak)
    wave.set_yticks([])

    # 3. the detector's probabilities
    if probabilities is not None:
        chart = axis["probabilities"]
        frame_times = np.arange(len(probabilities)) / fps
        for index, name in enumerate(EMOTION_LABELS):
            if probabilities[:, index].max() >= SHOWN_PROBABILITY:
                chart.plot(frame_times, probabilities[:, index], color=EMOTION_COLOURS[name], lw=1.6, label=name)
        chart.axhline(1.0, color="#999999", lw=0.6, ls=":")
        chart.set_ylim(0, HEADROOM)
        chart.set_yticks([0, 0.5, 1], ["0 %", "50 %", "100 %"], fontsize=FONT_SIZE - 1)
        chart.legend(
            title="detector",
            title_fontsize=FONT_SIZE - 1,
            fontsize=FONT_SIZE - 2,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.05),
            borderaxespad=0,
            frameon=False,
            handlelength=1.2,
            labelspacing=0.2,
        )

    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("seconds", fontsize=FONT_SIZE)
    axes[-1].tick_params(axis="x", labelsize=FONT_SIZE - 1)
    path = Path(path)
    figure.savefig(path, dpi=DPI)  # no bbox_inches="tight": the plot must stay where seconds_at expects it
    plt.close(figure)
    return path
