"""Stable JSON for ``--json`` (documented in docs/json-output.md)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gitsnap.pointer import Entry, Pointer


def entry_dict(e: Entry) -> dict[str, Any]:
    d: dict[str, Any] = {"offset": e.offset, "size": e.size, "oid": e.oid}
    if e.name is not None:
        d = {"name": e.name, "dtype": e.dtype, "shape": list(e.shape or ()), **d, "stats": dict(e.stats)}
    else:
        d["role"] = e.role
    d.update(e.extra)
    return d


def pointer_dict(p: Pointer) -> dict[str, Any]:
    return {
        "id": p.id,
        "parent": p.parent,
        "path": p.path,
        "format": p.format,
        "size": p.size,
        "created": p.created,
        "message": p.message,
        "metrics": p.metrics,
        "params": p.params,
        "tool": p.tool,
        "metadata": p.metadata,
        "tensors": [entry_dict(e) for e in p.tensors],
        "blobs": [entry_dict(e) for e in p.blobs],
        **p.extra,
    }


def to_data(value: Any) -> Any:
    if isinstance(value, Pointer):
        return pointer_dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("clean",):
            if hasattr(type(value), name) and isinstance(getattr(type(value), name), property):
                out[name] = getattr(value, name)
        return out
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: to_data(v) for k, v in value.items()}
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_data(value), indent=2, sort_keys=False, allow_nan=False, default=str)
