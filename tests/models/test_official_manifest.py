"""The ``official`` preset, built on the meta device, has exactly the published state-dict names and shapes."""

import gzip
import json
from pathlib import Path

import pytest
import torch

from memo_model.models.presets import COMPONENT_CLASSES, build_component

# Names, shapes, sizes and configs of the five published state dicts (memoavatar/memo), read off the hub's files.
MANIFEST = Path(__file__).resolve().parents[1] / "fixtures" / "memo_official_state_dicts.json.gz"


@pytest.fixture(scope="module")
def manifest():
    return json.loads(gzip.decompress(MANIFEST.read_bytes()))


@pytest.mark.parametrize("component", list(COMPONENT_CLASSES))
def test_official_state_dict_matches_manifest(manifest, component):
    model = build_component("official", component, device="meta")
    ours = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    expected = manifest[component]["state_dict"]

    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    mismatched = sorted(name for name in expected if name in ours and ours[name] != expected[name])
    assert (missing, unexpected, mismatched) == ([], [], [])
    assert sum(torch.Size(shape).numel() for shape in ours.values()) == manifest[component]["numel"]
    assert len(ours) == manifest[component]["num_tensors"]


@pytest.mark.parametrize("component", list(COMPONENT_CLASSES))
def test_official_defaults_equal_published_config(manifest, component):
    """Every published config value we take as an argument is also our default (a bare config.json loads right)."""
    model = build_component("official", component, device="meta")
    published = manifest[component]["config"]
    ours = dict(model.config)
    for key, value in published.items():
        if key in ours:
            mine = ours[key]
            mine = list(mine) if isinstance(mine, tuple) else mine
            assert mine == value, key
