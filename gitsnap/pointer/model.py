"""The pointer model: what a ``.snap`` file holds, once read.

No parsing or writing here (:mod:`gitsnap.pointer.read`, :mod:`gitsnap.pointer.write`),
and no I/O: the dataclasses every layer passes around, the snapshot id, and
the rule every path in a pointer obeys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from gitsnap.errors import PointerError

VERSION = 1
HASH_ALGO = "blake3"

STAT_KEYS = ("count", "nonfinite", "mean", "std", "min", "max", "l2")


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
    """One file of a folder checkpoint. ``extra`` holds keys this version does not know.

    ``executable``: the file had its owner's execute bit set (a script shipped with a
    model); a restore sets it again. Like git, the only mode bit a snapshot records.
    """

    path: str
    size: int
    format: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    executable: bool = False


PICKLE_KINDS = ("weights_only", "data", "unsafe", "unknown")
"""The classes of a pickle global (docs/security.md); ``unsafe`` runs code at ``torch.load``."""


@dataclass
class PickleRecord:
    """The globals one pickled file names, each with its class, and whether unsafe was allowed.

    ``allowed_unsafe`` is true only when ``git snap save --allow-unsafe-pickle``
    recorded a file with an ``unsafe`` global.
    """

    globals: dict[str, str]
    allowed_unsafe: bool = False

    def of_kind(self, kind: str) -> list[str]:
        return sorted(name for name, k in self.globals.items() if k == kind)


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
    # The environment of the save (gitsnap.environment.current); {}: not recorded.
    env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)  # folder checkpoints only
    # Per pickled file: "" for a file checkpoint, else the file's path in the folder.
    pickle: dict[str, PickleRecord] = field(default_factory=dict)

    def pickle_files(self) -> list[tuple[str, PickleRecord]]:
        """(repository path of the file, its record), in path order."""
        return [
            (self.path if rel == "" else f"{self.path}/{rel}", rec)
            for rel, rec in sorted(self.pickle.items())
        ]

    def segments(self) -> list[Entry]:
        """The layout entries (views left out) in reassembly order: by file, then offset."""
        return sorted(
            (e for e in [*self.blobs, *self.tensors] if not e.view),
            key=lambda e: (e.file or "", e.offset, e.size),
        )

    def oids(self) -> set[str]:
        """The stored objects this snapshot needs (a view's oid is not an object)."""
        return {e.oid for e in self.segments()}


def colliding_names(entries: Iterable[Entry]) -> set[str]:
    """Tensor names that more than one file of a folder pointer holds (model + EMA, ...).

    Such a tensor is known by its file and its name (:func:`qualified_name`);
    any other by its name alone, so a tensor that moves to another shard is
    the same tensor. Empty for a single-file pointer.
    """
    seen: dict[str, str] = {}
    clash: set[str] = set()
    for e in entries:
        if e.file is None or e.name is None:
            continue
        if seen.setdefault(e.name, e.file) != e.file:
            clash.add(e.name)
    return clash


def qualified_name(file: str | None, name: str) -> str:
    """How a tensor whose name another file holds too is shown: ``ema.safetensors: head.weight``."""
    return name if file is None else f"{file}: {name}"


def layout_id(entries: Iterable[Entry], size: int, files: Iterable[FileEntry] | None = None) -> str:
    """The snapshot id: BLAKE3 over ``offset size oid`` lines in file order, then the size.

    For a folder (``files`` given) each file's lines are preceded by a line
    ``file <JSON-quoted path> <size>`` (`` executable`` appended for an
    executable file), files in path order, so the id also covers the file
    names and modes. Views are not part of the layout and not hashed.
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
            mode = " executable" if f.executable else ""
            h.update(f"file {json.dumps(f.path)} {f.size}{mode}\n".encode())
            for e in by_file.get(f.path, []):
                h.update(f"{e.offset} {e.size} {e.oid}\n".encode())
    h.update(f"size {size}\n".encode())
    return h.hexdigest()


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


def round_stat(value: float) -> float:
    """Stats are stored to 7 significant digits: plenty for review, stable to re-dump."""
    if not math.isfinite(value) or value == 0:
        return float(value)
    return float(f"{value:.7g}")
