"""Benchmark results files: one JSON per benchmark, ``{"benchmark": name, "runs": [...]}``, one run per setup.

A new run replaces the stored run of the same setup (same ``key``) and goes last, so a file keeps the latest
measurement of every setup that was ever measured.
"""

import json
from collections.abc import Callable
from pathlib import Path


def record_run(path: str | Path, benchmark: str, entry: dict, key: Callable[[dict], object]) -> None:
    """Add ``entry`` to the results file at ``path`` (created with its folder), dropping runs with its ``key``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(path.read_text()) if path.exists() else {"benchmark": benchmark, "runs": []}
    stored["runs"] = [run for run in stored["runs"] if key(run) != key(entry)] + [entry]
    path.write_text(json.dumps(stored, indent=2) + "\n")


def folder_name(folder: str | Path, root: Path) -> str:
    """A folder as results name it: relative to the repository ``root`` when inside it, else absolute."""
    folder = Path(folder).resolve()
    return str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)
