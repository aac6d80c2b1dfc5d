"""What a training loop logs, as the scalars a pointer records (metrics and params).

Frameworks hand over tensors, numpy scalars, ``argparse.Namespace``s,
enums and nested configs; a pointer holds dotted names -> scalars within
:mod:`gitsnap.pointer.limits`. Anything else is recorded by its ``str()``,
cut to :data:`MAX_TEXT` characters: a param is for reading in a review,
not for rebuilding the object.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from typing import Any

from gitsnap.metrics import Scalar, flatten

MAX_TEXT = 1000


def scalar(value: Any) -> Scalar | None:
    """A number, string, bool or None from ``value``; None for what is no single value.

    Subclasses come back as the plain type (a numpy ``float64`` is a float, a
    ``str`` enum its value): the pointer's YAML holds plain scalars only.
    """
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, str):
        return _cut(str.__str__(value))
    item = getattr(value, "item", None)  # a one-element tensor, a numpy scalar
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", None)
    if callable(item) and size == 1:
        got = item()
        return scalar(got) if isinstance(got, (bool, int, float)) else None
    return None


def numbers(values: Mapping[str, Any]) -> dict[str, Scalar]:
    """The entries of ``values`` that are single numbers (logged metrics), by name."""
    out: dict[str, Scalar] = {}
    for name, value in values.items():
        got = scalar(value)
        number = isinstance(got, (int, float)) and not isinstance(got, bool)
        if number or got in {"nan", "inf", "-inf"}:  # non-finite floats come back as text
            out[str(name)] = got
    return out


def params(values: Mapping[str, Any], source: str) -> dict[str, Scalar]:
    """A run's configuration as dotted names -> scalars (``flatten``'s bounds apply)."""
    return flatten(_plain(values), source=source)


def _plain(value: Any, depth: int = 0) -> Any:
    """Mappings, Namespaces and sequences opened up; anything else as a scalar or its text."""
    if depth > 16:
        return _cut(repr(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if hasattr(value, "__dict__") and type(value).__name__ == "Namespace":
        return {str(k): _plain(v, depth + 1) for k, v in vars(value).items()}
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        return [_plain(v, depth + 1) for v in _first(value)]
    got = scalar(value)
    if got is not None or value is None:
        return got
    return _cut(str(value))


def _first(items: Iterable[Any], limit: int = 100) -> list[Any]:
    out = []
    for i, item in enumerate(items):
        if i >= limit:
            break
        out.append(item)
    return out


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
