"""The README's "Layout" block lists every module of the package and the app, and only paths that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTED_NAME = re.compile(r"\w+\.py|\w+/")  # a file or sub-folder named on a folder's line; other words describe


def layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n+```\n(.*?)^```", readme, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no '## Layout' section with a code block"
    return match.group(1).splitlines()


def listed_paths() -> set[str]:
    """Each line's leading path, plus, when it is a folder, the names on its line and its indented continuations."""
    paths: set[str] = set()
    folder = None
    for line in layout_block():
        if not line.strip():
            continue
        words = line.split()
        if not line[0].isspace():
            head, words = words[0], words[1:]
            paths.add(head)
            folder = head if head.endswith("/") else None
        if folder is not None:
            paths.update(folder + word for word in words if LISTED_NAME.fullmatch(word))
    return paths


def test_every_listed_path_exists():
    missing = sorted(path for path in listed_paths() if not (ROOT / path).exists())
    assert not missing, f"README.md's Layout lists paths that do not exist: {missing}"


def test_every_module_is_listed():
    modules = {
        path.relative_to(ROOT).as_posix()
        for package in ("memo_model", "memo_app")
        for path in (ROOT / package).rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and "__pycache__" not in path.parts
    }
    unlisted = sorted(modules - listed_paths())
    assert not unlisted, f"README.md's Layout does not list: {unlisted}"
