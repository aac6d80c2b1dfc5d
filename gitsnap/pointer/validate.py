"""Validation: a mapping (as YAML or the line reader produced it) becomes a :class:`Pointer`.

Both readers end here, so a pointer is judged by one set of rules whichever
path read it (DESIGN D13): types, ids, paths that stay inside the
repository, the layout tiling each file, and the limits of
:mod:`gitsnap.pointer.limits`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from gitsnap.errors import PointerError
from gitsnap.pointer.limits import (
    MAX_ENTRIES,
    MAX_METADATA_CHARS,
    MAX_METRICS,
    MAX_NAME_CHARS,
    MAX_PICKLE_GLOBALS,
    MAX_PICKLE_NAME_CHARS,
    MAX_VALUE_CHARS,
)
from gitsnap.pointer.model import (
    HASH_ALGO,
    PICKLE_KINDS,
    STAT_KEYS,
    VERSION,
    Entry,
    FileEntry,
    PickleRecord,
    Pointer,
    safe_relpath,
)

_OID_RE = re.compile(r"^[0-9a-f]{64}$")


def from_dict(data: Any, source: str = "<pointer>") -> Pointer:
    if not isinstance(data, dict) or "gitsnap" not in data:
        raise PointerError(f"{source}: not a gitsnap pointer (no 'gitsnap:' version key)")
    data = dict(data)
    version = data.pop("gitsnap")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PointerError(f"{source}: pointer version must be an integer, got {version!r}")
    if version > VERSION:
        raise PointerError(
            f"{source}: pointer format version {version} is newer than this gitsnap ({VERSION})",
            hint="upgrade gitsnap: pip install -U gitsnap",
        )
    if version < 1:
        raise PointerError(f"{source}: unknown pointer format version {version}")

    def take(key: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
        if key not in data:
            if required:
                raise PointerError(f"{source}: pointer lacks the required key {key!r}")
            return None
        value = data.pop(key)
        if value is None and not required:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise PointerError(f"{source}: key {key!r} has the wrong type ({type(value).__name__})")
        return value

    sid = take("id", str)
    _check_oid(sid, source, "id")
    parent = take("parent", str, required=False)
    if parent is not None:
        _check_oid(parent, source, "parent")
    path = safe_relpath(take("path", str), f"{source}: 'path'")
    _check_name(path, source, "'path'")
    fmt = take("format", str)
    _check_name(fmt, source, "'format'")
    size = take("size", int)
    algo = take("hash", str)
    if algo != HASH_ALGO:
        raise PointerError(f"{source}: unsupported object hash {algo!r} (expected {HASH_ALGO})")
    created = take("created", str, required=False) or ""
    message = take("message", str, required=False) or ""
    metrics = take("metrics", dict, required=False) or {}
    params = take("params", dict, required=False) or {}
    tool = take("tool", dict, required=False) or {}
    env = take("env", dict, required=False) or {}
    metadata = take("metadata", dict, required=False) or {}
    raw_pickle = take("pickle", dict, required=False)
    check_scalars(metrics, source, "metrics")
    check_scalars(params, source, "params")
    for key, value in (("tool", tool), ("env", env), ("metadata", metadata), *data.items()):
        check_bulk(value, source, key)
    raw_files = take("files", list, required=False) or []
    raw_tensors = take("tensors", list, required=False) or []
    raw_blobs = take("blobs", list, required=False) or []
    check_entry_count(len(raw_files) + len(raw_tensors) + len(raw_blobs), source)
    files = [file_entry(f, source) for f in raw_files]
    tensors = [_entry(t, source, tensor=True) for t in raw_tensors]
    blobs = [_entry(b, source, tensor=False) for b in raw_blobs]
    ptr = Pointer(
        id=sid,
        path=path,
        format=fmt,
        size=size,
        tensors=tensors,
        blobs=blobs,
        parent=parent,
        created=created,
        message=message,
        metrics=metrics,
        params=params,
        tool=tool,
        env=env,
        metadata=metadata,
        extra=data,
        files=files,
    )
    if raw_pickle is not None:
        ptr.pickle = pickle_records(raw_pickle, source, folder=bool(files))
    check_entries(ptr, source)
    return ptr


def pickle_records(raw: dict[str, Any], source: str, *, folder: bool) -> dict[str, PickleRecord]:
    """The ``pickle`` key: one record (a file) or ``files: {path: record}`` (a folder)."""
    if not folder:
        return {"": _pickle_record(raw, source, "the checkpoint")}
    if set(raw) != {"files"} or not isinstance(raw["files"], dict):
        raise PointerError(f"{source}: 'pickle' of a folder pointer must hold only 'files'")
    out: dict[str, PickleRecord] = {}
    for path, rec in raw["files"].items():
        if not isinstance(path, str):
            raise PointerError(f"{source}: 'pickle' names a file that is not a string")
        _check_name(path, source, "a file path")
        check_member_path(path, source)
        out[path] = _pickle_record(rec, source, f"file {path!r}")
    return out


def _pickle_record(raw: Any, source: str, what: str) -> PickleRecord:
    if not isinstance(raw, dict) or not set(raw) <= {"globals", "allowed_unsafe"}:
        raise PointerError(
            f"{source}: the pickle record of {what} must hold 'globals' and "
            f"optionally 'allowed_unsafe': {_short(raw)}"
        )
    names = raw.get("globals")
    allowed = raw.get("allowed_unsafe", False)
    if not isinstance(names, dict) or not isinstance(allowed, bool):
        raise PointerError(f"{source}: the pickle record of {what} has the wrong types")
    if len(names) > MAX_PICKLE_GLOBALS:
        raise PointerError(f"{source}: {what} records more than {MAX_PICKLE_GLOBALS} globals")
    for name, kind in names.items():
        if not isinstance(name, str) or not name or len(name) > MAX_PICKLE_NAME_CHARS:
            raise PointerError(
                f"{source}: {what} records a global that is not a name of at most "
                f"{MAX_PICKLE_NAME_CHARS} characters: {_short(name)}"
            )
        if kind not in PICKLE_KINDS:
            raise PointerError(
                f"{source}: {what} records global {_short(name)} as {_short(kind)}, "
                f"not one of {', '.join(PICKLE_KINDS)}"
            )
    return PickleRecord(dict(names), allowed)


def _check_pickle_files(ptr: Pointer, source: str) -> None:
    paths = {f.path for f in ptr.files}
    for rel in ptr.pickle:
        if (rel == "") == bool(ptr.files) or (rel and rel not in paths):
            raise PointerError(
                f"{source}: a pickle record names no file of the checkpoint: {rel!r}"
            )


def check_pickle(ptr: Pointer, source: str) -> None:
    """What the writer refuses to write: the readers' bounds, and a file the pointer has."""
    _check_pickle_files(ptr, source)
    for rel, rec in ptr.pickle.items():
        _pickle_record(
            {"globals": rec.globals, "allowed_unsafe": rec.allowed_unsafe},
            source,
            "the checkpoint" if rel == "" else f"file {rel!r}",
        )


def check_entry_count(count: int, source: str) -> None:
    if count > MAX_ENTRIES:
        raise PointerError(
            f"{source}: pointer lists more than {MAX_ENTRIES} entries (tensors, blobs and files)",
            hint="this is not a pointer gitsnap wrote; restore it from git "
            "(git checkout -- PATH.snap) or re-create it with git snap save",
        )


def check_scalars(values: Mapping[Any, Any], source: str, what: str) -> None:
    """``metrics``/``params``: at most MAX_METRICS flat names, each to a scalar."""
    if len(values) > MAX_METRICS:
        raise PointerError(f"{source}: {what} has more than {MAX_METRICS} names")
    for key, value in values.items():
        if not isinstance(key, str) or len(key) > MAX_VALUE_CHARS:
            raise PointerError(f"{source}: {what} has a name that is not a string or too long")
        if value is not None and not isinstance(value, (str, int, float)):
            raise PointerError(
                f"{source}: {what} {_short(key)} is not a number, string, bool or null "
                f"({type(value).__name__})"
            )
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            raise PointerError(
                f"{source}: {what} {_short(key)} is longer than {MAX_VALUE_CHARS} characters"
            )


def check_bulk(value: Any, source: str, key: str, hint: str | None = None) -> None:
    """Free-form values (``tool``, ``metadata``, unknown keys): at most MAX_METADATA_CHARS."""
    budget = MAX_METADATA_CHARS
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise PointerError(f"{source}: {_short(key)} has a key that is not a string")
                budget -= len(k) + 1
                todo.append(v)
        elif isinstance(item, list):
            budget -= len(item)
            todo.extend(item)
        else:
            budget -= len(item) if isinstance(item, str) else 1
        if budget < 0:
            raise PointerError(
                f"{source}: {_short(key)} holds more than {MAX_METADATA_CHARS} characters",
                hint=hint,
            )


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _check_name(value: str, source: str, what: str) -> None:
    if len(value) > MAX_NAME_CHARS:
        raise PointerError(
            f"{source}: {what} is longer than {MAX_NAME_CHARS} characters ({_short(value)})"
        )


_MAX_BYTES = 2**63 - 1  # what a file offset (off_t) can hold


def check_entries(ptr: Pointer, source: str) -> None:
    """Names and sizes within the limits, then the layout (both readers end here)."""
    entries = (*ptr.tensors, *ptr.blobs)
    for e in entries:
        for what, value in (("tensor name", e.name), ("dtype", e.dtype), ("role", e.role)):
            if value is not None:
                _check_name(value, source, f"a {what}")
    _check_pickle_files(ptr, source)
    if ptr.size > _MAX_BYTES:
        raise PointerError(f"{source}: size {ptr.size} is larger than any file can be")
    for f in ptr.files:
        if f.size > _MAX_BYTES:
            raise PointerError(f"{source}: file {_short(f.path)} size is larger than any file")
    for e in entries:
        if e.offset > _MAX_BYTES or e.size > _MAX_BYTES:
            raise PointerError(f"{source}: {e.label} lies beyond the largest possible file")
    check_layout(ptr, source)


def file_entry(raw: Any, source: str) -> FileEntry:
    if not isinstance(raw, dict):
        raise PointerError(f"{source}: a files entry is not a mapping: {_short(raw)}")
    raw = dict(raw)
    path, size, fmt = raw.pop("path", None), raw.pop("size", None), raw.pop("format", "")
    executable = raw.pop("executable", False)
    if not isinstance(path, str):
        raise PointerError(f"{source}: a files entry lacks its path: {_short(raw)}")
    _check_name(path, source, "a file path")
    check_member_path(path, source)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise PointerError(f"{source}: file {path!r} size must be a non-negative integer: {size!r}")
    if not isinstance(fmt, str):
        raise PointerError(f"{source}: file {path!r} format must be a string: {fmt!r}")
    if not isinstance(executable, bool):
        raise PointerError(f"{source}: file {path!r} executable must be true or false")
    return FileEntry(path=path, size=size, format=fmt, extra=raw, executable=executable)


def check_member_path(path: str, source: str) -> None:
    """A file of a folder checkpoint: relative, normalised, never ``..`` (restores write there)."""
    safe_relpath(path, f"{source}: a file entry")
    if PurePosixPath(path).as_posix() != path or path == ".":
        raise PointerError(f"{source}: file path {path!r} is not in normal form (a/b, no ./ or //)")


def _check_oid(value: str, source: str, what: str) -> None:
    if not _OID_RE.match(value):
        raise PointerError(f"{source}: {what} is not a 64-digit lowercase hex BLAKE3 id: {value!r}")


def _entry(raw: Any, source: str, *, tensor: bool) -> Entry:
    kind = "tensor" if tensor else "blob"
    if not isinstance(raw, dict):
        raise PointerError(f"{source}: a {kind} entry is not a mapping: {_short(raw)}")
    raw = dict(raw)
    try:
        offset, size, oid = raw.pop("offset"), raw.pop("size"), raw.pop("oid")
    except KeyError as exc:
        raise PointerError(
            f"{source}: a {kind} entry lacks {exc.args[0]!r}: {_short(raw)}"
        ) from None
    for key, value in (("offset", offset), ("size", size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PointerError(f"{source}: {kind} {key} must be a non-negative integer: {value!r}")
    if not isinstance(oid, str):
        raise PointerError(f"{source}: {kind} oid must be a string: {oid!r}")
    _check_oid(oid, source, f"{kind} oid")
    entry = Entry(offset=offset, size=size, oid=oid)
    file = raw.pop("file", None)
    if file is not None:
        if not isinstance(file, str):
            raise PointerError(f"{source}: {kind} file must be a string: {file!r}")
        check_member_path(file, source)
        entry.file = file
    if tensor:
        name, dtype, shape = raw.pop("name", None), raw.pop("dtype", None), raw.pop("shape", None)
        if not isinstance(name, str) or not isinstance(dtype, str) or not isinstance(shape, list):
            raise PointerError(f"{source}: tensor entry needs name, dtype and shape: {_short(raw)}")
        _check_name(name, source, "a tensor name")
        _check_name(dtype, source, "a dtype")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise PointerError(f"{source}: tensor {name!r} has a bad shape {_short(shape)}")
        entry.name, entry.dtype, entry.shape = name, dtype, tuple(shape)
        view = raw.pop("view", False)
        if not isinstance(view, bool):
            raise PointerError(
                f"{source}: tensor {name!r} view must be true or false: {_short(view)}"
            )
        entry.view = view
        stride = raw.pop("stride", None)
        if stride is not None:
            if (
                not isinstance(stride, list)
                or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in stride
                )
                or len(stride) != len(shape)
                or not view
            ):
                raise PointerError(f"{source}: tensor {name!r} has a bad stride {_short(stride)}")
            entry.stride = tuple(stride)
        for key in STAT_KEYS:
            if key in raw:
                value = raw.pop(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise PointerError(f"{source}: tensor {name!r} stat {key} is not a number")
                entry.stats[key] = value
    else:
        role = raw.pop("role", None)
        entry.role = role if isinstance(role, str) else None
        if entry.role is not None:
            _check_name(entry.role, source, "a role")
    entry.extra = raw
    return entry


def check_layout(ptr: Pointer, source: str) -> None:
    """The layout entries tile each file exactly; views lie inside their file."""
    sizes: dict[str | None, int] = {}
    if ptr.files:
        for f in ptr.files:
            if f.path in sizes:
                raise PointerError(f"{source}: file {f.path!r} is listed twice")
            sizes[f.path] = f.size
        total = sum(sizes.values())
        if total != ptr.size:
            raise PointerError(f"{source}: files add up to {total} bytes but size says {ptr.size}")
    else:
        sizes[None] = ptr.size
    for e in [*ptr.tensors, *ptr.blobs]:
        if e.file not in sizes:
            raise PointerError(
                f"{source}: {e.label} names a file that is not in the files list"
                if e.file is not None
                else f"{source}: {e.label} does not say which file of the folder it belongs to"
            )
        if e.view and e.offset + e.size > sizes[e.file]:
            raise PointerError(f"{source}: {e.label} reaches past the end of its file")
    pos: dict[str | None, int] = dict.fromkeys(sizes, 0)
    for e in ptr.segments():
        at = pos[e.file]
        if e.offset != at:
            what = "overlaps the previous one" if e.offset < at else "leaves a gap"
            raise PointerError(f"{source}: layout is broken: {e.label} at offset {e.offset} {what}")
        pos[e.file] = at + e.size
    for file, covered in pos.items():
        if covered != sizes[file]:
            where = "" if file is None else f" of {file}"
            raise PointerError(
                f"{source}: layout covers {covered} bytes{where} but its size is {sizes[file]}"
            )
