"""Step 5 of the data pipeline (paper appendix F): the manual review of lip-sync and overall quality.

Every written clip gets a line in a review list (CSV, one row per clip, ordered from the least to the most sure
lip-sync so a reviewer who checks only a subset, as the paper's authors did, sees the doubtful clips first). A person
watches clips and writes ``0`` / ``no`` in the ``keep`` column of those to drop (empty or ``1`` / ``yes`` keeps).

The decisions are applied either to a written dataset (``apply_review``: rows marked no leave ``metadata.jsonl``
and are listed in ``review_dropped.jsonl``; files stay, so a decision can be undone) or, on a later run, as a step
(``ReviewFilter``: clips marked no are not written again). Clip ids are stable across runs for that reason.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from memo_model.data.preprocess.clip import Clip, reject
from memo_model.errors import InputError

REVIEW_FILE = "review.csv"
DROPPED_FILE = "review_dropped.jsonl"
FIXED_COLUMNS = ("id", "video", "source", "start_seconds", "end_seconds")
SCORE_COLUMNS = ("lip_sync_confidence", "lip_sync_offset", "sharpness", "brightness", "contrast", "face_side", "iqa")
DECISION_COLUMNS = ("keep", "note")
COLUMNS = (*FIXED_COLUMNS, *SCORE_COLUMNS, *DECISION_COLUMNS)
KEEP_WORDS = {"", "1", "yes", "y", "true", "keep"}
DROP_WORDS = {"0", "no", "n", "false", "drop"}


def review_row(row: dict) -> dict:
    """The review-list line of a metadata row: where to find the clip, its scores, an empty decision."""
    scores = row.get("scores", {})
    source = row.get("source") or {}
    fps = row["fps"]
    return {
        "id": row["id"],
        "video": row["video"],
        "source": source.get("path", ""),
        "start_seconds": round(source.get("start_frame", 0) / fps, 3),
        "end_seconds": round(source.get("end_frame", row["num_frames"]) / fps, 3),
        **{name: _short(scores.get(name)) for name in SCORE_COLUMNS},
        "keep": "",
        "note": "",
    }


def _short(value: float | None) -> str | float:
    return "" if value is None else round(float(value), 3)


def write_review_list(path: str | Path, rows: list[dict], previous: str | Path | None = None) -> Path:
    """Write the review CSV for metadata ``rows``, least sure lip-sync first; keep/note carried over from
    ``previous`` (an earlier, possibly edited, list) for clips it already had."""
    path = Path(path)
    earlier = {}
    if previous is not None:
        with open(previous, newline="") as file:
            earlier = {line["id"]: line for line in csv.DictReader(file)}
    lines = [review_row(r) for r in rows]
    for line in lines:
        for column in DECISION_COLUMNS:
            line[column] = earlier.get(line["id"], {}).get(column, "")
    lines.sort(key=lambda line: (line["lip_sync_confidence"] == "", line["lip_sync_confidence"] or 0.0))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
    return path


def read_decisions(path: str | Path) -> dict[str, bool]:
    """{clip id: keep?} from an edited review list; raises InputError on a decision it cannot read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No review list at {str(path)!r} — write one with `preprocess review-list` first.")
    decisions = {}
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if not reader.fieldnames or "id" not in reader.fieldnames or "keep" not in reader.fieldnames:
            raise InputError(f"{path.name} needs the columns 'id' and 'keep'; found {reader.fieldnames}.")
        for line_number, line in enumerate(reader, start=2):
            word = (line["keep"] or "").strip().lower()
            if word not in KEEP_WORDS | DROP_WORDS:
                raise InputError(f"{path.name}, line {line_number}: keep={line['keep']!r} — write 1/yes or 0/no.")
            decisions[line["id"]] = word in KEEP_WORDS
    return decisions


def apply_review(dataset: str | Path, review: str | Path) -> tuple[int, int]:
    """Drop the rows marked no from ``dataset``/metadata.jsonl (kept in review_dropped.jsonl); (kept, dropped)."""
    from memo_model.data.preprocess.writer import METADATA_FILE

    dataset = Path(dataset)
    decisions = read_decisions(review)
    rows = [json.loads(line) for line in (dataset / METADATA_FILE).read_text().splitlines() if line.strip()]
    kept = [r for r in rows if decisions.get(r["id"], True)]
    dropped = [r for r in rows if not decisions.get(r["id"], True)]
    (dataset / METADATA_FILE).write_text("".join(json.dumps(r) + "\n" for r in kept))
    with open(dataset / DROPPED_FILE, "a") as file:
        file.writelines(json.dumps(r) + "\n" for r in dropped)
    return len(kept), len(dropped)


class ReviewFilter:
    """Step: drop clips a reviewer marked no in an earlier run's review list (clips not listed pass)."""

    name = "review"

    def __init__(self, decisions: dict[str, bool]):
        self.decisions = decisions

    def __call__(self, clip: Clip) -> Clip | None:
        if not self.decisions.get(clip.id, True):
            return reject(clip, self.name, "marked 'keep = no' in the review list")
        return clip
