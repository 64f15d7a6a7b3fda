"""How the app shows things: model-size images enlarged with visible pixels, finished clips as looping GIFs, and the
wording more than one panel uses (counts, lists of segments, the "Please check the input" message).
"""

import math
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

DISPLAY_SIDE = 256  # crop previews and clip GIFs are shown at least this large (MEMO-Tiny works at 16-64 px)


def input_error(error: Exception | str) -> gr.Error:
    """A message for a person who gave an input the app cannot use: shown as is, without a traceback."""
    return gr.Error(str(error), title="Please check the input", print_exception=False)


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "step")`` is "1 step", ``count(8, "step")`` "8 steps", ``count(2, "pass", "passes")`` "2 passes"."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def segment_list(segments: list[dict], label: str = "label", until: float = math.inf) -> str:
    """Segments as "happy 0.0-1.1 s, sad 1.1-2.1 s": their ``label`` (or "detected") and times, cut at ``until``
    seconds (a cancelled run's length): a segment that starts there or later is left out."""
    kept = [s for s in segments if s["start"] < until]
    return ", ".join(f"{s[label]} {s['start']:.1f}-{min(s['end'], until):.1f} s" for s in kept)


def enlarged(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """Small model-size images shown with visible pixels rather than blurred."""
    if image.width >= side:
        return image
    return image.resize((side, side * image.height // image.width), Image.Resampling.NEAREST)


def clip_gif(frames: np.ndarray, run_dir: Path, clip: int, fps: int) -> str:
    """One finished clip, (F, H, W, 3) uint8 frames, as a looping GIF in ``run_dir``; returns its path."""
    images = [enlarged(Image.fromarray(frame), DISPLAY_SIDE // 2) for frame in frames]
    path = run_dir / f"clip_{clip + 1:03d}.gif"
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return str(path)
