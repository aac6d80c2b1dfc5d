"""What changed between two snapshots of a checkpoint: structure, stats, values.

Three levels, each costlier than the one before:

structure (pointers only)
    :func:`diff_tensors` pairs the tensors of two pointers by name and gives
    each a status: ``added``, ``removed``, ``renamed`` (an added name whose
    object id is that of a removed name: the same bytes under a new name),
    ``reshaped`` (shape differs), ``modified`` (object id or dtype differs;
    ``dtype_changed`` tells the two apart) or ``unchanged``. It is pure: no
    I/O, and no numpy, so a pull-request check can run it without weights,
    credentials or heavy imports (DESIGN D5, D10).
stats
    Each pointer entry carries mean/std/min/max/l2 (``gitsnap.stats``), so
    every :class:`TensorChange` has them for both sides, and a layer's norm
    change is known without reading a byte of weights.
values (``--values``)
    :func:`compute_values` streams the two objects of every modified tensor in
    lockstep, block by block through a few reused buffers (DESIGN D11), widens
    both to float (``gitsnap.stats``' converters: BF16 by a shift, F8 by a
    table) and reports ``‖Δ‖``, ``‖Δ‖/‖W_before‖``, ``max|Δ|``, the cosine
    similarity and the fraction of elements whose value changed. Every object
    is re-hashed while it streams, so a corrupt object is reported, never
    silently diffed.

Changes roll up into groups by module prefix (:func:`group_name`) so a
reviewer sees which layers moved most.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

from gitsnap.errors import ConcurrentChange, ObjectCorrupt
from gitsnap.metrics import GateCheck, MetricChange
from gitsnap.pointer import _RESERVED, Entry, Pointer

STATUSES = ("added", "removed", "renamed", "reshaped", "modified", "unchanged")

# ---------------------------------------------------------------- results


class TensorSide(NamedTuple):
    """One side of a tensor change: what the pointer says about it.

    A named tuple rather than a frozen dataclass: a 2,000-tensor diff builds
    4,000 of them, and a tuple is built several times faster.
    """

    dtype: str
    shape: tuple[int, ...]
    offset: int
    size: int
    oid: str
    stats: Mapping[str, float | int] = {}
    file: str | None = None  # folder checkpoints: the file inside the folder
    view: bool = (
        False  # bytes held by other segments (a shared PyTorch storage): no object of its own
    )

    @property
    def params(self) -> int:
        return math.prod(self.shape)

    @classmethod
    def of(cls, e: Entry) -> TensorSide:
        return cls(e.dtype or "", e.shape or (), e.offset, e.size, e.oid, e.stats, e.file, e.view)


@dataclass(frozen=True)
class ValueDelta:
    """How the numbers of one tensor moved, from reading both objects.

    Sums run over the positions where both sides are finite (``nonfinite``
    counts the others), in float32 blocks (float64 for F64 and integers)
    accumulated in float64. ``changed`` counts the elements whose value
    differs (``-0.0`` equals ``0.0``; a NaN that stays NaN is unchanged).
    """

    elements: int
    changed: int
    nonfinite: int
    l2_delta: float
    l2_before: float
    l2_after: float
    max_abs_delta: float
    cosine: float | None  # None when either side is all zeros

    @property
    def rel_change(self) -> float | None:
        """``‖Δ‖ / ‖W_before‖``; None when the old tensor is all zeros."""
        return self.l2_delta / self.l2_before if self.l2_before > 0 else None

    @property
    def changed_fraction(self) -> float:
        return self.changed / self.elements if self.elements else 0.0


@dataclass(frozen=True)
class TensorChange:
    name: str
    status: str  # one of STATUSES
    before: TensorSide | None
    after: TensorSide | None
    old_name: str | None = None  # set for "renamed"
    values: ValueDelta | None = None

    @property
    def dtype_changed(self) -> bool:
        return (
            self.before is not None
            and self.after is not None
            and self.before.dtype != self.after.dtype
        )

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"

    def stat(self, key: str) -> tuple[float | None, float | None]:
        """(before, after) of one pointer stat (``l2``, ``mean``, ``std``, ...)."""
        b = self.before.stats.get(key) if self.before else None
        a = self.after.stats.get(key) if self.after else None
        return (None if b is None else float(b)), (None if a is None else float(a))

    @property
    def norm_change(self) -> float | None:
        """``(‖W_after‖ - ‖W_before‖) / ‖W_before‖`` from the pointer stats alone."""
        b, a = self.stat("l2")
        if b is None or a is None or b == 0:
            return None
        return (a - b) / b

    def delta_sq(self) -> float | None:
        """``‖ΔW‖²`` for roll-ups: exact from values, else only known for added/removed/renamed."""
        if self.status in ("unchanged", "renamed"):
            return 0.0
        if self.values is not None:
            return self.values.l2_delta**2
        b, a = self.stat("l2")
        if self.status == "added":
            return (a or 0.0) ** 2
        if self.status == "removed":
            return (b or 0.0) ** 2
        return None


@dataclass(frozen=True)
class GroupChange:
    """Changes rolled up by module prefix (e.g. ``encoder.layer.3``).

    ``norm_change`` is the relative change of the group's norm
    ``sqrt(Σ‖W‖²)`` from pointer stats (a lower bound on how far it moved:
    ``|Δ‖W‖| <= ‖ΔW‖``). ``rel_change`` is ``‖ΔW‖ / ‖W_before‖`` over the group,
    known when values were computed for all its changed tensors (added and
    removed tensors count in full). ``movement`` is the better of the two and
    orders the groups.
    """

    name: str
    tensors: int
    tensors_changed: int
    params: int
    params_changed: int
    l2_before: float
    l2_after: float
    rel_change: float | None
    counts: Mapping[str, int]

    @property
    def norm_change(self) -> float | None:
        if self.l2_before == 0:
            return None if self.l2_after == 0 else math.inf
        return (self.l2_after - self.l2_before) / self.l2_before

    @property
    def movement(self) -> float:
        if self.rel_change is not None:
            return self.rel_change
        n = self.norm_change
        return abs(n) if n is not None else 0.0


@dataclass(frozen=True)
class DiffSummary:
    """Counts for one checkpoint.

    ``params_changed`` counts the elements of tensors whose values changed
    (added, removed, reshaped, modified; a rename moves no number).
    ``bytes_new`` is the tensor bytes of the after side whose object the
    before side does not have (what a reviewer's machine would download);
    ``bytes_new_fraction`` relates it to the after side's tensor bytes.
    """

    tensors_before: int
    tensors_after: int
    counts: Mapping[str, int]
    params_before: int
    params_after: int
    params_changed: int
    bytes_before: int
    bytes_after: int
    bytes_new: int
    values_computed: int

    @property
    def tensors_changed(self) -> int:
        return sum(n for s, n in self.counts.items() if s != "unchanged")

    @property
    def params_changed_fraction(self) -> float:
        total = max(self.params_after, self.params_before)
        return self.params_changed / total if total else 0.0

    @property
    def bytes_new_fraction(self) -> float:
        if self.bytes_after:
            return self.bytes_new / self.bytes_after
        return 1.0 if self.bytes_before else 0.0


# ---------------------------------------------------------------- structure


_DIGITS = re.compile(r"(\d+)")


def _natural_key(name: str) -> tuple[Any, ...]:
    """``layers.10`` sorts after ``layers.2``."""
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(name))


def diff_tensors(before: Sequence[Entry], after: Sequence[Entry]) -> list[TensorChange]:
    """Pair tensors by name (then renames by object id); sorted by natural name order."""
    old = {e.name: e for e in before if e.name is not None}
    new = {e.name: e for e in after if e.name is not None}
    changes: list[TensorChange] = []
    for name, eb in new.items():
        ea = old.get(name)
        if ea is None:
            continue
        if ea is eb:  # one parsed line shared by both pointers (load_pointer's ``shared``)
            side = TensorSide.of(ea)
            changes.append(TensorChange(name, "unchanged", side, side))
            continue
        if ea.shape != eb.shape:
            status = "reshaped"
        elif ea.oid != eb.oid or ea.dtype != eb.dtype:
            status = "modified"
        else:
            status = "unchanged"
        changes.append(TensorChange(name, status, TensorSide.of(ea), TensorSide.of(eb)))
    # A rename is an added name holding exactly the bytes of a removed name.
    # Empty tensors all share one object id: pairing them would be noise.
    gone: dict[tuple[str, bool], deque[Entry]] = defaultdict(deque)
    for e in before:
        if e.name is not None and e.name not in new and e.size > 0:
            gone[e.oid, e.view].append(e)
    renamed_from: set[str] = set()
    for name, eb in new.items():
        if name in old:
            continue
        candidates = gone.get((eb.oid, eb.view))
        if candidates:
            ea = candidates.popleft()
            renamed_from.add(ea.name or "")
            changes.append(
                TensorChange(
                    name, "renamed", TensorSide.of(ea), TensorSide.of(eb), old_name=ea.name
                )
            )
        else:
            changes.append(TensorChange(name, "added", None, TensorSide.of(eb)))
    for name, ea in old.items():
        if name not in new and name not in renamed_from:
            changes.append(TensorChange(name, "removed", TensorSide.of(ea), None))
    changes.sort(key=lambda c: _natural_key(c.name))
    return changes


def summarize(changes: Sequence[TensorChange]) -> DiffSummary:
    counts = dict.fromkeys(STATUSES, 0)
    params_before = params_after = params_changed = 0
    bytes_before = bytes_after = bytes_new = 0
    old_oids = {c.before.oid for c in changes if c.before is not None}
    values = 0
    for c in changes:
        counts[c.status] += 1
        # A view's bytes belong to another tensor's segment: count them once.
        if c.before is not None:
            params_before += c.before.params
            bytes_before += 0 if c.before.view else c.before.size
        if c.after is not None:
            params_after += c.after.params
            bytes_after += 0 if c.after.view else c.after.size
            if c.after.oid not in old_oids and not c.after.view:
                bytes_new += c.after.size
        if c.status in ("added", "reshaped", "modified"):
            params_changed += c.after.params if c.after else 0
        elif c.status == "removed":
            params_changed += c.before.params if c.before else 0
        values += c.values is not None
    return DiffSummary(
        tensors_before=sum(c.before is not None for c in changes),
        tensors_after=sum(c.after is not None for c in changes),
        counts=counts,
        params_before=params_before,
        params_after=params_after,
        params_changed=params_changed,
        bytes_before=bytes_before,
        bytes_after=bytes_after,
        bytes_new=bytes_new,
        values_computed=values,
    )


# ---------------------------------------------------------------- grouping


def group_name(name: str, depth: int | None = None) -> str:
    """The module a tensor belongs to.

    Automatic rule (``depth=None``): up to and including the first numeric
    component (the layer index), else everything but the last component (the
    parameter name)::

        encoder.layer.3.attn.q.weight -> encoder.layer.3
        model.layers.12.mlp.up.weight -> model.layers.12
        lm_head.weight                -> lm_head

    With ``depth=N``: the first N components (never the whole name, unless
    it has a single component).
    """
    parts = name.split(".")
    if len(parts) == 1:
        return name
    if depth is None:
        for i, p in enumerate(parts[:-1]):
            if p.isdigit():
                return ".".join(parts[: i + 1])
        return ".".join(parts[:-1])
    return ".".join(parts[: max(1, min(depth, len(parts) - 1))])


def group_changes(changes: Sequence[TensorChange], depth: int | None = None) -> list[GroupChange]:
    """Roll up by :func:`group_name`, most-moved first (then most params changed, then name)."""
    members: dict[str, list[TensorChange]] = defaultdict(list)
    for c in changes:
        members[group_name(c.name, depth)].append(c)
    groups = []
    for name, items in members.items():
        counts = dict.fromkeys(STATUSES, 0)
        l2b = l2a = 0.0
        delta_sq: float | None = 0.0
        params = params_changed = 0
        for c in items:
            counts[c.status] += 1
            b, a = c.stat("l2")
            l2b += (b or 0.0) ** 2
            l2a += (a or 0.0) ** 2
            side = c.after or c.before
            params += side.params if side else 0
            if c.status not in ("unchanged", "renamed"):
                params_changed += side.params if side else 0
            d = c.delta_sq()
            delta_sq = None if d is None or delta_sq is None else delta_sq + d
        l2b, l2a = math.sqrt(l2b), math.sqrt(l2a)
        rel = None
        if delta_sq is not None and any(c.values is not None for c in items):
            rel = math.sqrt(delta_sq) / l2b if l2b > 0 else None
        groups.append(
            GroupChange(
                name=name,
                tensors=len(items),
                tensors_changed=sum(c.changed for c in items),
                params=params,
                params_changed=params_changed,
                l2_before=l2b,
                l2_after=l2a,
                rel_change=rel,
                counts=counts,
            )
        )
    groups.sort(
        key=lambda g: (-g.movement, -g.params_changed, -g.tensors_changed, _natural_key(g.name))
    )
    return groups


# ---------------------------------------------------------------- values


class ByteSource(Protocol):
    """Where one side's tensor bytes come from. ``chunks`` yields them verified."""

    def chunks(self, side: TensorSide, label: str, buf: bytearray) -> Iterator[memoryview]: ...


class StoreSource:
    """Objects in the local store, re-hashed as they stream (``store.iter_verified``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def missing(self, sides: Sequence[TensorSide]) -> list[str]:
        return sorted({s.oid for s in sides if not self.store.has(s.oid)})

    def chunks(self, side: TensorSide, label: str, buf: bytearray) -> Iterator[memoryview]:
        return self.store.iter_verified(side.oid, side.size, label, buf)  # type: ignore[no-any-return]


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
        import blake3

        fd = self._fd(side.file)
        hasher = blake3.blake3()
        view = memoryview(buf)
        pos, end = side.offset, side.offset + side.size
        while pos < end:
            n = os.preadv(fd, [view[: min(len(view), end - pos)]], pos)
            if n <= 0:
                break
            chunk = view[:n]
            hasher.update(chunk)
            pos += n
            yield chunk
        if pos != end or hasher.hexdigest() != side.oid:
            raise ConcurrentChange(f"{self.path} changed while it was being read ({label})")


class _Exact:
    """Pull exactly ``n`` bytes at a time from a chunk iterator (copying only across chunks)."""

    def __init__(self, chunks: Iterator[memoryview], staging: bytearray) -> None:
        self.it = chunks
        self.pending = memoryview(b"")
        self.staging = memoryview(staging)

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
                raise ObjectCorrupt("an object is shorter than its entry says")
            take = min(n - filled, len(chunk))
            self.staging[filled : filled + take] = chunk[:take]
            filled += take
            self.pending = chunk[take:]
        return self.staging[:n]

    def finish(self) -> None:
        """Drain the iterator: that is where the hash is checked."""
        if len(self.pending):
            raise ObjectCorrupt("an object is longer than its entry says")
        for chunk in self.it:
            if len(chunk):
                raise ObjectCorrupt("an object is longer than its entry says")


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


def _widener(dtype: str) -> tuple[Any, Callable[[Any], Any]]:
    """(numpy dtype of the stored elements, widening function) from ``gitsnap.stats``.

    One implementation of the dtype conversions (BF16 shift, F8 tables) for
    the save path and the diff; the widened array may live in a per-thread
    scratch buffer of ``stats`` that the next call reuses.
    """
    from gitsnap import stats

    return stats._KINDS[dtype]


# Elements per numeric pass: the widened sides and their difference (3 x 256 KiB
# in float32) stay in L2 across the ~6 passes over them; 2x faster here than
# passes over whole 2 MiB read blocks.
_SUB = 1 << 16


def _value_delta(  # noqa: PLR0917 - two sides, each with its entry and its source
    name: str, b: TensorSide, a: TensorSide, src_b: ByteSource, src_a: ByteSource, bufs: _Buffers
) -> ValueDelta:
    import numpy as np

    from gitsnap import stats

    raw_b, widen_b = _widener(b.dtype)
    raw_a, widen_a = _widener(a.dtype)
    block = stats._BLOCK
    sub = min(_SUB, block)
    isz_b, isz_a = raw_b.itemsize, raw_a.itemsize
    label = f"tensor {name!r}"
    rb = _Exact(
        src_b.chunks(b, label, bufs.get("read_b", block * isz_b)),
        bufs.get("stage_b", block * isz_b),
    )
    ra = _Exact(
        src_a.chunks(a, label, bufs.get("read_a", block * isz_a)),
        bufs.get("stage_a", block * isz_a),
    )
    keep = np.frombuffer(bufs.get("keep", sub * 8), dtype=np.float64)
    scratch = np.frombuffer(bufs.get("delta", sub * 8), dtype=np.float64)
    wide_b = np.frombuffer(bufs.get("wide_b", sub * 8), dtype=np.float64)
    wide_a = np.frombuffer(bufs.get("wide_a", sub * 8), dtype=np.float64)
    total = b.params
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


def _copy_into(buf: Any, x: Any, dtype: Any = None) -> Any:
    import numpy as np

    target = buf.view(dtype or x.dtype)[: x.size]
    np.copyto(target, x, casting="unsafe")
    return target


# ---------------------------------------------------------------- fast pointer reading
#
# PyYAML's SafeLoader builds Python objects in Python: a 2,000-tensor pointer
# (~600 KB) takes 0.7 s, over the whole 0.4 s budget of a structural diff.
# Canonical pointers (pointer.dumps) write one flow mapping per line in a
# fixed key order, so those lines are parsed here with one regex each and the
# rest (a few short header lines) with YAML; pointer.from_dict then validates
# exactly as pointer.loads does. Any line that is not in canonical form sends
# the whole text to pointer.loads. This belongs in pointer.loads itself.

_PLAIN = r"[A-Za-z_][A-Za-z0-9_.\-/:]*"  # what pointer._str writes unquoted
_UINT = r"0|[1-9][0-9]*"
_INT = r"-?(?:0|[1-9][0-9]*)"
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]*(?:e[-+][0-9]+)?)?|\.nan|-?\.inf"
_OID = r'(?P<oid>[0-9a-f]{64}|"[0-9]{64}")'
_DIMS = r"(?:(?:0|[1-9][0-9]*)(?:, (?:0|[1-9][0-9]*))*)?"
_TENSOR_RE = re.compile(
    rf"- \{{name: (?P<name>{_PLAIN})(?:, file: (?P<file>{_PLAIN}))?, dtype: (?P<dtype>{_PLAIN}), "
    rf"shape: \[(?P<shape>{_DIMS})\], offset: (?P<offset>{_UINT}), size: (?P<size>{_UINT}), "
    rf"oid: {_OID}"
    rf"(?P<view>, view: true)?(?:, stride: \[(?P<stride>{_DIMS})\])?"
    rf"(?:, count: (?P<count>{_INT}))?(?:, nonfinite: (?P<nonfinite>{_INT}))?"
    + "".join(rf"(?:, {k}: (?P<{k}>{_NUM}))?" for k in ("mean", "std", "min", "max", "l2"))
    + r"\}"
)
_BLOB_RE = re.compile(
    rf"- \{{(?:file: (?P<file>{_PLAIN}), )?offset: (?P<offset>{_UINT}), size: (?P<size>{_UINT}), "
    rf"oid: {_OID}"
    rf"(?:, role: (?P<role>{_PLAIN}))?\}}"
)
_FILE_RE = re.compile(
    rf"- \{{path: (?P<path>{_PLAIN}), size: (?P<size>{_UINT})(?:, format: (?P<format>{_PLAIN}))?\}}"
)
_SPECIAL = {".nan": math.nan, ".inf": math.inf, "-.inf": -math.inf}
_STAT_KEYS = ("count", "nonfinite", "mean", "std", "min", "max", "l2")
_LISTS = ("tensors", "blobs", "files")


class _NotCanonical(Exception):
    pass


def load_pointer(
    raw: bytes | str, source: str = "<pointer>", shared: dict[str, Any] | None = None
) -> Pointer:
    """Same result as :func:`gitsnap.pointer.loads`, fast for canonical pointers.

    ``shared``: a dict kept across the loads of one diff. A tensor line that
    is the same on both sides (an unchanged tensor at the same offset) is then
    parsed once and both pointers hold the same :class:`Entry`: the caller must
    treat the entries as read-only.
    """
    from gitsnap import pointer

    text = raw
    if isinstance(text, bytes):
        if len(text) > pointer.MAX_POINTER_BYTES:
            return pointer.loads(text, source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return pointer.loads(raw, source)
    try:
        return _fast_load(text, source, {} if shared is None else shared)
    except _NotCanonical:
        return pointer.loads(text, source)


def _fast_load(text: str, source: str, shared: dict[str, Any]) -> Pointer:
    """Header by YAML and pointer.from_dict; entry lines by regex, straight into Entry objects.

    The regexes admit only well-typed values (non-negative ints, 64-hex ids,
    numbers), so what pointer._entry would check per entry holds by
    construction; the layout is checked by pointer._check_layout as usual.
    """
    import yaml

    from gitsnap import pointer

    if not text.startswith("gitsnap: ") or "\r" in text:
        raise _NotCanonical
    parse = {"tensors": _tensor_line, "blobs": _blob_line, "files": _file_line}
    header: list[str] = []
    lists: dict[str, list[Any]] = {}
    current: str | None = None
    for line in text.split("\n"):
        if current is not None and line.startswith("- "):
            if current == "tensors":
                e = shared.get(line)
                if e is None:
                    e = shared[line] = _tensor_line(line)
                lists[current].append(e)
            else:
                lists[current].append(parse[current](line))
            continue
        current = None
        if line.endswith(":") and line[:-1] in _LISTS:
            key = line[:-1]
            if key in lists:
                raise _NotCanonical
            current = key
            lists[key] = []
            continue
        if line.startswith("- ") or (
            line.split(":", 1)[0] in _LISTS and line.strip() != f"{line.split(':', 1)[0]}: []"
        ):
            raise _NotCanonical
        header.append(line)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load("\n".join(header), Loader=loader)
    except yaml.YAMLError:
        raise _NotCanonical from None
    if not isinstance(data, dict) or any(k in data for k in lists):
        raise _NotCanonical
    size = data.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        raise _NotCanonical  # let pointer.loads word the error
    # The header alone, with an empty layout; the entries are attached after.
    ptr = pointer.from_dict({**data, "size": 0, "tensors": [], "blobs": [], "files": []}, source)
    ptr.size = size
    ptr.files = [pointer._file_entry(f, source) for f in lists.get("files", [])]
    ptr.tensors = lists.get("tensors", [])
    ptr.blobs = lists.get("blobs", [])
    for e in (*ptr.tensors, *ptr.blobs):
        if e.file is not None:
            pointer._check_member_path(e.file, source)
    pointer._check_layout(ptr, source)
    return ptr


def _plain(value: str) -> str:
    """A plain scalar as YAML reads it, or not canonical if YAML would read it as something else."""
    if value.lower() in _RESERVED or value[-1] == ":":
        raise _NotCanonical
    return value


def _ints(text: str) -> tuple[int, ...]:
    # The regexes admit only "N, N, ..." with canonical integers.
    return tuple(map(int, text.split(", "))) if text else ()


def _tensor_line(line: str) -> Entry:
    # The hot loop of a 2,000-tensor diff: positional groups, no helper calls
    # on the common path.
    m = _TENSOR_RE.fullmatch(line)
    if m is None:
        raise _NotCanonical
    name, file, dtype, shape_s, offset, size, oid, view, stride_s, *stat_values = m.groups()
    if name.lower() in _RESERVED or name[-1] == ":" or dtype.lower() in _RESERVED:
        raise _NotCanonical
    if oid[0] == '"':
        oid = oid[1:-1]
    elif oid.isdigit():  # YAML would read an unquoted all-digit id as an integer
        raise _NotCanonical
    shape = tuple(map(int, shape_s.split(", "))) if shape_s else ()
    e = Entry(
        offset=int(offset),
        size=int(size),
        oid=oid,
        name=name,
        dtype=dtype,
        shape=shape,
        file=None if file is None else _plain(file),
        view=view is not None,
    )
    if stride_s is not None:
        stride = _ints(stride_s)
        if not e.view or len(stride) != len(shape):
            raise _NotCanonical  # pointer.loads says what is wrong
        e.stride = stride
    stats = e.stats
    for key, value in zip(_STAT_KEYS, stat_values, strict=True):
        if value is not None:
            if value in _SPECIAL:
                stats[key] = _SPECIAL[value]
            else:  # as YAML reads it: a dot makes a float
                stats[key] = float(value) if "." in value else int(value)
    return e


def _oid(text: str) -> str:
    if text[0] == '"':
        return text[1:-1]
    if text.isdigit():  # YAML would read an unquoted all-digit id as an integer
        raise _NotCanonical
    return text


def _blob_line(line: str) -> Entry:
    m = _BLOB_RE.fullmatch(line)
    if m is None:
        raise _NotCanonical
    return Entry(
        offset=int(m["offset"]),
        size=int(m["size"]),
        oid=_oid(m["oid"]),
        role=None if m["role"] is None else _plain(m["role"]),
        file=None if m["file"] is None else _plain(m["file"]),
    )


def _file_line(line: str) -> dict[str, Any]:
    m = _FILE_RE.fullmatch(line)
    if m is None:
        raise _NotCanonical
    entry: dict[str, Any] = {"path": _plain(m["path"]), "size": int(m["size"])}
    if m["format"] is not None:
        entry["format"] = _plain(m["format"])
    return entry


# ---------------------------------------------------------------- whole diffs


def checkpoint_status(before: Pointer | None, after: Pointer | None) -> str:
    if before is None:
        return "added"
    if after is None:
        return "removed"
    return "unchanged" if before.id == after.id else "modified"


@dataclass(frozen=True)
class SnapshotSide:
    """One side of a checkpoint diff."""

    snapshot_id: str
    format: str
    size: int
    tensors: int
    message: str
    created: str
    unsaved: bool  # the working checkpoint differs from its pointer: read from the file itself

    @classmethod
    def of(cls, ptr: Pointer, unsaved: bool = False) -> SnapshotSide:
        return cls(
            ptr.id, ptr.format, ptr.size, len(ptr.tensors), ptr.message, ptr.created, unsaved
        )


@dataclass(frozen=True)
class CheckpointDiff:
    path: str
    status: str  # added, removed, modified, unchanged (the snapshot as a whole)
    before: SnapshotSide | None
    after: SnapshotSide | None
    tensors: list[TensorChange]
    groups: list[GroupChange]
    summary: DiffSummary
    metrics: list[MetricChange]
    params: list[MetricChange]

    @property
    def changed(self) -> bool:
        return (
            self.status != "unchanged"
            or any(c.changed for c in self.tensors)
            or any(m.status != "unchanged" for m in (*self.metrics, *self.params))
        )


@dataclass(frozen=True)
class DiffResult:
    """``git snap diff``: every checkpoint present on either side, plus the gate's verdicts."""

    before: str  # what the user named: "HEAD", "main", ...
    after: str  # a revision, or "working tree"
    before_commit: str | None  # None: no commit (empty repository)
    after_commit: str | None  # None: the working tree
    values: bool
    depth: int | None
    checkpoints: list[CheckpointDiff]
    gate: list[GateCheck] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.checkpoints)

    @property
    def failed(self) -> bool:
        return any(g.failed for g in self.gate)


__all__ = [
    "STATUSES",
    "ByteSource",
    "CheckpointDiff",
    "DiffResult",
    "DiffSummary",
    "FileSource",
    "GroupChange",
    "SnapshotSide",
    "StoreSource",
    "TensorChange",
    "TensorSide",
    "ValueDelta",
    "checkpoint_status",
    "compute_values",
    "diff_tensors",
    "group_changes",
    "group_name",
    "load_pointer",
    "summarize",
]
