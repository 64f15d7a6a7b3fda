"""Imports point down: training and the weight tools stand on the networks, never on the inference stack; the data
and the pure metrics stand below the evaluation.

Layers, lowest first: the networks (models/) and data/ → training/ → tiny/ (MEMO-Tiny's own parts, trained with
training/'s loop pieces on data/'s synthetic world) → the inference stack (pipelines/, loading.py) and its users.
Each import runs in a fresh interpreter, so modules other tests already loaded do not hide a wrong import.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def memo_modules_loaded_by(module: str) -> set[str]:
    """The ``memo_model`` modules that ``import module`` loads in a new Python process."""
    code = f"import json, sys, {module}; print(json.dumps([m for m in sys.modules if m.startswith('memo_model')]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(result.stdout))


# What an unconditional pass drops is defined once, for inference and training alike: the one module of the
# inference stack that training reads (it imports only torch and the emotion labels).
SHARED_WITH_TRAINING = {"memo_model.pipelines", "memo_model.pipelines.conditions"}


@pytest.mark.parametrize("module", ["memo_model.training.train", "memo_model.weights"])
def test_training_and_weights_do_not_import_the_pipelines(module):
    loaded = memo_modules_loaded_by(module) - SHARED_WITH_TRAINING
    assert sorted(m for m in loaded if m.startswith("memo_model.pipelines")) == []


def test_weights_import_only_the_networks():
    added = memo_modules_loaded_by("memo_model.weights") - memo_modules_loaded_by("memo_model")
    assert added and all(m == "memo_model.weights" or m.startswith("memo_model.models") for m in added), added


@pytest.mark.parametrize("module", ["memo_model.tiny.vae", "memo_model.tiny.emotion_head", "memo_model.tiny.analyzer"])
def test_tiny_stands_on_training_and_data_not_on_the_inference_stack(module):
    above = ("memo_model.pipelines", "memo_model.loading", "memo_model.evaluation")
    assert sorted(m for m in memo_modules_loaded_by(module) if m.startswith(above)) == []


@pytest.mark.parametrize("module", ["memo_model.training.train", "memo_model.data.synthetic.sample"])
def test_training_and_data_do_not_import_tiny(module):
    assert sorted(m for m in memo_modules_loaded_by(module) if m.startswith("memo_model.tiny")) == []


def imports_in(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function (lazy imports count: they run too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("memo_model/data", "memo_model.evaluation"),  # the data and its filters are measured by the evaluation
        ("memo_model/data", "memo_model.tiny"),  # MEMO-Tiny's trainers stand on the synthetic world, not under it
        ("memo_model/metrics.py", "memo_model"),  # pure functions of arrays, below everything
    ],
)
def test_lower_layers_do_not_import_upper_ones(lower, upper):
    files = [ROOT / lower] if lower.endswith(".py") else sorted((ROOT / lower).rglob("*.py"))
    wrong = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module in imports_in(path)
        if module == upper or module.startswith(upper + ".")
    }
    assert not wrong, sorted(wrong)
