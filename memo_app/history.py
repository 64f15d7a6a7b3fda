"""The History panel: this browser tab's earlier results, each with a thumbnail, its settings and its files.

A finished (or cancelled) run is kept by ``keep_run``: its files are renamed to say what they hold
(``astronaut_happy_seed42.mp4``, ``astronaut_happy_seed42-crop.mp4``, ``astronaut_happy_seed42.json``; a preview ends
in ``_preview``) inside the run's own folder, and the settings file is rewritten with file names only, so no path on
the server leaves the app ("Load settings" finds the app's own example files by name). The history is a ``gr.State``
of ``SavedRun``s per tab, newest first; clicking a thumbnail offers that run's files for download.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from memo_app.display import DISPLAY_SIDE, count, enlarged

NAMED_EMOTIONS = 2  # a file name lists at most this many emotions; a run with more is "mixed"
# An absolute path inside a longer text (a warning): "/srv/app/outputs/x.mp4" → "x.mp4".
NO_HISTORY = "Nothing generated in this tab yet: each preview and video appears here."
EMBEDDED_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\"/]+/)+([^\s'\"/]+)")


@dataclass(frozen=True)
class SavedRun:
    """One run of the history: its files (None when it has none) and how it is shown."""

    name: str  # "astronaut_happy_seed42", the stem of its files
    video: str | None  # the mp4 the page played: the whole portrait with paste-back, else the crop
    crop_video: str | None  # the crop alone, beside a pasted-back video
    settings: str  # the settings JSON, file names only
    thumbnail: str | None  # a frame of the first clip, PNG
    caption: str  # "astronaut · happy · seed 42 · 10 steps · 5.0 s · 256×256"
    label: str  # under its thumbnail: "happy · seed 42"

    @property
    def files(self) -> list[str]:
        return [path for path in (self.video, self.crop_video, self.settings) if path]


def plain_name(text: str) -> str:
    """``text`` as a piece of a file name: letters, digits and dashes ("my photo (2)" → "my-photo-2")."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "portrait"


def emotion_words(segments) -> str:
    """The emotions a run used, in order of first use: "happy", "happy-sad"; "mixed" past ``NAMED_EMOTIONS``."""
    labels = list(dict.fromkeys(str(segment["label"]) for segment in segments))
    if not labels:
        return "neutral"
    return "-".join(labels) if len(labels) <= NAMED_EMOTIONS else "mixed"


def run_name(portrait: str | Path, emotions: str, seed: int, suffix: str = "") -> str:
    """ "astronaut_happy_seed42" (and "_preview" or another ``suffix``): what the files of a run are called."""
    return "_".join(part for part in (plain_name(Path(portrait).stem), emotions, f"seed{seed}", suffix) if part)


def file_names_only(value):
    """``value`` (a settings file's JSON) with every absolute path cut to its file name, also inside texts."""
    if isinstance(value, dict):
        return {key: file_names_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [file_names_only(item) for item in value]
    if isinstance(value, str):
        if Path(value).is_absolute():
            return Path(value).name
        return EMBEDDED_PATH.sub(lambda found: found.group(1), value)
    return value


def _renamed(path: Path | None, target: Path) -> str | None:
    """``path`` moved to ``target`` (same folder); None when there is no such file."""
    if path is None or not Path(path).is_file():
        return None
    if Path(path) != target:
        Path(path).replace(target)
    return str(target)


def keep_run(result, suffix: str, first_frame: np.ndarray | None) -> SavedRun:
    """A pipeline ``result`` as a run of the history: its files renamed after its portrait, emotions and seed, the
    settings rewritten with file names only, a thumbnail from ``first_frame`` (H, W, 3) uint8 when a clip finished."""
    settings_path = Path(result.settings_path)
    folder = settings_path.parent
    data = json.loads(settings_path.read_text(encoding="utf-8"))
    emotions = emotion_words(result.clip_emotions.segments)
    name = run_name(data["request"]["image"], emotions, result.seed, suffix)
    cut = "-partial" if result.cancelled else ""
    video = _renamed(result.video_path, folder / f"{name}{cut}.mp4") if result.num_frames else None
    crop_video = _renamed(result.crop_video_path, folder / f"{name}-crop{cut}.mp4") if result.num_frames else None
    data["video"], data["crop_video"] = video, crop_video
    data["request"]["output"] = str(folder / f"{name}.mp4")
    settings = folder / f"{name}{cut}.json"
    settings.write_text(json.dumps(file_names_only(data), indent=2), encoding="utf-8")
    if settings != settings_path:
        settings_path.unlink(missing_ok=True)
    thumbnail = None
    if first_frame is not None:
        thumbnail = str(folder / f"{name}.png")
        enlarged(Image.fromarray(first_frame), DISPLAY_SIDE // 2).save(thumbnail)
    width, height = result.resolution
    words = [Path(data["request"]["image"]).stem, emotions, f"seed {result.seed}", count(data["steps"], "step")]
    words += [f"{result.duration:.1f} s", f"{width}×{height}"]
    if suffix:
        words.append(suffix.replace("-", " "))
    if result.cancelled:
        words.append("cancelled")
    return SavedRun(name, video, crop_video, str(settings), thumbnail, " · ".join(words), " · ".join(words[1:3]))


class HistoryPanel:
    """The runs of this tab: a gallery of thumbnails and the files of the one picked."""

    def remember(self, run: SavedRun | None, history: list[SavedRun] | None) -> tuple:
        """Add the run just finished, newest first: (history, gallery, its files, what they are)."""
        history = list(history or [])
        if run is not None and run.video is not None and run.thumbnail is not None:
            history.insert(0, run)
        gallery = [(saved.thumbnail, saved.label) for saved in history]
        return history, gallery, *self._files(history, 0)

    def pick(self, history: list[SavedRun] | None, selected: gr.SelectData) -> tuple:
        """A click on a thumbnail offers that run's files: (files, what they are)."""
        return self._files(list(history or []), selected.index)

    def _files(self, history: list[SavedRun], index: int) -> tuple:
        if not 0 <= index < len(history):
            return None, NO_HISTORY
        run = history[index]
        crop = " the crop alone," if run.crop_video else ""
        return run.files, f"**{run.caption}** — the video,{crop} and its settings (load them to run it again)."
