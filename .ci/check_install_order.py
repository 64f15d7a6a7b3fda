"""CI check: every documented install order keeps the pinned torch (no CUDA build swapped in by a dependency).

Resolves without installing (``pip install --dry-run --report``) in the environment ``.ci/run`` built from
requirements.txt, for the two orders the README gives: requirements-official.txt afterwards, and both files in one
command. Fails when a resolution would install a torch other than requirements.txt's pin.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDERS = {
    "official extras after requirements.txt": ["-r", "requirements-official.txt"],
    "both files in one command": ["-r", "requirements.txt", "-r", "requirements-official.txt"],
}


def pinned_torch() -> str:
    match = re.search(r"^torch==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    if match is None:
        sys.exit("requirements.txt does not pin torch with ==")
    return match.group(1)


def resolved(arguments: list[str]) -> dict[str, str]:
    """Package name -> version pip would install for ``arguments``, without installing anything."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report)]
        subprocess.run(command + arguments, cwd=ROOT, check=True)
        install = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in install}


def main() -> int:
    pin = pinned_torch()
    failures = []
    for order, arguments in ORDERS.items():
        plan = resolved(arguments)
        torch = plan.get("torch")
        state = "kept" if torch is None else f"would install torch {torch}"
        print(f"{order}: {len(plan)} packages to install; torch {pin} {state}")
        if torch is not None and torch.split("+")[0] != pin:
            failures.append(f"{order}: torch {torch} would replace the pinned {pin}")
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
