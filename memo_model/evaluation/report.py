"""Writing an evaluation (paper §5 measures, Table 2 memory ablation) as JSON and as a markdown table.

``evaluation.json`` is the full result of ``evaluate``; ``evaluation.md`` is the part a person reads: one table of
the headline measures, one row per memory mode for the ablation, identity over time, and the command that
reproduces it. A null value is printed as "n/a" with its reason.
"""

import json
import math
from pathlib import Path

JSON_NAME = "evaluation.json"
MARKDOWN_NAME = "evaluation.md"
MODE_NAMES = {"reference": "Reference image only", "recent": "Recent frames only", "full": "Full memory (MEMO)"}


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def _get(result: dict, path: str):
    """A value by dotted path; None when any step is missing."""
    value = result
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _cell(result: dict, path: str, digits: int = 3) -> str:
    value = _get(result, path)
    reason = result.get("null_reasons", {}).get(path)
    return f"n/a ({reason})" if value is None and reason else _number(value, digits)


def markdown_table(result: dict) -> str:
    """The evaluation as markdown: headline measures, the memory ablation, identity over time, the command."""
    model, config = result["model"], result["config"]
    lines = [
        f"# Evaluation of {model['name']}",
        "",
        f"{config['samples']} held-out take(s) of {config['seconds']:g} s, {config['steps']} denoising steps, "
        f"seed {config['seed']}, model resolution {model['resolution']} px (frames upsampled to the analyzer's "
        f"{result['analyzer_input']} px).",
        "",
        "| Measure | Value | Paper analogue |",
        "| --- | --- | --- |",
    ]
    rows = []
    if "lipsync" in result:
        rows += [
            ("Lip-sync r at offset 0 (mouth opening vs ground truth)", _cell(result, "lipsync.correlation"), "Sync"),
            ("Lip-sync best offset (frames, + = video lags)", _cell(result, "lipsync.best_offset"), "Sync-D"),
            ("Lip-sync best r", _cell(result, "lipsync.best_correlation"), "Sync"),
            ("Lip-sync confidence (best − median r)", _cell(result, "lipsync.confidence"), "Sync-C"),
        ]
    if "expression" in result:
        chance = _number(_get(result, "expression.chance"))
        rows += [
            ("Expression accuracy, detected emotions", _cell(result, "expression.detected.accuracy"), "E-FID"),
            ("Emotion detector accuracy vs ground truth", _cell(result, "expression.detected.detector_accuracy"), ""),
            ("Expression accuracy, ground-truth override", _cell(result, "expression.override.accuracy"), ""),
            (
                "Wrong override (control): vs requested / vs truth",
                f"{_cell(result, 'expression.wrong_override.accuracy_vs_requested')} / "
                f"{_cell(result, 'expression.wrong_override.accuracy_vs_ground_truth')}",
                f"chance {chance}",
            ),
            (
                "Expression ceilings: real renders / through the VAE / one label per clip",
                f"{_cell(result, 'expression.ceilings.real_renders')} / "
                f"{_cell(result, 'expression.ceilings.vae_round_trip')} / "
                f"{_cell(result, 'expression.ceilings.per_clip_labels')}",
                "",
            ),
        ]
    identity = result.get("identity", {})
    if "to_portrait" in identity:
        rows.append(
            (
                "Identity similarity to the portrait: generated / the take's real renders",
                f"{_cell(result, 'identity.to_portrait.generated')} / "
                f"{_cell(result, 'identity.to_portrait.real_renders')}",
                "CSIM",
            )
        )
    if "window_seconds" in identity:
        window, late = identity["window_seconds"], identity["long_seconds"]
        rows += [
            (f"Identity similarity, first {window:g} s", _cell(result, "identity.first_window"), "CSIM"),
            (f"Identity similarity, {late:g}–{late + window:g} s", _cell(result, "identity.after_long"), "CSIM"),
            ("Identity drift (first − late)", _cell(result, "identity.drift"), ""),
        ]
    if "frechet" in result:
        rows += [
            ("Fréchet distance, content features", _cell(result, "frechet.content", 2), "FID / FVD"),
            ("Fréchet distance, texture statistics", _cell(result, "frechet.texture", 3), "FID"),
        ]
    lines += [f"| {name} | {value} | {analogue} |" for name, value, analogue in rows]

    if "ablation" in result:
        late = config["long_seconds"]
        window = config["window_seconds"]
        lines += [
            "",
            f"## Memory ablation (paper Table 2): one {late + window:g} s video per mode",
            "",
            f"| Memory | Identity first {window:g} s | Identity {late:g}–{late + window:g} s | Drift | Mean identity "
            "| Lip-sync r | Best offset | Confidence |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for mode in result["ablation"]["order"]:
            base = f"ablation.modes.{mode}"
            lines.append(
                f"| {MODE_NAMES[mode]} | {_cell(result, base + '.identity.first_window')} "
                f"| {_cell(result, base + '.identity.after_long')} | {_cell(result, base + '.identity.drift')} "
                f"| {_cell(result, base + '.identity.mean')} | {_cell(result, base + '.lipsync.correlation')} "
                f"| {_cell(result, base + '.lipsync.best_offset')} | {_cell(result, base + '.lipsync.confidence')} |"
            )
        lines += ["", "Identity over time (mean similarity per window):", ""]
        modes = result["ablation"]["order"]
        lines += ["| Window (s) | " + " | ".join(MODE_NAMES[m] for m in modes) + " |"]
        lines += ["| --- |" + " --- |" * len(modes)]
        windows = result["ablation"]["modes"][modes[0]]["identity"]["by_window"]
        for index, window_row in enumerate(windows):
            values = [result["ablation"]["modes"][m]["identity"]["by_window"][index]["mean"] for m in modes]
            span = f"{window_row['start_s']:g}–{window_row['end_s']:g}"
            lines.append(f"| {span} | " + " | ".join(_number(v) for v in values) + " |")
        lines += ["", "Reproduce the ablation:", "", "```bash", result["ablation"]["command"], "```"]

    lines += ["", "Reproduce this evaluation:", "", "```bash", result["command"], "```"]
    if result.get("null_reasons"):
        lines += ["", "Not applicable:", ""]
        lines += [f"- `{path}`: {reason}" for path, reason in result["null_reasons"].items()]
    return "\n".join(lines) + "\n"


def write_report(result: dict, folder: str | Path) -> tuple[Path, Path]:
    """Write ``evaluation.json`` and ``evaluation.md`` into ``folder``; return both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = folder / JSON_NAME, folder / MARKDOWN_NAME
    # allow_nan=False: a NaN must surface here as an error, not as invalid JSON for a reader.
    json_path.write_text(json.dumps(result, indent=2, allow_nan=False))
    markdown_path.write_text(markdown_table(result))
    return json_path, markdown_path
