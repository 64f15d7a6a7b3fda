"""Imports point down: training and the weight tools stand on the networks, never on the inference stack.

Each import runs in a fresh interpreter, so modules other tests already loaded do not hide a wrong import.
"""

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


@pytest.mark.parametrize("module", ["memo_model.training.train", "memo_model.weights"])
def test_training_and_weights_do_not_import_the_pipelines(module):
    assert sorted(m for m in memo_modules_loaded_by(module) if m.startswith("memo_model.pipelines")) == []


def test_weights_import_only_the_networks():
    added = memo_modules_loaded_by("memo_model.weights") - memo_modules_loaded_by("memo_model")
    assert added and all(m == "memo_model.weights" or m.startswith("memo_model.models") for m in added), added
