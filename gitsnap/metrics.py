"""Metrics and params: read from files (JSON / YAML, as DVC writes them) or ``key=value``.

Nested mappings are flattened to dotted keys (``{"eval": {"acc": 0.9}}`` ->
``eval.acc``) so that every value is a scalar a diff can compare.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gitsnap.errors import PathError, UsageError

Scalar = float | int | str | bool | None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    flat: dict[str, Scalar] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    flat.update(flatten(item, f"{name}.{i}."))
                else:
                    flat[f"{name}.{i}"] = _scalar(item)
        else:
            flat[name] = _scalar(value)
    return flat


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, (bool, int, str)):
        return value  # type: ignore[no-any-return]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def read_file(path: Path) -> dict[str, Scalar]:
    """A JSON or YAML file holding a mapping (nested allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PathError(f"{path}: no such metrics/params file", hint="check the path") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as exc:
        raise PathError(f"{path}: cannot parse ({exc})", hint="give a JSON or YAML mapping") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        raise PathError(f"{path}: cannot parse ({exc})", hint="give a JSON or YAML mapping") from None
    if not isinstance(data, Mapping):
        raise PathError(f"{path}: expected a mapping of names to values", hint="e.g. {\"acc\": 0.91}")
    return flatten(data)


def parse_value(text: str) -> Scalar:
    """``3e-4`` -> 0.0003, ``10`` -> 10, ``true`` -> True, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "~"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def parse_pairs(pairs: Iterable[str]) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"expected key=value, got {pair!r}", hint="e.g. -M acc=0.91")
        out[key.strip()] = parse_value(value)
    return out
