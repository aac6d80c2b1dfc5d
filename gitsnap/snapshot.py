"""Save a checkpoint into the store (file -> objects + entries) and restore it (pointer -> file).

Saving reads each segment once, with ``preadv`` into a few reused buffers
(DESIGN D11): a segment up to ``SMALL`` bytes is read whole, hashed, written
if the store lacks it, and only then given stats (skipped when the previous
snapshot already has stats for the same object). Bigger segments stream in
``CHUNK`` pieces. Segments run in parallel on a thread pool; BLAKE3, numpy
and file I/O release the GIL.

Restoring writes every segment at its offset into a temp file next to the
destination, re-hashing each object as it is read, and renames the temp file
into place only when every object verified: a missing or corrupt object
leaves the workspace untouched.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitsnap.errors import ConcurrentChange, ObjectCorrupt, ObjectMissing, PathError
from gitsnap.formats import Layout, Segment, read_layout
from gitsnap.pointer import Entry, Pointer, layout_id, round_stat
from gitsnap.store import ObjectStore

SMALL = 16 * 1024 * 1024
CHUNK = 8 * 1024 * 1024


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class Ingested:
    """The result of reading a checkpoint: its entries and what the store gained."""

    layout: Layout
    tensors: list[Entry]
    blobs: list[Entry]
    id: str
    objects_written: int
    bytes_written: int


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.small: bytearray | None = None
        self.chunk: bytearray | None = None


def _pread_exact(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.preadv(fd, [view], offset)
        if n == 0:
            raise ConcurrentChange("the checkpoint got shorter while it was being read")
        view = view[n:]
        offset += n


class _Reader:
    def __init__(
        self,
        fd: int,
        store: ObjectStore | None,
        known_stats: dict[str, dict[str, float | int]],
        likely_same: set[tuple[str, int]],
        want_stats: bool,
    ) -> None:
        self.fd = fd
        self.store = store
        self.known_stats = known_stats
        self.likely_same = likely_same
        self.want_stats = want_stats
        self.bufs = _Buffers()
        self.lock = threading.Lock()
        self.objects_written = 0
        self.bytes_written = 0

    def _wrote(self, size: int) -> None:
        with self.lock:
            self.objects_written += 1
            self.bytes_written += size

    def _stats_for(self, seg: Segment) -> Any:
        if not self.want_stats or seg.tensor is None:
            return None
        from gitsnap import stats

        return stats.TensorStats(seg.tensor.dtype) if stats.supports(seg.tensor.dtype) else None

    def read(self, seg: Segment) -> tuple[str, dict[str, float | int]]:
        import blake3

        if seg.size <= SMALL:
            if self.bufs.small is None:
                self.bufs.small = bytearray(SMALL)
            view = memoryview(self.bufs.small)[: seg.size]
            _pread_exact(self.fd, view, seg.offset)
            oid = blake3.blake3(view).hexdigest()
            if self.store is not None and self.store.put(oid, view):
                self._wrote(seg.size)
            stats = self.known_stats.get(oid)
            if stats is None:
                acc = self._stats_for(seg)
                if acc is not None:
                    acc.update(view)
                    stats = acc.result()
            return oid, stats or {}
        # A big segment streams. If the previous snapshot had a segment of the
        # same name and size it is probably unchanged: hash first, copy only if
        # new. Otherwise hash, stat and write in one pass.
        key = (seg.tensor.name if seg.tensor else f"@{seg.offset}", seg.size)
        expected: str | None = None
        if self.store is None or key in self.likely_same:
            acc = self._stats_for(seg) if self.store is None else None
            oid = self._stream(seg, stats=acc, writer=None)
            if self.store is None:
                return oid, acc.result() if acc is not None else {}
            if self.store.has(oid):
                stats = self.known_stats.get(oid)
                if stats is None and (acc := self._stats_for(seg)) is not None:
                    self._stream(seg, stats=acc, writer=None)
                    stats = acc.result()
                return oid, stats or {}
            expected = oid
        acc = self._stats_for(seg)
        with self.store.writer() as writer:
            oid = self._stream(seg, stats=acc, writer=writer)
            if expected is not None and oid != expected:
                raise ConcurrentChange("the checkpoint changed while it was being read")
            if not self.store.has(oid):
                writer.commit(oid)
                self._wrote(seg.size)
        return oid, acc.result() if acc is not None else {}

    def _stream(self, seg: Segment, stats: Any, writer: Any) -> str:
        import blake3

        if self.bufs.chunk is None:
            self.bufs.chunk = bytearray(CHUNK)
        buf = memoryview(self.bufs.chunk)
        hasher = blake3.blake3()
        pos, end = seg.offset, seg.offset + seg.size
        while pos < end:
            view = buf[: min(CHUNK, end - pos)]
            _pread_exact(self.fd, view, pos)
            hasher.update(view)
            if stats is not None:
                stats.update(view)
            if writer is not None:
                writer.write(view)
            pos += len(view)
        return str(hasher.hexdigest())


def ingest(
    path: Path,
    store: ObjectStore | None,
    *,
    previous: Pointer | None = None,
    want_stats: bool = True,
    workers: int | None = None,
) -> Ingested:
    """Segment ``path``, hash every segment, and (with a store) add missing objects.

    With ``store=None`` nothing is written and no stats are computed unless
    asked: that is the hash-only path of ``status``.
    """
    try:
        st_before = path.stat()
    except FileNotFoundError:
        raise PathError(f"{path}: no such file", hint="check the path (git snap status lists tracked checkpoints)") from None
    if not path.is_file():
        raise PathError(f"{path}: not a regular file", hint="give the path of a checkpoint file")
    layout = read_layout(path)
    known: dict[str, dict[str, float | int]] = {}
    likely: set[tuple[str, int]] = set()
    if previous is not None:
        for e in previous.tensors:
            if e.stats:
                known[e.oid] = e.stats
            likely.add((e.name or "", e.size))
        for e in previous.blobs:
            likely.add((f"@{e.offset}", e.size))
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = _Reader(fd, store, known, likely, want_stats)
        order = sorted(range(len(layout.segments)), key=lambda i: -layout.segments[i].size)
        results: list[tuple[str, dict[str, float | int]] | None] = [None] * len(layout.segments)

        def work(i: int) -> None:
            results[i] = reader.read(layout.segments[i])

        _run_parallel(work, order, workers)
    finally:
        os.close(fd)
    st_after = path.stat()
    if (st_after.st_size, st_after.st_mtime_ns) != (st_before.st_size, st_before.st_mtime_ns):
        raise ConcurrentChange(f"{path} changed while it was being read")
    tensors: list[Entry] = []
    blobs: list[Entry] = []
    for seg, res in zip(layout.segments, results):
        assert res is not None
        oid, stats = res
        if seg.tensor is not None:
            rounded = {k: (round_stat(v) if isinstance(v, float) else v) for k, v in stats.items()}
            tensors.append(
                Entry(
                    offset=seg.offset,
                    size=seg.size,
                    oid=oid,
                    name=seg.tensor.name,
                    dtype=seg.tensor.dtype,
                    shape=seg.tensor.shape,
                    stats=rounded,
                )
            )
        else:
            blobs.append(Entry(offset=seg.offset, size=seg.size, oid=oid, role=seg.role))
    return Ingested(
        layout=layout,
        tensors=tensors,
        blobs=blobs,
        id=layout_id([*tensors, *blobs], layout.size),
        objects_written=reader.objects_written,
        bytes_written=reader.bytes_written,
    )


def _run_parallel(fn: Callable[[int], None], items: Sequence[int], workers: int | None) -> None:
    n = workers or default_workers()
    if n <= 1 or len(items) <= 1:
        for i in items:
            fn(i)
        return
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="gitsnap") as pool:
        for fut in [pool.submit(fn, i) for i in items]:
            fut.result()  # re-raise the first error


def missing_objects(ptr: Pointer, store: ObjectStore) -> list[Entry]:
    return [e for e in ptr.segments() if not store.has(e.oid)]


def restore(ptr: Pointer, store: ObjectStore, dest: Path, *, workers: int | None = None) -> None:
    """Rebuild ``dest`` byte-exactly from ``ptr``'s objects (atomic; verified)."""
    entries = ptr.segments()
    missing = missing_objects(ptr, store)
    if missing:
        names = ", ".join(e.name or e.role or "blob" for e in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ObjectMissing(
            f"{dest}: {len(missing)} object(s) missing from the local store ({names}{more})",
            hint="fetch them from the remote: git snap pull (or git snap fetch)",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".gitsnap-tmp")
    try:
        os.ftruncate(fd, ptr.size)
        bufs = _Buffers()

        def work(i: int) -> None:
            e = entries[i]
            if bufs.chunk is None:
                bufs.chunk = bytearray(CHUNK)
            pos = e.offset
            try:
                for chunk in store.iter_verified(e.oid, e.size, e.label, bufs.chunk):
                    while chunk:
                        n = os.pwrite(fd, chunk, pos)
                        chunk, pos = chunk[n:], pos + n
            except ObjectCorrupt as exc:
                raise ObjectCorrupt(
                    f"{dest}: {e.label} cannot be restored: object {e.oid[:12]}… is corrupt "
                    "(its bytes do not match its id); the workspace file was left untouched",
                    hint=exc.hint,
                ) from None

        order = sorted(range(len(entries)), key=lambda i: -entries[i].size)
        _run_parallel(work, order, workers)
        os.fchmod(fd, 0o644 & ~_umask())
        os.close(fd)
        fd = -1
        os.replace(tmp, dest)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
