"""Value diffs (``git snap diff --values``): stream two objects in lockstep and compare.

:func:`compute_values` reads the objects of every modified tensor, block by
block through a few reused buffers (DESIGN D11), widens both sides to float
with :func:`gitsnap.stats.widener` (BF16 by a shift, F8 by a table) and
fills in each change's :class:`gitsnap.diff.ValueDelta`. Every object is
re-hashed while it streams, so a corrupt object is reported, never silently
diffed. numpy is imported only here, and only when values are asked for: a
structural diff stays light (DESIGN D10).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from gitsnap.diff import TensorChange, TensorSide, ValueDelta
from gitsnap.errors import RESAVE, ConcurrentChange, PointerError
from gitsnap.hashing import Digest, fd_reader, verified
from gitsnap.store import ObjectStore


class ByteSource(Protocol):
    """Where one side's tensor bytes come from. ``chunks`` yields them verified."""

    def chunks(self, side: TensorSide, label: str, buf: bytearray) -> Iterator[memoryview]: ...


class StoreSource:
    """Objects in the local store, re-hashed as they stream (``store.iter_verified``)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def missing(self, sides: Sequence[TensorSide]) -> list[str]:
        return sorted({s.oid for s in sides if not self.store.has(s.oid)})

    def chunks(self, side: TensorSide, label: str, buf: bytearray) -> Iterator[memoryview]:
        return self.store.iter_verified(side.oid, side.size, label, buf)


class FileSource:
    """A checkpoint read at each tensor's offset; the bytes must hash to the entry's id.

    Used for the working tree: its pointer (or a fresh ingest) says where each
    tensor lies and what it hashes to; a mismatch means the file changed since.
    ``path`` is the checkpoint file, or the folder of a folder checkpoint
    (entries then name their ``file``).
    """

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = os.fspath(path)
        self._fds: dict[str | None, int] = {}
        self._lock = threading.Lock()

    def _fd(self, file: str | None) -> int:
        with self._lock:
            fd = self._fds.get(file)
            if fd is None:
                fd = os.open(self.path if file is None else f"{self.path}/{file}", os.O_RDONLY)
                self._fds[file] = fd
            return fd

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunks(self, side: TensorSide, label: str, buf: bytearray) -> Iterator[memoryview]:
        def check(found: Digest) -> None:
            if not found.matches(side.oid, side.size):
                raise ConcurrentChange(f"{self.path} changed while it was being read ({label})")

        reader = fd_reader(self._fd(side.file), side.offset)
        return verified(reader, buf, check, limit=side.size, size_hint=side.size)


class _Exact:
    """Pull exactly ``n`` bytes at a time from a chunk iterator (copying only across chunks).

    The iterator checks its bytes when it ends (``verified``): running out
    early means the object ended there and its hash and length were right,
    so the pointer's dtype and shape ask for more bytes than its size gives.
    """

    def __init__(
        self, chunks: Iterator[memoryview], staging: bytearray, short: PointerError
    ) -> None:
        self.it = chunks
        self.pending = memoryview(b"")
        self.staging = memoryview(staging)
        self.short = short

    def read(self, n: int) -> memoryview:
        if len(self.pending) >= n:
            out, self.pending = self.pending[:n], self.pending[n:]
            return out
        filled = len(self.pending)
        self.staging[:filled] = self.pending
        self.pending = memoryview(b"")
        while filled < n:
            chunk = next(self.it, None)
            if chunk is None:
                raise self.short
            take = min(n - filled, len(chunk))
            self.staging[filled : filled + take] = chunk[:take]
            filled += take
            self.pending = chunk[take:]
        return self.staging[:n]

    def finish(self) -> None:
        """Drain the iterator: that is where the hash (and the object's length) is checked."""
        extra = len(self.pending)
        for chunk in self.it:
            extra += len(chunk)
        if extra:
            raise self.short


def value_dtypes_supported(change: TensorChange) -> bool:
    from gitsnap import stats

    b, a = change.before, change.after
    return (
        change.status == "modified"
        and b is not None
        and a is not None
        and not (b.view or a.view)  # no object of their own; their base tensor is diffed
        and b.params == a.params
        and stats.supports(b.dtype)
        and stats.supports(a.dtype)
    )


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.arrays: dict[str, bytearray] = {}

    def get(self, role: str, nbytes: int) -> bytearray:
        buf = self.arrays.get(role)
        if buf is None or len(buf) < nbytes:
            buf = bytearray(nbytes)
            self.arrays[role] = buf
        return buf


def compute_values(
    changes: Sequence[TensorChange],
    before: ByteSource,
    after: ByteSource,
    *,
    workers: int | None = None,
) -> list[TensorChange]:
    """Return ``changes`` with :class:`ValueDelta` set on every modified tensor that can be read.

    Tensors are processed in parallel (numpy, BLAS and BLAKE3 release the
    GIL), biggest first; each worker reuses its own few buffers.
    """
    from concurrent.futures import ThreadPoolExecutor

    todo = [i for i, c in enumerate(changes) if value_dtypes_supported(c)]
    out = list(changes)
    if not todo:
        return out
    bufs = _Buffers()

    def work(i: int) -> None:
        c = changes[i]
        assert c.before is not None and c.after is not None
        out[i] = replace(c, values=_value_delta(c.name, c.before, c.after, before, after, bufs))

    todo.sort(key=lambda i: -_size(changes[i]))
    n = workers or max(1, min(8, os.cpu_count() or 1))
    if n <= 1 or len(todo) == 1:
        for i in todo:
            work(i)
    else:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="gitsnap-diff") as pool:
            for fut in [pool.submit(work, i) for i in todo]:
                fut.result()
    return out


def _size(c: TensorChange) -> int:
    return c.after.size if c.after is not None else 0


# Elements per numeric pass: the widened sides and their difference (3 x 256 KiB
# in float32) stay in L2 across the ~6 passes over them; 2x faster here than
# passes over whole 2 MiB read blocks.
_SUB = 1 << 16


def _value_delta(  # noqa: PLR0917 - two sides, each with its entry and its source
    name: str, b: TensorSide, a: TensorSide, src_b: ByteSource, src_a: ByteSource, bufs: _Buffers
) -> ValueDelta:
    import numpy as np

    from gitsnap import stats

    # One implementation of the dtype conversions for the save path and the
    # diff; the widened array may live in a per-thread scratch buffer of
    # stats that the next call reuses (hence the copy into ``keep`` below).
    raw_b, widen_b = stats.widener(b.dtype)
    raw_a, widen_a = stats.widener(a.dtype)
    block = stats.BLOCK
    sub = min(_SUB, block)
    isz_b, isz_a = raw_b.itemsize, raw_a.itemsize
    label = f"tensor {name!r}"
    total = b.params
    for side, isz in ((b, isz_b), (a, isz_a)):
        _check_length(label, side, total, isz)
    rb = _Exact(
        src_b.chunks(b, label, bufs.get("read_b", block * isz_b)),
        bufs.get("stage_b", block * isz_b),
        _length_error(label, b, total, isz_b),
    )
    ra = _Exact(
        src_a.chunks(a, label, bufs.get("read_a", block * isz_a)),
        bufs.get("stage_a", block * isz_a),
        _length_error(label, a, total, isz_a),
    )
    keep = np.frombuffer(bufs.get("keep", sub * 8), dtype=np.float64)
    scratch = np.frombuffer(bufs.get("delta", sub * 8), dtype=np.float64)
    wide_b = np.frombuffer(bufs.get("wide_b", sub * 8), dtype=np.float64)
    wide_a = np.frombuffer(bufs.get("wide_a", sub * 8), dtype=np.float64)
    dd = bb = aa = 0.0
    max_abs = 0.0
    changed = nonfinite = 0
    done = 0
    while done < total:
        k = min(block, total - done)
        xb_all = np.frombuffer(rb.read(k * isz_b), dtype=raw_b)
        xa_all = np.frombuffer(ra.read(k * isz_a), dtype=raw_a)
        for s in range(0, k, sub):
            xb, xa = xb_all[s : s + sub], xa_all[s : s + sub]
            n = xb.size
            wb = widen_b(xb)
            if not np.may_share_memory(wb, xb):
                wb = _copy_into(keep, wb)  # stats' scratch buffer, which widening xa reuses
            wa = widen_a(xa)
            if wa.dtype != wb.dtype:  # e.g. F32 -> F64: compare in float64
                wb = _copy_into(wide_b, wb, np.float64)
                wa = _copy_into(wide_a, wa, np.float64)
            d = np.subtract(wa, wb, out=scratch.view(wa.dtype)[:n])
            sums = (float(np.dot(d, d)), float(np.dot(wb, wb)), float(np.dot(wa, wa)))
            hi, lo = float(d.max()), float(d.min())
            if all(math.isfinite(x) for x in (*sums, hi, lo)):
                changed += int(np.count_nonzero(d))
            else:
                # Rare: a NaN/Inf here, or squares beyond float32: redo in float64, finite only.
                fb, fa = wb.astype(np.float64), wa.astype(np.float64)
                same = (fa == fb) | (np.isnan(fa) & np.isnan(fb))
                changed += n - int(np.count_nonzero(same))
                mask = np.isfinite(fb) & np.isfinite(fa)
                nonfinite += n - int(np.count_nonzero(mask))
                fb, fa = fb[mask], fa[mask]
                d64 = fa - fb
                sums = (float(d64 @ d64), float(fb @ fb), float(fa @ fa))
                hi = float(d64.max()) if d64.size else 0.0
                lo = float(d64.min()) if d64.size else 0.0
            dd += sums[0]
            bb += sums[1]
            aa += sums[2]
            max_abs = max(max_abs, hi, -lo)
        done += k
    rb.finish()
    ra.finish()
    l2b, l2a = math.sqrt(bb), math.sqrt(aa)
    cosine = None
    if l2b > 0 and l2a > 0:
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: one dot product fewer per block.
        cosine = max(-1.0, min(1.0, (aa + bb - dd) / (2 * l2b * l2a)))
    return ValueDelta(
        elements=total,
        changed=changed,
        nonfinite=nonfinite,
        l2_delta=math.sqrt(dd),
        l2_before=l2b,
        l2_after=l2a,
        max_abs_delta=max_abs,
        cosine=cosine,
    )


def _length_error(label: str, side: TensorSide, params: int, itemsize: int) -> PointerError:
    return PointerError(
        f"{label}: the pointer says {side.dtype} {list(side.shape)} ({params * itemsize} bytes), "
        f"but its size is {side.size} bytes (object {side.oid[:12]}…)",
        hint="the pointer is wrong, not the object: restore the pointer from git "
        f"(git checkout -- PATH.snap), or {RESAVE}",
    )


def _check_length(label: str, side: TensorSide, params: int, itemsize: int) -> None:
    """A tensor's dtype and shape must fill its size exactly, before a byte is read."""
    if params * itemsize != side.size:
        raise _length_error(label, side, params, itemsize)


def _copy_into(buf: Any, x: Any, dtype: Any = None) -> Any:
    import numpy as np

    target = buf.view(dtype or x.dtype)[: x.size]
    np.copyto(target, x, casting="unsafe")
    return target


__all__ = [
    "ByteSource",
    "FileSource",
    "StoreSource",
    "compute_values",
    "value_dtypes_supported",
]
