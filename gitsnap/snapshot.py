"""Save a checkpoint into the store (file or folder -> objects + entries) and restore it.

Saving reads each segment once, with ``preadv`` into a few reused buffers
(DESIGN D11): a segment up to ``SMALL`` bytes is read whole, hashed, written
if the store lacks it, and only then given stats (skipped when the previous
snapshot already has stats for the same object). Bigger segments stream in
``CHUNK`` pieces, and their stats are computed in the same pass as the hash.
Segments run in parallel on a thread pool; BLAKE3, numpy and file I/O
release the GIL. Memory is therefore bounded by the workers' buffers, not by
the checkpoint: a 4 GiB sharded checkpoint saves in about 100 MiB.

A checkpoint is a file or a folder. A folder (Hugging Face shards with their
config and tokenizer files, or any set of files) is one snapshot: every file
is segmented by its own reader, all segments of all files share one pool,
and each entry records the ``file`` it belongs to.

Views (a tensor that shares a PyTorch storage with another, see
:class:`gitsnap.formats.View`) are not segments: after the segments, each
view's bytes are hashed (its ``oid`` names its contents, so two snapshots'
views compare like tensors) and given stats, re-using a segment's result when
the view spans exactly that segment.

Restoring copies every object at its offset into a temp file next to the
destination (a temp folder, for a folder), in the kernel, re-hashes the bytes
as they landed there, and renames it into place only when every object
verified: a missing or corrupt object leaves the workspace untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitsnap.codec import HEADER_SIZE as HEADER
from gitsnap.errors import (
    ConcurrentChange,
    DirtyCheckpoint,
    ObjectMissing,
    PathError,
)
from gitsnap.formats import Layout, PickleGlobal, Segment, View, read_folder, read_layout
from gitsnap.formats.base import contiguous_strides
from gitsnap.fsutil import disk_full, is_disk_full, pwrite_all, umask
from gitsnap.pack import THRESHOLD as PACKED
from gitsnap.pointer import Entry, FileEntry, PickleRecord, Pointer, layout_id, round_stat
from gitsnap.pointer.peek import pointer_bytes
from gitsnap.store import ObjectStore, copy_range, hash_range

# One reused buffer per worker serves both paths, so memory is ``workers x 8 MiB``
# plus the stats scratch (a few MiB per worker): about 100 MiB at 8 workers.
SMALL = 8 * 1024 * 1024
CHUNK = 8 * 1024 * 1024

Stats = dict[str, float | int]


def default_workers() -> int:
    """``GITSNAP_WORKERS`` if set, else the CPUs this process may run on, at most 8."""
    env = os.environ.get("GITSNAP_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cpus or 1))


@dataclass(frozen=True)
class Ingested:
    """The result of reading a checkpoint: its entries and what the store gained.

    ``layout`` is the file's layout; for a folder it is a summary (format,
    total size, metadata, no segments) and ``files`` lists the files.
    """

    layout: Layout
    tensors: list[Entry]
    blobs: list[Entry]
    id: str
    objects_written: int
    bytes_written: int
    files: list[FileEntry] = field(default_factory=list)
    # The stat taken before any byte was read (a folder's fingerprint of those stats):
    # the one the stat cache may record, since these are the bytes that were hashed.
    stat: os.stat_result | None = None
    # Per pickled file ("" for a file checkpoint, else its path in the folder): its globals.
    pickle_globals: dict[str, tuple[PickleGlobal, ...]] = field(default_factory=dict)


def stat_path(path: Path) -> os.stat_result:
    """``os.stat`` for a file; for a folder, a fingerprint of all its files (for the stat cache)."""
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        from gitsnap.formats.folder import fingerprint

        return fingerprint(path)
    return st


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.chunk: bytearray | None = None

    def get(self, size: int) -> bytearray:
        if self.chunk is None or len(self.chunk) < size:
            self.chunk = bytearray(size)
        return self.chunk


def _pread_exact(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.preadv(fd, [view], offset)
        if n == 0:
            raise ConcurrentChange("the checkpoint got shorter while it was being read")
        view = view[n:]
        offset += n


def _stats_module() -> Any:
    from gitsnap import stats

    return stats


def _stats_for(dtype: str | None) -> Any:
    if dtype is None:
        return None
    from gitsnap import stats

    return stats.TensorStats(dtype) if stats.supports(dtype) else None


@dataclass
class _Unit:
    """One file being read: its place in a folder (``rel``), its layout, its open descriptor."""

    rel: str | None
    path: Path
    layout: Layout
    fd: int = -1
    st: os.stat_result | None = None


class _Reader:
    def __init__(
        self,
        store: ObjectStore | None,
        known_stats: dict[tuple[str, str], Stats],
        likely_same: set[tuple[str, str, int]],
        want_stats: bool,
    ) -> None:
        self.store = store
        self.known_stats = known_stats
        self.likely_same = likely_same
        self.want_stats = want_stats
        self.bufs = _Buffers()
        self.lock = threading.Lock()
        self.objects_written = 0
        self.bytes_written = 0
        self._written: set[str] = set()

    def _wrote(self, oid: str, size: int) -> None:
        # Two workers may store the same new object at once (identical tensors, such as
        # an optimizer's per-parameter ``step``): the store's rename makes that harmless,
        # and it is counted once.
        with self.lock:
            if oid not in self._written:
                self._written.add(oid)
                self.objects_written += 1
                self.bytes_written += size

    def _wrote_many(self, pairs: list[tuple[str, int]]) -> None:
        with self.lock:
            for oid, size in pairs:
                if oid not in self._written:
                    self._written.add(oid)
                    self.objects_written += 1
                    self.bytes_written += size

    def written(self) -> set[str]:
        with self.lock:
            return set(self._written)

    def _acc(self, seg: Segment) -> Any:
        return _stats_for(seg.tensor.dtype) if self.want_stats and seg.tensor is not None else None

    def _known(self, oid: str, seg: Segment) -> Stats | None:
        return self.known_stats.get((oid, seg.tensor.dtype)) if seg.tensor is not None else None

    def read(self, unit: _Unit, seg: Segment) -> tuple[str, Stats]:
        import blake3

        fd = unit.fd
        if seg.size <= SMALL:
            view = memoryview(self.bufs.get(max(SMALL, CHUNK)))[: seg.size]
            _pread_exact(fd, view, seg.offset)
            oid = blake3.blake3(view).hexdigest()
            # A packed object is written from the bytes just hashed; a loose one is
            # copied by the kernel (cheaper for megabytes).
            if self.store is not None and (
                self.store.put(oid, view)
                if seg.size < PACKED
                else self.store.put_range(oid, fd, seg.offset, seg.size)
            ):
                self._wrote(oid, seg.size)
            stats = self._known(oid, seg)
            if stats is None:
                acc = self._acc(seg)
                if acc is not None:
                    acc.update(view)
                    stats = acc.result()
            return oid, stats or {}
        # A big segment streams: hash (and stat) it in one pass, then, if the store
        # lacks it, copy it in the kernel. The final size/mtime check of ingest()
        # catches a file that changed between the two.
        acc = self._acc(seg)
        if acc is not None and self.store is not None:
            key = (unit.rel or "", seg.tensor.name if seg.tensor else f"@{seg.offset}", seg.size)
            if key in self.likely_same:
                acc = None  # probably unchanged: its stats are known; computed below if not
        oid = self._stream(fd, seg.offset, seg.size, stats=acc)
        stats = acc.result() if acc is not None else self._known(oid, seg)
        if stats is None and (acc := self._acc(seg)) is not None:
            self._stream(fd, seg.offset, seg.size, stats=acc)
            stats = acc.result()
        if self.store is not None and self.store.put_range(oid, fd, seg.offset, seg.size):
            self._wrote(oid, seg.size)
        return oid, stats or {}

    def read_run(self, unit: _Unit, segs: list[Segment]) -> list[tuple[str, Stats]]:
        """:meth:`read` for a run of small segments close together in one file (see
        :func:`_small_runs`): one read for the run, the new objects stored under one lock,
        and the stats of each stretch of adjacent tensors of one dtype and size computed
        together (:func:`gitsnap.stats.many`, bit for bit what :meth:`read` computes)."""
        import blake3

        start = segs[0].offset
        end = max(s.offset + s.size for s in segs)
        view = memoryview(self.bufs.get(max(SMALL, CHUNK, end - start)))[: end - start]
        _pread_exact(unit.fd, view, start)
        pieces = [view[s.offset - start : s.offset - start + s.size] for s in segs]
        oids = [blake3.blake3(p).hexdigest() for p in pieces]
        if self.store is not None:
            new = self.store.put_many(list(zip(oids, pieces, strict=True)))
            self._wrote_many([(o, s.size) for o, s, n in zip(oids, segs, new, strict=True) if n])
        found: list[Stats | None] = [self._known(o, s) for o, s in zip(oids, segs, strict=True)]
        i = 0
        while i < len(segs):
            seg = segs[i]
            if found[i] is not None or self._acc(seg) is None:
                i += 1
                continue
            assert seg.tensor is not None
            dtype, size = seg.tensor.dtype, seg.size
            j = i + 1
            while (
                j < len(segs)
                and found[j] is None
                and getattr(segs[j].tensor, "dtype", None) == dtype
                and segs[j].size == size
                and segs[j].offset == segs[j - 1].offset + size
            ):
                j += 1
            item = _stats_module().DTYPE_SIZES[dtype]
            n = size // item
            if j - i > 1 and size % item == 0 and 0 < n <= _stats_module().BLOCK:
                lo = seg.offset - start
                found[i:j] = _stats_module().many(dtype, view[lo : lo + (j - i) * size], n)
            else:
                for k in range(i, j):
                    acc = self._acc(segs[k])
                    acc.update(pieces[k])
                    found[k] = acc.result()
            i = j
        return [(o, st or {}) for o, st in zip(oids, found, strict=True)]

    def _stream(self, fd: int, offset: int, size: int, stats: Any) -> str:
        import blake3

        buf = memoryview(self.bufs.get(max(SMALL, CHUNK)))[:CHUNK]
        # A big tensor (an embedding can be a quarter of the file) hashes on every core.
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO) if size > SMALL else blake3.blake3()
        pos, end = offset, offset + size
        while pos < end:
            view = buf[: min(CHUNK, end - pos)]
            _pread_exact(fd, view, pos)
            hasher.update(view)
            if stats is not None:
                stats.update(view)
            pos += len(view)
        return str(hasher.hexdigest())

    def read_view(
        self, unit: _Unit, view: View, same: tuple[str, Stats, str | None] | None
    ) -> tuple[str, Stats]:
        """Content id and stats of a view.

        ``same`` is (oid, stats, dtype) of a segment that spans exactly the same bytes, if any.
        """
        dtype = view.tensor.dtype
        plain = view.stride is None
        if same is not None:
            oid, seg_stats, seg_dtype = same
            if seg_dtype == dtype and plain:
                return oid, seg_stats  # tied weights: the very bytes of a tensor segment
        else:
            acc = _stats_for(dtype) if self.want_stats and plain else None
            oid = self._stream(unit.fd, view.offset, view.size, stats=acc)
            if acc is not None:
                return oid, acc.result()
        if not self.want_stats:
            return oid, {}
        known = self.known_stats.get((oid, dtype)) if plain else None
        if known is not None:
            return oid, known
        return oid, _strided_stats(unit.fd, view) or {}


def _strided_stats(fd: int, view: View) -> Stats | None:
    """Stats of a non-contiguous (or re-typed) view, through a read-only map of just its span."""
    import mmap

    import numpy as np

    from gitsnap import stats

    info = view.tensor
    if not stats.supports(info.dtype):
        return None
    item = stats.DTYPE_SIZES[info.dtype]
    acc = stats.TensorStats(info.dtype)
    count = 1
    for d in info.shape:
        count *= d
    if count == 0 or view.size == 0:
        return acc.result()
    strides = view.stride if view.stride is not None else contiguous_strides(info.shape)
    start = view.offset - view.offset % mmap.ALLOCATIONGRANULARITY
    mm = mmap.mmap(fd, view.offset + view.size - start, offset=start, access=mmap.ACCESS_READ)
    try:
        flat = np.frombuffer(mm, dtype=np.dtype(f"u{item}") if item > 1 else np.uint8,
                             count=view.size // item, offset=view.offset - start)  # fmt: skip
        arr = np.lib.stride_tricks.as_strided(
            flat, shape=info.shape, strides=tuple(s * item for s in strides), writeable=False
        )
        if arr.ndim == 0:
            acc.update(np.ascontiguousarray(arr).tobytes())
        else:
            inner = max(1, count // max(1, info.shape[0]))
            rows = max(1, (1 << 20) // inner)
            for i in range(0, info.shape[0], rows):
                acc.update(np.ascontiguousarray(arr[i : i + rows]).view(np.uint8).data)
        del arr, flat
    finally:
        mm.close()
    return acc.result()


def _units(path: Path) -> tuple[list[_Unit], Layout]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PathError(
            f"{path}: no such file",
            hint="check the path (git snap status lists tracked checkpoints)",
        ) from None
    if stat.S_ISDIR(st.st_mode):
        folder = read_folder(path)
        units = [_Unit(rel, path / rel, layout) for rel, layout in folder.files]
        return units, Layout(folder.format, folder.size, [], folder.metadata)
    if not stat.S_ISREG(st.st_mode):
        raise PathError(
            f"{path}: not a regular file", hint="give the path of a checkpoint file or folder"
        )
    layout = read_layout(path)
    return [_Unit(None, path, layout)], layout


def ingest(
    path: Path,
    store: ObjectStore | None,
    *,
    previous: Pointer | None = None,
    want_stats: bool = True,
    workers: int | None = None,
    judge: Callable[[dict[str, tuple[PickleGlobal, ...]]], None] | None = None,
) -> Ingested:
    """Segment ``path`` (file or folder), hash every segment, and (with a store) add new objects.

    With ``store=None`` nothing is written and no stats are computed unless
    asked: that is the hash-only path of ``status``, which needs only the id,
    so views (which are not part of the id) are then left out too.
    ``judge`` sees each pickled file's globals once the layouts are read and
    before any byte is stored; it refuses by raising.
    """
    # Stat before reading the layouts: a file rewritten while its layout is
    # being read must not pass for unchanged.
    befores: dict[Path, os.stat_result] = {}
    before_all: os.stat_result | None = None
    if path.is_dir():
        from gitsnap.formats.folder import fingerprint, list_files

        rel_stats = {rel: (path / rel).stat() for rel in list_files(path)}
        befores = {path / rel: st for rel, st in rel_stats.items()}
        before_all = fingerprint(path, rel_stats)
    elif path.exists():
        befores[path] = before_all = path.stat()
    try:
        return _ingest(path, store, previous, want_stats, workers, befores, before_all, judge)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full(
                err,
                store.root if store is not None else path,
                f"nothing was saved: {path} and its pointer were left as they were",
            ) from None
        raise


def _ingest(  # noqa: PLR0917 (the private half of ingest: its arguments, in order)
    path: Path,
    store: ObjectStore | None,
    previous: Pointer | None,
    want_stats: bool,
    workers: int | None,
    befores: dict[Path, os.stat_result],
    before_all: os.stat_result | None,
    judge: Callable[[dict[str, tuple[PickleGlobal, ...]]], None] | None,
) -> Ingested:
    units, summary = _units(path)
    pickle_globals = {
        unit.rel or "": unit.layout.pickle_globals for unit in units if unit.layout.pickle_globals
    }
    if judge is not None:
        judge(pickle_globals)
    known: dict[tuple[str, str], Stats] = {}
    likely: set[tuple[str, str, int]] = set()
    if previous is not None:
        for e in previous.tensors:
            if e.stats and e.stride is None:
                known[(e.oid, e.dtype or "")] = e.stats
            if not e.view:
                likely.add((e.file or "", e.name or "", e.size))
        for e in previous.blobs:
            likely.add((e.file or "", f"@{e.offset}", e.size))
    # Small objects go into one new pack, published only once every file read is
    # known unchanged (its bytes matched their ids as they were read).
    small = sum(1 for unit in units for seg in unit.layout.segments if seg.size < PACKED)
    with store.batch(small) if store is not None else contextlib.nullcontext():
        return _read_all(path, store, units, summary, pickle_globals, known, likely,
                         want_stats, workers, befores, before_all)  # fmt: skip


def _read_all(  # noqa: PLR0917 (the reading half of _ingest: its state, in order)
    path: Path,
    store: ObjectStore | None,
    units: list[_Unit],
    summary: Layout,
    pickle_globals: dict[str, tuple[PickleGlobal, ...]],
    known: dict[tuple[str, str], Stats],
    likely: set[tuple[str, str, int]],
    want_stats: bool,
    workers: int | None,
    befores: dict[Path, os.stat_result],
    before_all: os.stat_result | None,
) -> Ingested:
    reader = _Reader(store, known, likely, want_stats)
    items = [(u, s) for u, unit in enumerate(units) for s in range(len(unit.layout.segments))]
    items.sort(key=lambda it: -units[it[0]].layout.segments[it[1]].size)
    results: dict[tuple[int, int], tuple[str, Stats]] = {}
    view_results: dict[tuple[int, int], tuple[str, Stats]] = {}
    try:
        for unit in units:
            unit.fd = os.open(unit.path, os.O_RDONLY)
            unit.st = befores.get(unit.path) or os.fstat(unit.fd)

        big = [it for it in items if units[it[0]].layout.segments[it[1]].size >= PACKED]
        runs = _small_runs(units)

        def work(i: int) -> None:
            if i < len(big):
                u, s = big[i]
                results[big[i]] = reader.read(units[u], units[u].layout.segments[s])
                return
            u, idx = runs[i - len(big)]
            segs = units[u].layout.segments
            for s, r in zip(idx, reader.read_run(units[u], [segs[s] for s in idx]), strict=True):
                results[(u, s)] = r

        _run_parallel(work, range(len(big) + len(runs)), workers)

        view_items: list[tuple[int, int, tuple[str, Stats, str | None] | None]] = []
        for u, unit in enumerate(units):
            if store is None and not want_stats:
                break
            spans = {
                (seg.offset, seg.size): (*results[(u, s)], seg.tensor.dtype if seg.tensor else None)
                for s, seg in enumerate(unit.layout.segments)
            }
            for v, view in enumerate(unit.layout.views):
                view_items.append((u, v, spans.get((view.offset, view.size))))

        def view_work(i: int) -> None:
            u, v, same = view_items[i]
            view_results[(u, v)] = reader.read_view(units[u], units[u].layout.views[v], same)

        _run_parallel(view_work, range(len(view_items)), workers)
    finally:
        for unit in units:
            if unit.fd >= 0:
                os.close(unit.fd)
    for unit in units:
        after = unit.path.stat()
        before = unit.st
        assert before is not None
        # The inode too: a file renamed into place (rsync -a, cp -p) may keep size and mtime.
        if _identity(after) != _identity(before):
            if store is not None:
                store.discard(reader.written())  # their bytes may not match their ids
            raise ConcurrentChange(f"{unit.path} changed while it was being read")
    if path.is_dir():
        from gitsnap.formats.folder import list_files

        if [path / rel for rel in list_files(path)] != [unit.path for unit in units]:
            raise ConcurrentChange(f"{path}: files were added or removed while it was being read")

    tensors: list[Entry] = []
    blobs: list[Entry] = []
    for u, unit in enumerate(units):
        for s, seg in enumerate(unit.layout.segments):
            oid, stats = results[(u, s)]
            if seg.tensor is not None:
                tensors.append(
                    Entry(
                        offset=seg.offset,
                        size=seg.size,
                        oid=oid,
                        name=seg.tensor.name,
                        dtype=seg.tensor.dtype,
                        shape=seg.tensor.shape,
                        stats=_rounded(stats),
                        file=unit.rel,
                    )
                )
            else:
                blobs.append(
                    Entry(offset=seg.offset, size=seg.size, oid=oid, role=seg.role, file=unit.rel)
                )
        for v, view in enumerate(unit.layout.views):
            if (u, v) not in view_results:
                continue
            oid, stats = view_results[(u, v)]
            tensors.append(
                Entry(
                    offset=view.offset,
                    size=view.size,
                    oid=oid,
                    name=view.tensor.name,
                    dtype=view.tensor.dtype,
                    shape=view.tensor.shape,
                    stats=_rounded(stats),
                    file=unit.rel,
                    view=True,
                    stride=view.stride,
                )
            )
    tensors.sort(key=lambda e: (e.file or "", e.offset, e.view, e.size))
    files = [
        FileEntry(unit.rel, unit.layout.size, unit.layout.format, executable=_executable(unit.st))
        for unit in units
        if unit.rel is not None
    ]
    return Ingested(
        layout=summary,
        tensors=tensors,
        blobs=blobs,
        id=layout_id([*tensors, *blobs], summary.size, files if path.is_dir() else None),
        objects_written=reader.objects_written,
        bytes_written=reader.bytes_written,
        files=files,
        stat=before_all,
        pickle_globals=pickle_globals,
    )


def _executable(st: os.stat_result | None) -> bool:
    """Whether a folder's file is recorded as executable: its owner's x bit, as git reads it."""
    return st is not None and bool(st.st_mode & stat.S_IXUSR)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def _rounded(stats: Stats) -> Stats:
    return {k: (round_stat(v) if isinstance(v, float) else v) for k, v in stats.items()}


def _run_parallel(fn: Callable[[int], None], items: Sequence[int], workers: int | None) -> None:
    n = workers or default_workers()
    if n <= 1 or len(items) <= 1:
        for i in items:
            fn(i)
        return
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="gitsnap") as pool:
        for fut in [pool.submit(fn, i) for i in items]:
            fut.result()  # re-raise the first error


# A run of small segments read at once: a few MiB (per-thread buffers are SMALL), and
# gaps up to 64 KiB read through (safetensors packs tensors back to back).
RUN = 4 * 1024 * 1024
RUN_GAP = 64 * 1024


def _small_runs(units: Sequence[_Unit]) -> list[tuple[int, list[int]]]:
    """The segments below the pack threshold, as runs ``(unit, segment indexes)`` of
    segments close together in one file, in file order. One task per run, not per
    segment: 20,000 tensors of 16 KiB are 80 reads and 80 tasks, and the work per run
    (a read, the stats of a stack of tensors) is long enough to run outside the GIL."""
    out: list[tuple[int, list[int]]] = []
    for u, unit in enumerate(units):
        segs = unit.layout.segments
        order = sorted((i for i, seg in enumerate(segs) if seg.size < PACKED),
                       key=lambda i: segs[i].offset)  # fmt: skip
        cur: list[int] = []
        lo = hi = 0
        for i in order:
            seg = segs[i]
            end = seg.offset + seg.size
            if cur and (seg.offset - hi > RUN_GAP or max(hi, end) - lo > RUN):
                out.append((u, cur))
                cur = []
            if not cur:
                lo = hi = seg.offset
            cur.append(i)
            hi = max(hi, end)
        if cur:
            out.append((u, cur))
    return out


def _run_grouped(
    fn: Callable[[int], None], order: Sequence[int], sizes: Sequence[int], workers: int | None
) -> None:
    """:func:`_run_parallel` with objects below the pack threshold in groups of 256: a task
    each costs more than its work (measured: 20,000 tensors of 16 KiB restored faster in
    groups), and two threads only contend for the GIL over them."""
    groups = [[i] for i in order if sizes[i] >= PACKED]
    small = [i for i in order if sizes[i] < PACKED]
    groups += [small[k : k + 256] for k in range(0, len(small), 256)]

    def work(g: int) -> None:
        for i in groups[g]:
            fn(i)

    _run_parallel(work, range(len(groups)), workers)


def _packed_runs(
    store: ObjectStore, entries: Sequence[Entry]
) -> tuple[list[tuple[Any, list[tuple[int, Any]]]], list[int]]:
    """Split a restore's entries: runs of small objects stored raw in one local pack
    (``(pack, [(entry index, pack entry)])``, each at most :data:`RUN` bytes of the pack
    with gaps up to :data:`RUN_GAP`), and the indexes of the others."""
    from gitsnap import codec

    rest: list[int] = []
    found: list[tuple[Any, Any, int]] = []
    packs = store.packs() if store.packs_dir.is_dir() else None
    for i, e in enumerate(entries):
        if packs is None or e.size >= PACKED or not packs.has(e.oid):
            rest.append(i)
            continue
        p = packs.pack_of(e.oid)
        pe = p.entries[e.oid]
        if pe.codec != codec.RAW or pe.length != codec.HEADER_SIZE + pe.raw_size:
            rest.append(i)  # the per-object path decodes it, or names the damage
            continue
        found.append((p, pe, i))
    found.sort(key=lambda t: (t[0].name, t[1].offset))
    runs: list[tuple[Any, list[tuple[int, Any]]]] = []
    for p, pe, i in found:
        if runs and runs[-1][0] is p:
            members = runs[-1][1]
            first, last = members[0][1], members[-1][1]
            if (
                pe.offset - (last.offset + last.length) <= RUN_GAP
                and pe.offset + pe.length - first.offset <= RUN
            ):
                members.append((i, pe))
                continue
        runs.append((p, [(i, pe)]))
    return runs, rest


def missing_objects(ptr: Pointer, store: ObjectStore) -> list[Entry]:
    segments = ptr.segments()
    held = store.held(e.oid for e in segments)
    return [e for e in segments if e.oid not in held]


def restore(
    ptr: Pointer,
    store: ObjectStore,
    dest: Path,
    *,
    workers: int | None = None,
    root: Path | None = None,
    force: bool = False,
    forbidden: Sequence[Path] = (),
) -> list[str]:
    """Rebuild ``dest`` (a file, or a folder for a folder pointer) byte-exactly from objects.

    Atomic and verified: everything is written under a temp name (in the
    repository's temp area, :mod:`gitsnap.fsutil`) and renamed into place
    only when every object re-hashed to its id. A folder is rebuilt whole, so
    files of the old snapshot that are not in the new one (the extra shards
    of a different sharding) disappear from it; callers check first that
    nothing unsaved would be lost. Entries of the folder that are not
    gitsnap's (a nested ``.git``, a fifo, see
    :func:`gitsnap.formats.folder.foreign_entries`) are carried over into the
    new folder; one that would have to go (the snapshot has a file where it
    is) is a :class:`DirtyCheckpoint` unless ``force``.

    ``root`` is the work tree ``dest`` lies in: every step from it to
    ``dest`` is checked by :func:`gitsnap.paths.safe_target` (no ``.git``, no
    symlink out of the work tree, nothing in ``forbidden``). Without it,
    ``dest`` is taken as a place the caller chose (an export folder), unless
    it ends with the pointer's own path, whose work tree it then is.

    Returns the foreign entries that were removed (only ever with ``force``).
    """
    from gitsnap.fsutil import Scratch, git_dir_of, temp_area
    from gitsnap.paths import HOSTILE_HINT, reserved_component, safe_target

    if reserved_component([dest.name]) is not None:
        raise PathError(f"{dest}: gitsnap never writes a .git or .dvc", hint=HOSTILE_HINT)
    if root is None and ptr.path and dest.as_posix().endswith("/" + ptr.path):
        root = Path(dest.as_posix()[: -len(ptr.path) - 1])
    if root is not None:
        root = root.resolve()
        try:
            rel = dest.relative_to(root).as_posix()
        except ValueError:
            raise PathError(f"{dest}: outside the work tree {root}", hint=HOSTILE_HINT) from None
        dest = safe_target(root, rel, f"{ptr.path or rel}", forbidden=forbidden)
    _check_files(ptr)
    entries = ptr.segments()
    missing = missing_objects(ptr, store)
    if missing:
        names = ", ".join(e.name or e.role or "blob" for e in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ObjectMissing(
            f"{dest}: {len(missing)} object(s) missing from the local store ({names}{more})",
            hint="fetch them from the remote: git snap pull (or git snap fetch)",
        )
    # Before anything is allocated: a size no object has (up to 2**63, which
    # ftruncate cannot take) is the pointer's fault, named as such.
    store.check_sizes(((e.oid, e.size, e.label) for e in entries), f"{dest}: ")
    keep, dropped = _foreign_plan(ptr, dest, force)
    git_dir = git_dir_of(root) if root is not None else None
    fds: dict[str | None, int] = {}
    with Scratch(temp_area(git_dir) if git_dir is not None else None) as scratch:
        tmp: Path | None = None
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = scratch.path(dest)
            if ptr.files:
                tmp.mkdir()
                for f in ptr.files:
                    target = tmp / f.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fds[f.path] = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                    os.ftruncate(fds[f.path], f.size)
            else:
                fds[None] = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                os.ftruncate(fds[None], ptr.size)
            # One writer per file at a time: writes to one file take its inode lock, on
            # which the kernel spins (5% of a pull's CPU in a profile); behind a Python
            # lock the other worker sleeps, or hashes what it copied.
            writing = {file: threading.Lock() for file in fds}

            def work(i: int) -> None:
                # The kernel copies the object into place, then the bytes are re-hashed
                # as they landed in the temp file (D9: what is verified is exactly what
                # the rename publishes). Measured on 1 GiB here: ~1.0 s of CPU, against
                # 3-3.5 s for reading, hashing and pwrite-ing through Python buffers.
                e = entries[i]
                fd = fds[e.file]
                if e.size < PACKED:
                    small(e, fd)
                    return
                with store.open(e.oid, e.label) as src, writing[e.file]:
                    stored = src.length
                    copied = copy_range(
                        src.fd, fd, min(e.size, src.length), src_offset=src.offset,
                        dst_offset=e.offset,
                    )  # fmt: skip
                digest, seen = hash_range(fd, e.offset, copied)
                if stored != e.size or seen != e.size or digest != e.oid:
                    # The store decides whom to blame: the object, or a pointer that lies.
                    raise store.blame(e.oid, e.size, e.label, f"{dest} (left untouched): ")

            def small(e: Entry, fd: int) -> None:
                # Below the pack threshold a kernel copy and a mapped re-hash cost more
                # than the bytes (20,000 x 16 KiB: 1.9 s against 0.7 s): read the object
                # into memory, hash exactly those bytes, write exactly them.
                import blake3

                with store.open(e.oid, e.label) as src:
                    stored = src.length
                    data = os.pread(src.fd, min(src.length, e.size), src.offset)
                digest, seen = blake3.blake3(data).hexdigest(), len(data)
                if stored == e.size and seen == e.size and digest == e.oid:
                    view = memoryview(data)
                    pos = e.offset
                    while view:
                        n = os.pwrite(fd, view, pos)
                        view, pos = view[n:], pos + n
                    return
                raise store.blame(e.oid, e.size, e.label, f"{dest} (left untouched): ")

            runs, rest = _packed_runs(store, entries)

            def run_work(r: int) -> None:
                # A run of raw members of one local pack: one read, each member re-hashed
                # from memory, written where its entry says (20,000 x 16 KiB: 80 reads).
                import blake3

                p, members = runs[r]
                start = members[0][1].offset
                end = max(pe.offset + pe.length for _, pe in members)
                src = os.dup(p.fd)  # the pack may be closed meanwhile (a reload)
                try:
                    data = memoryview(os.pread(src, end - start, start))
                finally:
                    os.close(src)
                # Verified members whose places follow one another are written with
                # one call (a run of 16 KiB tensors: one pwritev, not one write each).
                spans: list[tuple[str | None, int, list[memoryview]]] = []
                end = -1  # where the last span ends
                for i, pe in members:
                    e = entries[i]
                    lo = pe.offset - start + HEADER
                    piece = data[lo : lo + pe.raw_size]
                    if (
                        pe.raw_size != e.size
                        or len(piece) != e.size
                        or blake3.blake3(piece).hexdigest() != e.oid
                    ):
                        raise store.blame(e.oid, e.size, e.label, f"{dest} (left untouched): ")
                    if spans and spans[-1][0] == e.file and end == e.offset:
                        spans[-1][2].append(piece)
                    else:
                        spans.append((e.file, e.offset, [piece]))
                    end = e.offset + e.size
                for file, at, pieces in spans:
                    with writing[file]:
                        pwrite_all(fds[file], pieces, at)

            if runs:
                _run_parallel(run_work, range(len(runs)), workers)
            order = sorted(rest, key=lambda i: -entries[i].size)
            _run_grouped(work, order, [e.size for e in entries], workers)
            executable = {f.path for f in ptr.files if f.executable}
            for file, fd in list(fds.items()):
                os.fchmod(fd, (0o755 if file in executable else 0o644) & ~umask())
                os.close(fd)
                del fds[file]
            _swap_into_place(tmp, dest, scratch, keep)
        except BaseException as err:
            for fd in fds.values():
                os.close(fd)
            if tmp is not None:
                _remove(tmp)
            if is_disk_full(err):
                assert isinstance(err, OSError)
                raise disk_full(err, dest, "the workspace was left untouched") from None
            if isinstance(err, (FileExistsError, NotADirectoryError)):
                raise PathError(
                    f"{dest}: a file is where a folder must be ({err.filename}); "
                    "the workspace was left untouched",
                    hint="move that file away, then run the command again",
                ) from None
            raise
    return dropped


def _check_files(ptr: Pointer) -> None:
    """A folder pointer's file list: allowed paths, and no path both a file and a folder."""
    from gitsnap.paths import HOSTILE_HINT, check_relpath

    listed = {check_relpath(f.path, f"{ptr.path}: a file entry") for f in ptr.files}
    for p in listed:
        parts = p.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in listed:
                raise PathError(
                    f"{ptr.path}: the pointer lists both {prefix!r} and {p!r}; "
                    "one path cannot be a file and a folder",
                    hint=HOSTILE_HINT,
                )


def _foreign_plan(ptr: Pointer, dest: Path, force: bool) -> tuple[list[str], list[str]]:
    """(foreign entries of folder ``dest`` the restore carries over, those it has to remove).

    Refuses, without ``force``, when any would have to be removed (D19).
    """
    if not dest.is_dir() or dest.is_symlink():
        return [], []
    from gitsnap.formats.folder import foreign_entries

    foreign = foreign_entries(dest)
    if not foreign:
        return [], []
    if not ptr.files:
        clash = foreign  # a file takes the folder's place: nothing in it can stay
    else:
        files = {f.path for f in ptr.files}
        dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}

        def clashes(e: str) -> bool:
            parts = e.split("/")
            above = {"/".join(parts[:i]) for i in range(1, len(parts))}
            return e in files or e in dirs or bool(above & files)

        clash = [e for e in foreign if clashes(e)]
    if clash and not force:
        shown = ", ".join(clash[:5]) + (f" and {len(clash) - 5} more" if len(clash) > 5 else "")
        raise DirtyCheckpoint(
            f"{dest} holds {len(clash)} entr{'y' if len(clash) == 1 else 'ies'} that gitsnap "
            f"does not own and the snapshot would replace: {shown}",
            hint="move them out of the folder first, or pass --force to delete them",
        )
    return [e for e in foreign if e not in clash], clash


def _swap_into_place(new: Path, dest: Path, scratch: Any, keep: Sequence[str] = ()) -> None:
    """Rename ``new`` to ``dest``; whatever was at ``dest`` (file, folder, link) goes after.

    ``keep``: entries of the old folder moved into the new one first (and
    back, if the swap fails).
    """
    from gitsnap.fsutil import OLD_SUFFIX

    if not ((new.is_dir() or (dest.is_dir() and not dest.is_symlink())) and os.path.lexists(dest)):
        new.replace(dest)
        return
    # A folder cannot be renamed over a non-empty one: move the old aside first.
    old = scratch.path(dest, OLD_SUFFIX)
    moved: list[str] = []

    def put_back() -> None:
        for rel in reversed(moved):
            with contextlib.suppress(OSError):
                (new / rel).rename(dest / rel)

    try:
        for rel in keep:
            (new / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).rename(new / rel)
            moved.append(rel)
        dest.replace(old)
    except BaseException:
        put_back()
        raise
    try:
        new.replace(dest)
    except BaseException:
        old.replace(dest)
        put_back()
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------ saved-but-uncommitted


def unrecorded_snapshot(root: Path, rel: str, raw: bytes) -> str | None:
    """The snapshot id in work-tree pointer bytes ``raw`` when no commit records it, else None.

    "Recorded" means: some commit reachable from a ref or a reflog (what
    ``log`` shows and ``gc`` keeps) has a pointer at ``rel`` with this very
    blob or this snapshot id. Replacing an unrecorded pointer would lose the
    only reference to a snapshot (DESIGN D19). A pointer that does not parse
    records nothing and is None.
    """
    from gitsnap import gitio
    from gitsnap.errors import PointerError
    from gitsnap.pointer import SUFFIX, loads

    try:
        snapshot_id = loads(raw, source=rel + SUFFIX).id
    except PointerError:
        return None
    if not gitio.has_commits(root):
        return snapshot_id
    blob = gitio.run(["hash-object", "--stdin"], root, input=raw).stdout.decode().strip()
    log = gitio.run(
        ["log", "--all", "--reflog", "--format=", "--raw", "--no-abbrev", "--no-renames",
         "--full-history", "--sparse", "--diff-merges=first-parent", "--root", "-z",
         "--", rel + SUFFIX],
        root,
    ).stdout.decode(errors="surrogateescape")  # fmt: skip
    versions = {
        fields[3]
        for tok in log.split("\0")
        if tok.lstrip("\n").startswith(":") and len(fields := tok.split()) > 3
    }
    if blob in versions:
        return None
    blobs = gitio.cat_blobs(root, sorted(v for v in versions if v.strip("0")))
    for data in blobs.values():
        if data is None:
            continue
        try:
            if loads(data, source=rel + SUFFIX).id == snapshot_id:
                return None
        except PointerError:
            continue
    return snapshot_id


def guard_uncommitted(
    root: Path, rel: str, new_raw: bytes, new_id: str, *, force: bool, shown: str
) -> list[str]:
    """Before a checkout replaces work-tree pointer ``rel`` by ``new_raw`` (DESIGN D19).

    Raises :class:`DirtyCheckpoint` when the pointer there records a snapshot
    no commit has (:func:`unrecorded_snapshot`); with ``force``, returns what
    is dropped, for the command to say. ``shown`` is ``rel`` as the user sees it.
    """
    from gitsnap.pointer import SUFFIX

    try:
        working = pointer_bytes(root / (rel + SUFFIX))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    lost = unrecorded_snapshot(root, rel, working) if working != new_raw else None
    if lost is None or lost == new_id:
        return []
    if not force:
        raise DirtyCheckpoint(
            f"{shown}{SUFFIX} records snapshot {lost[:12]}, which no commit has; replacing "
            "the pointer would lose it (log would forget it, gc would delete its objects)",
            hint=f"commit it first (git add {shown}{SUFFIX} && git commit), "
            "or pass --force to drop it",
        )
    from gitsnap import journal

    journal.record_root(root, rel, working, lost, "checkout")  # log --all-saves still lists it
    return [
        f"uncommitted snapshot {lost[:12]} of {shown} (its pointer was replaced; "
        "kept in the snapshot journal: git snap log --all-saves)"
    ]


def pointer_of(
    ing: Ingested,
    rel: str,
    *,
    parent: str | None,
    message: str = "",
    metrics: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    created: str = "",
    tool: dict[str, Any] | None = None,
    env: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    allowed_unsafe: bool = False,
) -> Pointer:
    """The pointer that records ingest ``ing`` of checkpoint ``rel``.

    The layout (format, size, entries, metadata, a folder's files, each
    pickled file's judged globals) comes from the ingest; the record (lineage,
    message, metrics, params, when, by what tools, keys of a newer version to
    keep, whether an unsafe pickle was allowed) from the caller.
    """
    pickle = {
        key: PickleRecord(
            {g.name: g.kind for g in found},
            allowed_unsafe and any(g.kind == "unsafe" for g in found),
        )
        for key, found in ing.pickle_globals.items()
    }
    return Pointer(
        id=ing.id,
        parent=parent,
        path=rel,
        format=ing.layout.format,
        size=ing.layout.size,
        tensors=ing.tensors,
        blobs=ing.blobs,
        created=created,
        message=message,
        metrics=dict(metrics or {}),
        params=dict(params or {}),
        tool=dict(tool or {}),
        env=dict(env or {}),
        metadata=dict(ing.layout.metadata),
        extra=dict(extra or {}),
        files=ing.files,
        pickle=pickle,
    )


__all__ = [
    "Ingested",
    "default_workers",
    "guard_uncommitted",
    "ingest",
    "missing_objects",
    "pointer_of",
    "restore",
    "stat_path",
    "unrecorded_snapshot",
]
