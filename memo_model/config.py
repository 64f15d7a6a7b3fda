"""Run configurations: typed dataclasses loaded from YAML, unknown keys refused.

Architecture lives with the weights (``config.json`` via ``register_to_config``); everything about a *run* — data,
stage, optimiser, schedule — is one of these dataclasses, so a typo in a YAML file is an error, not a silent
default.
"""

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from memo_model.errors import InputError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses; unknown keys raise InputError."""
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"Unknown key(s) in {where}: {', '.join(unknown)}. Known keys: {', '.join(sorted(known))}.")
    values = {}
    for name, value in data.items():
        kind = hints[name]
        nested = _dataclass_in(kind)
        if nested is not None and isinstance(value, dict):
            value = from_dict(nested, value, f"{where}.{name}")
        elif _origin_is_tuple(kind) and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def _dataclass_in(kind) -> type | None:
    if dataclasses.is_dataclass(kind):
        return kind
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return next((arg for arg in typing.get_args(kind) if dataclasses.is_dataclass(arg)), None)
    return None


def _origin_is_tuple(kind) -> bool:
    if typing.get_origin(kind) is tuple:
        return True
    return any(typing.get_origin(arg) is tuple for arg in typing.get_args(kind))


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML file into ``cls`` strictly."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Config file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path} is not valid YAML: {error}") from None
    return from_dict(cls, data, str(path))


def to_dict(config) -> dict[str, Any]:
    """The inverse of ``from_dict`` (tuples become lists, paths strings), for saving next to checkpoints."""

    def plain(value):
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}
