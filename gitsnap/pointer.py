"""The ``.snap`` pointer file: parse and dump, in exactly one canonical encoding.

A pointer records one snapshot of a checkpoint. It lives next to the
checkpoint as ``<checkpoint path>.snap`` and is committed to git; the weight
bytes live in the object store. The full specification is
``docs/pointer-format.md``; this docstring is its short form.

Encoding
    UTF-8 YAML, LF line ends, at most 64 MiB. The first line is always
    ``gitsnap: 1`` (the format version). The remaining top-level keys follow
    in sorted order. ``tensors`` and ``blobs`` are block sequences with one
    flow mapping per line (``- {name: ..., dtype: F32, ...}``) so that
    ``git diff`` shows one changed line per changed tensor. Other values are
    written by PyYAML's safe dumper with sorted keys in block style. Floats in
    stats are rounded to 7 significant digits. Saving the same checkpoint with
    the same message, metrics and params yields identical bytes.

Keys
    gitsnap   int, format version (this reader understands 1)
    id        hex BLAKE3 of the layout (see :func:`layout_id`): the snapshot id
    parent    id of the previous snapshot at the same path, or null (lineage)
    path      repository-relative path of the checkpoint when it was saved
    format    the reader that segmented the file (``safetensors``, ``raw``, ...)
    size      total bytes of the checkpoint
    hash      object hash algorithm, ``blake3``
    created   UTC time of the save, ISO 8601 (``SOURCE_DATE_EPOCH`` honoured)
    message   free text (``-m``), may be empty
    metrics   mapping of flat dotted names to numbers/strings/bools
    params    same, for hyper-parameters
    tool      mapping: gitsnap, python and torch versions at save time
    metadata  format-level metadata (e.g. safetensors ``__metadata__``)
    files     only for a folder checkpoint: one ``{path, size, format}`` per
              file, sorted by path (POSIX, relative to the folder, no ``..``)
    blobs     segments that are not tensors: ``{[file,] offset, size, oid, role}``
    tensors   one per tensor, in file order: ``{name, [file,] dtype, shape,
              offset, size, oid, [view, stride]}`` then stats ``count,
              nonfinite, mean, std, min, max, l2`` (stats absent for empty or
              all-non-finite tensors)

Reassembly: the union of ``blobs`` and ``tensors`` sorted by ``offset`` tiles
``[0, size)`` exactly; concatenating their objects rebuilds the file byte for
byte. In a folder pointer every entry names its ``file`` and the entries of
each file tile ``[0, file size)``; ``size`` is the sum of the file sizes.
A tensor entry with ``view: true`` takes no part in the layout: its bytes are
``[offset, offset + size)`` of its file, held by other segments (a tensor
sharing a PyTorch storage with another), ``stride`` gives its element strides
when it is not contiguous, and its ``oid`` is the BLAKE3 of those bytes, not
a stored object. Keys this version does not know, at top level or inside a
tensor or blob entry, are kept and written back unchanged (sorted after the
known ones).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from gitsnap.errors import PointerError

VERSION = 1
SUFFIX = ".snap"
MAX_POINTER_BYTES = 64 * 1024 * 1024
HASH_ALGO = "blake3"

_OID_RE = re.compile(r"^[0-9a-f]{64}$")
_PLAIN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/:]*$")
# YAML 1.1 words that a plain scalar would turn into bools/nulls.
_RESERVED = {
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
}  # fmt: skip

TENSOR_KEYS = ("name", "file", "dtype", "shape", "offset", "size", "oid", "view", "stride")
STAT_KEYS = ("count", "nonfinite", "mean", "std", "min", "max", "l2")
BLOB_KEYS = ("file", "offset", "size", "oid", "role")
FILE_KEYS = ("path", "size", "format")


@dataclass
class Entry:
    """One segment of the file: a tensor (``name`` set) or a blob (``role`` set)."""

    offset: int
    size: int
    oid: str
    name: str | None = None
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    role: str | None = None
    stats: dict[str, float | int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    file: str | None = None  # folder pointers: the file this entry belongs to
    view: bool = False  # a tensor whose bytes other segments hold (not part of the layout)
    stride: tuple[int, ...] | None = None  # element strides of a non-contiguous view

    @property
    def is_tensor(self) -> bool:
        return self.name is not None

    @property
    def label(self) -> str:
        kind = f"{self.role or 'blob'} segment"
        what = f"tensor {self.name!r}" if self.name is not None else kind
        return what if self.file is None else f"{what} of {self.file}"


@dataclass
class FileEntry:
    """One file of a folder checkpoint. ``extra`` holds keys this version does not know."""

    path: str
    size: int
    format: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pointer:
    """A parsed pointer. ``extra`` holds top-level keys this version does not know."""

    id: str
    path: str
    format: str
    size: int
    tensors: list[Entry]
    blobs: list[Entry]
    parent: str | None = None
    created: str = ""
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tool: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)  # folder checkpoints only

    def segments(self) -> list[Entry]:
        """The layout entries (views left out) in reassembly order: by file, then offset."""
        return sorted(
            (e for e in [*self.blobs, *self.tensors] if not e.view),
            key=lambda e: (e.file or "", e.offset, e.size),
        )

    def oids(self) -> set[str]:
        """The stored objects this snapshot needs (a view's oid is not an object)."""
        return {e.oid for e in self.segments()}


def layout_id(entries: Iterable[Entry], size: int, files: Iterable[FileEntry] | None = None) -> str:
    """The snapshot id: BLAKE3 over ``offset size oid`` lines in file order, then the size.

    For a folder (``files`` given) each file's lines are preceded by a line
    ``file <JSON-quoted path> <size>``, files in path order, so the id also
    covers the file names. Views are not part of the layout and not hashed.
    Two snapshots have the same id exactly when they rebuild the same bytes.
    """
    import json

    import blake3

    h = blake3.blake3()
    layout = sorted(
        (e for e in entries if not e.view), key=lambda e: (e.file or "", e.offset, e.size)
    )
    if files is None:
        for e in layout:
            h.update(f"{e.offset} {e.size} {e.oid}\n".encode())
    else:
        by_file: dict[str, list[Entry]] = {}
        for e in layout:
            by_file.setdefault(e.file or "", []).append(e)
        for f in sorted(files, key=lambda f: f.path):
            h.update(f"file {json.dumps(f.path)} {f.size}\n".encode())
            for e in by_file.get(f.path, []):
                h.update(f"{e.offset} {e.size} {e.oid}\n".encode())
    h.update(f"size {size}\n".encode())
    return h.hexdigest()


def scan_oids(raw: bytes) -> set[str]:
    """Stored object ids of a *canonical* pointer by a line scan (no YAML parse).

    Only for text that :func:`loads` accepted and :func:`dumps` reproduces byte for
    byte (the status fast path checks this before trusting it): there every entry is
    one line, and views (``view: true``) name no stored object.
    """
    oids = set()
    for line in raw.split(b"\n"):
        if line.startswith(b"- {") and b" oid: " in line and b"view: true" not in line:
            oid = line.split(b" oid: ", 1)[1][:66].strip(b'"')[:64]
            oids.add(oid.decode())
    return oids


def pointer_path_for(checkpoint: str) -> str:
    return checkpoint + SUFFIX


def checkpoint_path_for(pointer: str) -> str:
    if not pointer.endswith(SUFFIX):
        raise PointerError(f"{pointer} is not a pointer file (no {SUFFIX} suffix)")
    return pointer[: -len(SUFFIX)]


def safe_relpath(value: str, what: str) -> str:
    """Refuse absolute paths and ``..``: a pointer must not steer writes outside the repo."""
    p = PurePosixPath(value)
    if not value or p.is_absolute() or ".." in p.parts or "\\" in value or "\0" in value:
        raise PointerError(
            f"{what} names a path outside the repository: {value!r}",
            hint="a pointer may only name relative paths inside the repository; "
            "restore it from git or re-create it with git snap save",
        )
    return value


# ---------------------------------------------------------------- loading


def loads(
    text: str | bytes, source: str = "<pointer>", *, shared: dict[str, Entry] | None = None
) -> Pointer:
    """Parse pointer text; raise :class:`PointerError` naming ``source`` on any defect.

    Canonical text (what :func:`dumps` writes) is read without YAML, ~20x
    faster (``gitsnap._canonical``); anything else goes through PyYAML's safe
    loader. Both give the same :class:`Pointer`, or the same error.

    ``shared``: one dict kept across the loads of one diff. A tensor line that
    is the same in both pointers (an unchanged tensor at the same offset) is
    then parsed once and both pointers hold the same :class:`Entry`, which the
    caller must treat as read-only.
    """
    if len(text) > MAX_POINTER_BYTES:
        raise PointerError(f"{source}: pointer is larger than {MAX_POINTER_BYTES} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PointerError(f"{source}: pointer is not UTF-8 text ({exc})") from None
    from gitsnap import _canonical

    try:
        return _canonical.load(text, source, {} if shared is None else shared)
    except _canonical.NotCanonical:
        return _load_yaml(text, source)


def _load_yaml(text: str, source: str) -> Pointer:
    """Any YAML pointer text, through PyYAML (the reference for ``_canonical``)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PointerError(f"{source}: malformed pointer YAML{where}: {problem}") from None
    return from_dict(data, source)


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
    fmt = take("format", str)
    size = take("size", int)
    algo = take("hash", str)
    if algo != HASH_ALGO:
        raise PointerError(f"{source}: unsupported object hash {algo!r} (expected {HASH_ALGO})")
    created = take("created", str, required=False) or ""
    message = take("message", str, required=False) or ""
    metrics = take("metrics", dict, required=False) or {}
    params = take("params", dict, required=False) or {}
    tool = take("tool", dict, required=False) or {}
    metadata = take("metadata", dict, required=False) or {}
    files = [_file_entry(f, source) for f in take("files", list, required=False) or []]
    tensors = [_entry(t, source, tensor=True) for t in take("tensors", list, required=False) or []]
    blobs = [_entry(b, source, tensor=False) for b in take("blobs", list, required=False) or []]
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
        metadata=metadata,
        extra=data,
        files=files,
    )
    _check_layout(ptr, source)
    return ptr


def _file_entry(raw: Any, source: str) -> FileEntry:
    if not isinstance(raw, dict):
        raise PointerError(f"{source}: a files entry is not a mapping: {raw!r}")
    raw = dict(raw)
    path, size, fmt = raw.pop("path", None), raw.pop("size", None), raw.pop("format", "")
    if not isinstance(path, str):
        raise PointerError(f"{source}: a files entry lacks its path: {raw!r}")
    _check_member_path(path, source)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise PointerError(f"{source}: file {path!r} size must be a non-negative integer: {size!r}")
    if not isinstance(fmt, str):
        raise PointerError(f"{source}: file {path!r} format must be a string: {fmt!r}")
    return FileEntry(path=path, size=size, format=fmt, extra=raw)


def _check_member_path(path: str, source: str) -> None:
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
        raise PointerError(f"{source}: a {kind} entry is not a mapping: {raw!r}")
    raw = dict(raw)
    try:
        offset, size, oid = raw.pop("offset"), raw.pop("size"), raw.pop("oid")
    except KeyError as exc:
        raise PointerError(f"{source}: a {kind} entry lacks {exc.args[0]!r}: {raw!r}") from None
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
        _check_member_path(file, source)
        entry.file = file
    if tensor:
        name, dtype, shape = raw.pop("name", None), raw.pop("dtype", None), raw.pop("shape", None)
        if not isinstance(name, str) or not isinstance(dtype, str) or not isinstance(shape, list):
            raise PointerError(f"{source}: tensor entry needs name, dtype and shape: {raw!r}")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise PointerError(f"{source}: tensor {name!r} has a bad shape {shape!r}")
        entry.name, entry.dtype, entry.shape = name, dtype, tuple(shape)
        view = raw.pop("view", False)
        if not isinstance(view, bool):
            raise PointerError(f"{source}: tensor {name!r} view must be true or false: {view!r}")
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
                raise PointerError(f"{source}: tensor {name!r} has a bad stride {stride!r}")
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
    entry.extra = raw
    return entry


def _check_layout(ptr: Pointer, source: str) -> None:
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


# ---------------------------------------------------------------- dumping


def dumps(ptr: Pointer) -> str:
    """The one canonical encoding of ``ptr`` (see the module docstring)."""
    top: dict[str, Any] = dict(ptr.extra)
    top.update(
        id=ptr.id,
        parent=ptr.parent,
        path=ptr.path,
        format=ptr.format,
        size=ptr.size,
        hash=HASH_ALGO,
        created=ptr.created,
        message=ptr.message,
        metrics=ptr.metrics,
        params=ptr.params,
        tool=ptr.tool,
    )
    if ptr.metadata:
        top["metadata"] = ptr.metadata
    top["tensors"] = ptr.tensors
    top["blobs"] = ptr.blobs
    if ptr.files:
        top["files"] = sorted(ptr.files, key=lambda f: f.path)
    out = [f"gitsnap: {VERSION}\n"]
    for key in sorted(top):
        value = top[key]
        if key in ("tensors", "blobs") and key not in ptr.extra:
            out.append(f"{key}:" + (" []\n" if not value else "\n"))
            out.extend(f"- {_entry_line(e)}\n" for e in value)
        elif key == "files" and ptr.files:
            out.append("files:\n")
            out.extend(f"- {_file_line(f)}\n" for f in value)
        else:
            out.append(_block({key: value}))
    return "".join(out)


def _block(value: Mapping[str, Any]) -> str:
    import yaml  # only for writing, and for text that is not canonical: see loads

    return yaml.dump(
        dict(value),
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
    )


def _entry_line(e: Entry) -> str:
    parts: list[str] = []
    if e.name is not None:
        parts.append(f"name: {_str(e.name)}")
        if e.file is not None:
            parts.append(f"file: {_str(e.file)}")
        parts.append(f"dtype: {_str(e.dtype or '')}")
        parts.append("shape: [" + ", ".join(str(d) for d in e.shape or ()) + "]")
        parts += [f"offset: {e.offset}", f"size: {e.size}", f"oid: {_oid(e.oid)}"]
        if e.view:
            parts.append("view: true")
        if e.stride is not None:
            parts.append("stride: [" + ", ".join(str(d) for d in e.stride) + "]")
        for key in STAT_KEYS:
            if key in e.stats:
                parts.append(f"{key}: {_num(e.stats[key])}")
    else:
        if e.file is not None:
            parts.append(f"file: {_str(e.file)}")
        parts += [f"offset: {e.offset}", f"size: {e.size}", f"oid: {_oid(e.oid)}"]
        if e.role is not None:
            parts.append(f"role: {_str(e.role)}")
    for key in sorted(e.extra):
        parts.append(f"{_str(key)}: {_flow(e.extra[key])}")
    return "{" + ", ".join(parts) + "}"


def _file_line(f: FileEntry) -> str:
    parts = [f"path: {_str(f.path)}", f"size: {f.size}"]
    if f.format:
        parts.append(f"format: {_str(f.format)}")
    parts += [f"{_str(key)}: {_flow(f.extra[key])}" for key in sorted(f.extra)]
    return "{" + ", ".join(parts) + "}"


def _oid(oid: str) -> str:
    # An all-digit id (odds ~1e-13) would read back as a YAML integer.
    return f'"{oid}"' if oid.isdigit() else oid


def _str(s: str) -> str:
    if _PLAIN_RE.fullmatch(s) and s.lower() not in _RESERVED and not s.endswith(":"):
        return s
    return _quote(s)


def _yaml_printable(cp: int) -> bool:
    return (
        cp in (0x09, 0x0A, 0x0D, 0x85)
        or 0x20 <= cp <= 0x7E
        or 0xA0 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )


def _quote(s: str) -> str:
    """A YAML double-quoted scalar; escapes what YAML cannot hold raw."""
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif _yaml_printable(cp) and cp not in (0x0A, 0x0D, 0x85):
            out.append(ch)
        elif cp <= 0xFF:
            out.append(f"\\x{cp:02x}")
        elif cp <= 0xFFFF:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def _flow(value: Any) -> str:
    import yaml

    text = yaml.dump(
        value,
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        default_flow_style=True,
        sort_keys=True,
        width=1 << 30,
        allow_unicode=True,
    ).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def round_stat(value: float) -> float:
    """Stats are stored to 7 significant digits: plenty for review, stable to re-dump."""
    if not math.isfinite(value) or value == 0:
        return float(value)
    return float(f"{value:.7g}")


def _num(value: float | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(float(value))
    # PyYAML's YAML 1.1 resolver reads "1e-05" as a string: it needs a dot and a signed exponent.
    if "e" in text:
        mant, exp = text.split("e")
        if "." not in mant:
            mant += ".0"
        if exp[0] not in "+-":
            exp = "+" + exp
        text = f"{mant}e{exp}"
    elif "." not in text:
        text += ".0"
    return text
