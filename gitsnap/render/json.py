"""Stable JSON for ``--json`` (documented in docs/json-output.md)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from gitsnap.pointer import Entry, FileEntry, Pointer


def entry_dict(e: Entry) -> dict[str, Any]:
    d: dict[str, Any] = {"offset": e.offset, "size": e.size, "oid": e.oid}
    if e.file is not None:  # the pointer v1 keys, only where a pointer has them
        d = {"file": e.file, **d}
    if e.name is not None:
        d = {"name": e.name, "dtype": e.dtype, "shape": list(e.shape or ()), **d}
        if e.view:
            d["view"] = True
        if e.stride is not None:
            d["stride"] = list(e.stride)
        d["stats"] = dict(e.stats)
    else:
        d["role"] = e.role
    d.update(e.extra)
    return d


def file_dict(f: FileEntry) -> dict[str, Any]:
    return {"path": f.path, "size": f.size, "format": f.format, **f.extra}


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
        **({"env": p.env} if p.env else {}),
        "metadata": p.metadata,
        "tensors": [entry_dict(e) for e in p.tensors],
        "blobs": [entry_dict(e) for e in p.blobs],
        **({"files": [file_dict(f) for f in p.files]} if p.files else {}),
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


# ---------------------------------------------------------------- review (docs/json-output.md)

DIFF_FORMAT_VERSION = 1


def _finite(v: Any) -> Any:
    """JSON has no NaN/Infinity: a non-finite number becomes null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _pick(obj: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """``{key: obj.key}`` in the order given, a non-finite number as null (the JSON keys are the
    attribute names)."""
    return {k: _finite(getattr(obj, k)) for k in keys}


_VALUE_KEYS = (
    "elements", "changed", "changed_fraction", "nonfinite", "l2_delta", "l2_before", "l2_after",
    "rel_change", "max_abs_delta", "cosine",
)  # fmt: skip
_GROUP_KEYS = ("name", "tensors", "tensors_changed", "params", "params_changed")
_GROUP_NORMS = ("l2_before", "l2_after", "norm_change", "change_bound", "rel_change", "movement")
_SUMMARY_COUNTS = ("tensors_before", "tensors_after", "tensors_changed")
_SUMMARY_SIZES = (
    "params_before", "params_after", "params_changed", "params_changed_fraction",
    "bytes_before", "bytes_after", "bytes_new", "bytes_new_fraction", "values_computed",
)  # fmt: skip


def _side_dict(s: Any) -> dict[str, Any] | None:
    if s is None:
        return None
    d = {
        "dtype": s.dtype,
        "shape": list(s.shape),
        "params": s.params,
        "size": s.size,
        "oid": s.oid,
        "stats": _finite_map(s.stats),
    }
    # The pointer v1 keys, only where the entry has them (folders, shared storages).
    if s.file is not None:
        d["file"] = s.file
    if s.view:
        d["view"] = True
    if s.stride is not None:
        d["stride"] = list(s.stride)
    return d


def _finite_map(m: Any) -> dict[str, Any]:
    values = m.values()
    if all(type(v) is int or (type(v) is float and v - v == 0) for v in values):
        return dict(m)  # the common case, without a call per value
    return {k: _finite(v) for k, v in m.items()}


def _values_dict(v: Any) -> dict[str, Any] | None:
    return None if v is None else _pick(v, _VALUE_KEYS)


def tensor_change_dict(c: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": c.name,
        "status": c.status,
        "old_name": c.old_name,
        "dtype_changed": c.dtype_changed,
        "before": _side_dict(c.before),
        "after": _side_dict(c.after),
        "norm_change": _finite(c.norm_change),
        "change_bound": _finite(c.change_bound),
        "values": _values_dict(c.values),
    }
    if c.file is not None:  # a name more than one file of the folder holds: ``name`` says which
        d = {"name": c.name, "file": c.file, "tensor": c.tensor, **d}
    return d


def metric_change_dict(m: Any) -> dict[str, Any]:
    return {
        "name": m.name,
        "status": m.status,
        "before": _finite(m.before),
        "after": _finite(m.after),
        "abs_change": _finite(m.abs_change),
        "rel_change": _finite(m.rel_change),
        "source_before": m.source_before,
        "source_after": m.source_after,
        "origin_before": m.origin_before,
        "origin_after": m.origin_after,
        "sources": {
            "before": {k: _finite(v) for k, v in m.sources_before.items()},
            "after": {k: _finite(v) for k, v in m.sources_after.items()},
        },
        "better": m.better,
        "verdict": m.verdict,
    }


def _group_dict(g: Any) -> dict[str, Any]:
    return {**_pick(g, _GROUP_KEYS), "counts": dict(g.counts), **_pick(g, _GROUP_NORMS)}


def _summary_dict(s: Any) -> dict[str, Any]:
    return {**_pick(s, _SUMMARY_COUNTS), "counts": dict(s.counts), **_pick(s, _SUMMARY_SIZES)}


def _state_dict(m: Any) -> dict[str, Any]:
    return {
        "name": m.name,
        "status": m.status,
        "before": _finite(m.before),
        "after": _finite(m.after),
        "change": _finite(m.abs_change),
    }


def _snapshot_dict(s: Any) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "snapshot": s.snapshot_id,
        "format": s.format,
        "size": s.size,
        "tensors": s.tensors,
        "message": s.message,
        "created": s.created,
        "unsaved": s.unsaved,
        **({"files": [file_dict(f) for f in s.files]} if s.files else {}),
    }


def _security_dict(f: Any) -> dict[str, Any]:
    from gitsnap.pickle_policy import security_line

    return {
        "path": f.path,
        "global": f.name,
        "kind": f.kind,
        "allowed": f.allowed,
        "message": security_line(f),
    }


def _side_label_dict(label: str, commit: str | None, path: str | None) -> dict[str, Any]:
    # "path" only when the two sides name different checkpoints (diff REV_A:PATH_A REV_B:PATH_B)
    return {"label": label, "commit": commit, **({"path": path} if path is not None else {})}


def _file_change_dict(f: Any) -> dict[str, Any]:
    return {
        "path": f.path,
        "status": f.status,
        "size_before": f.size_before,
        "size_after": f.size_after,
    }


def diff_dict(r: Any) -> dict[str, Any]:
    """The ``git snap diff --format json`` document (docs/json-output.md)."""
    return {
        "version": DIFF_FORMAT_VERSION,
        "before": _side_label_dict(r.before, r.before_commit, r.before_path),
        "after": _side_label_dict(r.after, r.after_commit, r.after_path),
        "values": r.values,
        "depth": r.depth,
        "changed": r.changed,
        "failed": r.failed,
        "checkpoints": [
            {
                "path": ck.path,
                "status": ck.status,
                "changed": ck.changed,
                "before": _snapshot_dict(ck.before),
                "after": _snapshot_dict(ck.after),
                "summary": _summary_dict(ck.summary),
                "metrics": [metric_change_dict(m) for m in ck.metrics],
                "params": [metric_change_dict(m) for m in ck.params],
                "security": [_security_dict(f) for f in ck.security],
                "env": [dataclasses.asdict(e) for e in ck.env],
                "training_state": [_state_dict(m) for m in ck.state_changes],
                "optimizer_summary": None if ck.optimizer is None else _summary_dict(ck.optimizer),
                "files": [_file_change_dict(f) for f in ck.files],
                "groups": [_group_dict(g) for g in ck.groups],
                "tensors": [tensor_change_dict(c) for c in ck.tensors],
            }
            for ck in r.checkpoints
        ],
        "gate": [
            {
                "condition": g.condition,
                "path": g.path,
                "name": g.name,
                "before": _finite(g.before),
                "after": _finite(g.after),
                "change": _finite(g.change),
                "evaluated": g.evaluated,
                "failed": g.failed,
                "message": g.message,
            }
            for g in r.gate
        ],
        "problems": [{"path": p.path, "message": p.message, "hint": p.hint} for p in r.problems],
    }


def metrics_show_dict(r: Any) -> dict[str, Any]:
    """``git snap metrics show --json``: each checkpoint's merged values, with their sources."""

    def items(changes: Any) -> dict[str, Any]:
        return {
            m.name: {
                "value": _finite(m.after),
                "source": m.source_after,
                "origin": m.origin_after,
                "sources": dict(m.sources_after),
            }
            for m in changes
        }

    return {
        "rev": r.rev,
        "commit": r.commit,
        "note": r.note,
        "checkpoints": [
            {
                "path": ck.path,
                "snapshot": ck.snapshot_id,
                "metrics": items(ck.metrics),
                "params": items(ck.params),
            }
            for ck in r.checkpoints
        ],
    }


COMPARE_FORMAT_VERSION = 1


def _compare_cell(m: Any) -> dict[str, Any]:
    """One metric of one column, against the first column (``MetricChange``, after side)."""
    return {
        "value": _finite(m.after) if m.sources_after else None,
        "source": m.source_after,
        "origin": m.origin_after,
        "sources": {k: _finite(v) for k, v in m.sources_after.items()},
        "abs_change": _finite(m.abs_change),
        "rel_change": _finite(m.rel_change),
        "verdict": m.verdict,
    }


def _compare_row(r: Any) -> dict[str, Any]:
    return {"name": r.name, "better": r.better, "columns": [_compare_cell(m) for m in r.cells]}


def _drift_dict(d: Any) -> dict[str, Any] | None:
    if d is None:
        return None
    keys = ("tensors_changed", "tensors", "params_changed", "params_changed_fraction")
    norms = ("bytes_new", "movement", "rel_change", "change_bound", "exact")
    return {
        **_pick(d, keys),
        **_pick(d, norms),
        "layers": [_pick(g, ("name", "movement", "rel_change", "change_bound")) for g in d.layers],
    }


def _column_dict(c: Any, best: bool) -> dict[str, Any]:
    return {
        "rev": c.rev,
        "commit": c.commit,
        "snapshot": c.snapshot_id,
        "best": best,
        "message": c.message,
        "created": c.created,
        "format": c.format,
        "size": c.size,
        "tensors": c.tensors,
        "stored_bytes": c.stored_bytes,
        "new_bytes": c.new_bytes,
        "training": {k: _finite(v) for k, v in c.training.items()},
        "drift": _drift_dict(c.drift),
    }


def compare_dict(r: Any) -> dict[str, Any]:
    """The ``git snap compare --json`` document (docs/json-output.md)."""
    return {
        "version": COMPARE_FORMAT_VERSION,
        "revisions": [
            {"rev": rev, "commit": commit}
            for rev, commit in zip(r.revisions, r.commits, strict=True)
        ],
        "values": r.values,
        "metric": r.metric,
        "best": r.best,
        "best_from": r.best_from,
        "checkpoints": [
            {
                "path": ck.path,
                "best": ck.best,
                "columns": [_column_dict(c, i == ck.best) for i, c in enumerate(ck.columns)],
                "metrics": [_compare_row(m) for m in ck.metrics],
                "params": [_compare_row(m) for m in ck.params],
            }
            for ck in r.checkpoints
        ],
        "registered": [
            {
                "tag": t.tag,
                "action": t.action,
                "name": t.name,
                "path": t.path,
                "version": t.version,
                "stage": t.stage,
                "commit": t.commit,
                "snapshot": t.snapshot_id,
            }
            for t in r.registered
        ],
        "problems": [{"path": p.path, "message": p.message, "hint": p.hint} for p in r.problems],
    }


def dumps_data(data: Any) -> str:
    """Like :func:`dumps` for an already-built document."""
    return json.dumps(data, indent=2, sort_keys=False, allow_nan=False)


_ONE_PER_LINE = frozenset(
    {"tensors", "groups", "metrics", "params", "env", "gate", "training_state"}
)


def dumps_diff(data: Any) -> str:
    """Indented JSON whose tensor, group, metric and gate entries take one line each.

    json's indenting encoder is pure Python (0.4 s for a 2,000-tensor diff);
    the compact one is C. Writing each entry compactly keeps the document
    fast to produce, readable, and greppable by tensor name.
    """

    compact = json.JSONEncoder(
        allow_nan=False
    ).encode  # one encoder: json.dumps(..., allow_nan=False) builds one per call

    def enc(value: Any, depth: int, key: str | None = None) -> str:
        pad = "  " * depth
        if isinstance(value, dict) and value:
            items = ",\n".join(
                f"{pad}  {compact(k)}: {enc(v, depth + 1, k)}" for k, v in value.items()
            )
            return "{\n" + items + "\n" + pad + "}"
        if isinstance(value, list) and value:
            if key in _ONE_PER_LINE:
                items = ",\n".join(f"{pad}  {compact(v)}" for v in value)
            else:
                items = ",\n".join(f"{pad}  {enc(v, depth + 1)}" for v in value)
            return "[\n" + items + "\n" + pad + "]"
        return compact(value)

    return enc(data, 0)
