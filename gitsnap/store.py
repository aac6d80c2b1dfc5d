"""The local content-addressed object store (DESIGN D1-D3).

Objects live at ``<dvc cache dir>/gitsnap/blake3/ab/cdef...`` (never under
``files/md5``, which ``dvc gc`` owns). An object is written to a temp file in
``<store>/tmp`` and renamed into place, then made read-only, so a reader never
sees a partial object and a crash leaves at most a stray temp file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from gitsnap.errors import ObjectCorrupt, ObjectMissing

CHUNK = 8 * 1024 * 1024
_READONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def store_root(cache_dir: Path) -> Path:
    return cache_dir / "gitsnap" / "blake3"


class ObjectWriter:
    """Stream bytes into a temp file; :meth:`commit` renames it to its object path."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        tmp_dir = store.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="obj-")
        self._fd: int | None = fd
        self._tmp = name
        self.size = 0

    def write(self, data: memoryview | bytes | bytearray) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
            self.size += n

    def commit(self, oid: str) -> None:
        assert self._fd is not None
        os.fchmod(self._fd, _READONLY)
        os.close(self._fd)
        self._fd = None
        dest = self._store.path(oid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, dest)

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # no-op after commit


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, oid: str) -> Path:
        return self.root / oid[:2] / oid[2:]

    def has(self, oid: str) -> bool:
        return os.path.exists(self.path(oid))

    def writer(self) -> ObjectWriter:
        return ObjectWriter(self)

    def put(self, oid: str, data: memoryview | bytes | bytearray) -> bool:
        """Store ``data`` (already hashed to ``oid`` by the caller). False if already present."""
        if self.has(oid):
            return False
        with self.writer() as w:
            w.write(data)
            w.commit(oid)
        return True

    def open(self, oid: str, label: str = "object") -> BinaryIO:
        try:
            return open(self.path(oid), "rb", buffering=0)
        except FileNotFoundError:
            raise ObjectMissing(f"object {oid[:12]}… ({label}) is missing from the local store") from None

    def iter_verified(self, oid: str, size: int, label: str, buf: bytearray) -> Iterator[memoryview]:
        """Yield the object's bytes in chunks; raise ObjectCorrupt at the end if they do not hash to ``oid``.

        Callers write the chunks to a temp file and only rename it into place
        after every object verified, so corrupt bytes never reach the workspace.
        """
        import blake3

        hasher = blake3.blake3()
        view = memoryview(buf)
        seen = 0
        with self.open(oid, label) as f:
            while True:
                n = f.readinto(view)
                if not n:
                    break
                chunk = view[:n]
                hasher.update(chunk)
                seen += n
                yield chunk
        if seen != size or hasher.hexdigest() != oid:
            raise ObjectCorrupt(f"object {oid[:12]}… ({label}) is corrupt: its bytes do not match its id")

    def iter_oids(self) -> Iterator[str]:
        try:
            prefixes = os.scandir(self.root)
        except FileNotFoundError:
            return
        with prefixes:
            for d in prefixes:
                if len(d.name) == 2 and d.is_dir():
                    for entry in os.scandir(d.path):
                        yield d.name + entry.name

    def disk_usage(self) -> int:
        total = 0
        for oid in self.iter_oids():
            total += os.stat(self.path(oid)).st_size
        return total
