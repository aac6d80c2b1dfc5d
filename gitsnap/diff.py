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
values (``--values``, :mod:`gitsnap.diff_values`)
    :func:`~gitsnap.diff_values.compute_values` streams the two objects of every modified tensor in
    lockstep, block by block through a few reused buffers (DESIGN D11), widens
    both to float (``gitsnap.stats``' converters: BF16 by a shift, F8 by a
    table) and reports ``‖Δ‖``, ``‖Δ‖/‖W_before‖``, ``max|Δ|``, the cosine
    similarity and the fraction of elements whose value changed. Every object
    is re-hashed while it streams, so a corrupt object is reported, never
    silently diffed.

Changes roll up into groups by module prefix (:func:`group_name`) so a
reviewer sees which layers moved most. Optimizer state (:func:`is_optimizer_state`)
is counted apart: the summary, the groups and the params count are the model's,
``CheckpointDiff.optimizer`` summarizes the optimizer's tensors. The non-tensor
values a pointer records (``metadata``: epoch, global_step, learning rates,
hyper-parameters, ``trainer_state.json`` scalars) are compared as ``state``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict, deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gitsnap import movement
from gitsnap.environment import EnvChange, env_changes
from gitsnap.metrics import GateCheck, MetricChange, Scalar, compare
from gitsnap.pickle_policy import SecurityFinding, introduced
from gitsnap.pointer import Entry, FileEntry, Pointer, colliding_names, qualified_name
from gitsnap.problems import ItemProblem

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
    # Bytes held by other segments (a shared PyTorch storage): no object of its own.
    view: bool = False
    stride: tuple[int, ...] | None = None  # element strides of a non-contiguous view

    @property
    def params(self) -> int:
        return math.prod(self.shape)

    @classmethod
    def of(cls, e: Entry) -> TensorSide:
        return cls(
            e.dtype or "", e.shape or (), e.offset, e.size, e.oid, e.stats, e.file, e.view, e.stride
        )


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
    # Folders: the file of a tensor whose name another file also holds (model + EMA);
    # ``name`` is then file-qualified (``ema.safetensors: head.weight``).
    file: str | None = None

    @property
    def tensor(self) -> str:
        """The tensor's own name, without the file a folder diff may qualify it with."""
        return self.name if self.file is None else self.name[len(self.file) + 2 :]

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

    @property
    def change_bound(self) -> float | None:
        """A lower bound of ``‖ΔW‖/‖W_before‖`` from the pointer stats (:mod:`gitsnap.movement`)."""
        b, a = self.before, self.after
        n = b.params if b else 0
        d = movement.delta_sq_bound(self.status, b and b.stats, a and a.stats, n)
        return movement.relative(d, self.stat("l2")[0] if b else 0.0)

    @property
    def change(self) -> float | None:
        """How far it moved: ``‖ΔW‖/‖W‖`` with values, else the best lower bound known."""
        if self.values is not None and self.values.rel_change is not None:
            return self.values.rel_change
        return movement.best(self.change_bound, self.norm_change)


@dataclass(frozen=True)
class GroupChange:
    """Changes rolled up by module prefix (e.g. ``encoder.layer.3``).

    ``norm_change`` is the relative change of the group's norm
    ``sqrt(Σ‖W‖²)`` from pointer stats (a lower bound on how far it moved:
    ``|Δ‖W‖| <= ‖ΔW‖``). ``rel_change`` is ``‖ΔW‖ / ‖W_before‖`` over the group,
    known when values were computed for all its changed tensors (added and
    removed tensors count in full). ``change_bound`` is the lower bound of
    ``‖ΔW‖ / ‖W_before‖`` from the pointer stats (:mod:`gitsnap.movement`).
    ``movement`` is ``rel_change`` when known, else the larger of the two
    lower bounds, and orders the groups.
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
    change_bound: float | None = None

    @property
    def norm_change(self) -> float | None:
        if self.l2_before == 0:
            return None if self.l2_after == 0 else math.inf
        return (self.l2_after - self.l2_before) / self.l2_before

    @property
    def movement(self) -> float:
        if self.rel_change is not None:
            return self.rel_change
        return movement.best(self.change_bound, self.norm_change) or 0.0


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


def _natural_key(name: str) -> list[Any]:
    """``layers.10`` sorts after ``layers.2``.

    The split alternates text and digit runs (text first, maybe empty), so
    keys compare text with text and numbers with numbers.
    """
    parts: list[Any] = _DIGITS.split(name)
    parts[1::2] = map(int, parts[1::2])
    return parts


def diff_tensors(before: Sequence[Entry], after: Sequence[Entry]) -> list[TensorChange]:
    """Pair tensors by name (then renames by object id); sorted by natural name order.

    In a folder, a name that more than one file holds (model + EMA, two
    optimizers, diffusers sub-models) pairs by file and name, and the change
    is named ``file: name`` (:func:`gitsnap.pointer.qualified_name`); any other
    name pairs by name alone, so a re-sharded tensor is the same tensor.
    """
    clash = colliding_names(before) | colliding_names(after)

    def key(e: Entry) -> tuple[str | None, str]:
        name = e.name or ""
        return (e.file, name) if name in clash else (None, name)

    old = {key(e): e for e in before if e.name is not None}
    new = {key(e): e for e in after if e.name is not None}
    changes: list[TensorChange] = []

    def change(k: tuple[str | None, str], status: str, ea: Entry | None, eb: Entry | None) -> None:
        file, name = k
        old_name = None
        if status == "renamed" and ea is not None:
            ka = key(ea)
            old_name = qualified_name(ka[0], ka[1])
        changes.append(
            TensorChange(
                qualified_name(file, name),
                status,
                None if ea is None else TensorSide.of(ea),
                None if eb is None else TensorSide.of(eb),
                old_name=old_name,
                file=file,
            )
        )

    for k, eb in new.items():
        ea = old.get(k)
        if ea is None:
            continue
        if ea is eb:  # one parsed line both pointers share (``shared`` of pointer.loads)
            side = TensorSide.of(ea)
            changes.append(
                TensorChange(qualified_name(k[0], k[1]), "unchanged", side, side, file=k[0])
            )
            continue
        if ea.shape != eb.shape:
            status = "reshaped"
        elif ea.oid != eb.oid or ea.dtype != eb.dtype:
            status = "modified"
        else:
            status = "unchanged"
        change(k, status, ea, eb)
    # A rename is an added name holding exactly the bytes of a removed name.
    # Empty tensors all share one object id: pairing them would be noise.
    gone: dict[tuple[str, bool], deque[Entry]] = defaultdict(deque)
    for e in before:
        if e.name is not None and key(e) not in new and e.size > 0:
            gone[e.oid, e.view].append(e)
    renamed_from: set[tuple[str | None, str]] = set()
    for k, eb in new.items():
        if k in old:
            continue
        candidates = gone.get((eb.oid, eb.view))
        if candidates:
            ea = candidates.popleft()
            renamed_from.add(key(ea))
            change(k, "renamed", ea, eb)
        else:
            change(k, "added", None, eb)
    for k, ea in old.items():
        if k not in new and k not in renamed_from:
            change(k, "removed", ea, None)
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


# ---------------------------------------------------------------- optimizer state

# The first name component under which checkpoints keep an optimizer's state_dict:
# Lightning's ``optimizer_states``, and the usual keys of a hand-written training checkpoint.
OPTIMIZER_KEYS = frozenset(
    {
        "optimizer",
        "optimizers",
        "optimizer_states",
        "optimizer_state",
        "optimizer_state_dict",
        "optim",
    }
)


def is_optimizer_state(name: str, file: str | None = None) -> bool:
    """Whether a tensor is optimizer state rather than a model weight.

    By where the checkpoint keeps it: a file (a checkpoint, or a file of a folder) whose
    name starts with ``optimizer`` (the Trainer's ``optimizer.pt``, accelerate's
    ``optimizer.bin``), or
    a first name component in :data:`OPTIMIZER_KEYS` (``optimizer_states.0.state.3.exp_avg``).
    """
    if file is not None and file.rsplit("/", 1)[-1].startswith("optimizer"):
        return True
    return name.split(".", 1)[0] in OPTIMIZER_KEYS


def split_optimizer(
    changes: Sequence[TensorChange], path: str | None = None
) -> tuple[list[TensorChange], list[TensorChange]]:
    """(model changes, optimizer-state changes), each in the order given.

    ``path``: the checkpoint's; a single file named ``optimizer*`` is optimizer state.
    """
    model: list[TensorChange] = []
    optimizer: list[TensorChange] = []
    for c in changes:
        side = c.after or c.before
        where = path if side is None or side.file is None else side.file
        opt = side is not None and is_optimizer_state(c.tensor, where)
        (optimizer if opt else model).append(c)
    return model, optimizer


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
        if c.file is None:
            members[group_name(c.name, depth)].append(c)
        else:  # a name more than one file of the folder holds: its group is the file's
            members[qualified_name(c.file, group_name(c.tensor, depth))].append(c)
    groups = []
    for name, items in members.items():
        # TensorChange.stat / .changed inlined: 2,000 tensors go through here.
        counts = dict.fromkeys(STATUSES, 0)
        l2b = l2a = 0.0
        delta_sq: float | None = 0.0
        params = params_changed = tensors_changed = 0
        with_values = False
        bound_sq = 0.0
        for c in items:
            status = c.status
            counts[status] += 1
            before, after = c.before, c.after
            b = None if before is None else before.stats.get("l2")
            a = None if after is None else after.stats.get("l2")
            b = None if b is None else float(b)
            a = None if a is None else float(a)
            l2b += (b or 0.0) ** 2
            l2a += (a or 0.0) ** 2
            side = after or before
            n = side.params if side else 0
            params += n
            d: float | None = 0.0
            if c.values is not None:
                with_values = True
            if status != "unchanged":
                tensors_changed += 1
                if status != "renamed":
                    params_changed += n
                    if c.values is not None:
                        d = c.values.l2_delta**2
                    elif status == "added":
                        d = (a or 0.0) ** 2
                    elif status == "removed":
                        d = (b or 0.0) ** 2
                    else:
                        d = None
            delta_sq = None if d is None or delta_sq is None else delta_sq + d
            # Unknown parts add 0: what is known still bounds the whole from below.
            lb = movement.delta_sq_bound(status, before and before.stats, after and after.stats, n)
            bound_sq += lb or 0.0
        l2b, l2a = math.sqrt(l2b), math.sqrt(l2a)
        rel = None
        if delta_sq is not None and with_values:
            rel = math.sqrt(delta_sq) / l2b if l2b > 0 else None
        groups.append(
            GroupChange(
                name=name,
                tensors=len(items),
                tensors_changed=tensors_changed,
                params=params,
                params_changed=params_changed,
                l2_before=l2b,
                l2_after=l2a,
                rel_change=rel,
                counts=counts,
                change_bound=movement.relative(bound_sq, l2b),
            )
        )
    groups.sort(
        key=lambda g: (-g.movement, -g.params_changed, -g.tensors_changed, _natural_key(g.name))
    )
    return groups


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
    files: tuple[FileEntry, ...] = ()  # a folder checkpoint's files, by path

    @classmethod
    def of(cls, ptr: Pointer, unsaved: bool = False) -> SnapshotSide:
        return cls(
            ptr.id,
            ptr.format,
            ptr.size,
            len(ptr.tensors),
            ptr.message,
            ptr.created,
            unsaved,
            tuple(sorted(ptr.files, key=lambda f: f.path)),
        )


@dataclass(frozen=True)
class FileChange:
    """One file of a folder checkpoint on either side.

    ``status``: ``added``, ``removed``, ``modified`` (its bytes or its execute
    bit differ) or ``unchanged``. A re-shard shows as files removed and added while every
    tensor stays unchanged.
    """

    path: str
    status: str
    size_before: int | None
    size_after: int | None


def _file_layouts(ptr: Pointer) -> dict[str, tuple[tuple[int, int, str], ...]]:
    by_file: dict[str, list[tuple[int, int, str]]] = {f.path: [] for f in ptr.files}
    for e in ptr.segments():
        if e.file is not None and e.file in by_file:
            by_file[e.file].append((e.offset, e.size, e.oid))
    return {path: tuple(items) for path, items in by_file.items()}


def diff_files(before: Pointer | None, after: Pointer | None) -> list[FileChange]:
    """The files of a folder checkpoint compared by path; empty unless a side is a folder."""
    fb = {f.path: f.size for f in before.files} if before else {}
    fa = {f.path: f.size for f in after.files} if after else {}
    if not fb and not fa:
        return []
    both = before is not None and after is not None and before.id != after.id
    lb = _file_layouts(before) if both and before else {}
    la = _file_layouts(after) if both and after else {}
    xb = {f.path for f in before.files if f.executable} if before else set()
    xa = {f.path for f in after.files if f.executable} if after else set()
    out = []
    for path in sorted(fb.keys() | fa.keys(), key=_natural_key):
        sb, sa = fb.get(path), fa.get(path)
        if sb is None:
            status = "added"
        elif sa is None:
            status = "removed"
        else:
            same = sb == sa and lb.get(path) == la.get(path) and (path in xb) == (path in xa)
            status = "unchanged" if same else "modified"  # bytes, or the execute bit
        out.append(FileChange(path, status, sb, sa))
    return out


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
    # Unsafe or unknown pickle globals the after side names and the before side did not.
    security: list[SecurityFinding] = field(default_factory=list)
    # What differs between the environments the two sides were saved in (provenance:
    # not part of ``changed``); empty when a side recorded none.
    env: list[EnvChange] = field(default_factory=list)
    # The training state (pointer ``metadata``) on both sides, every key of either side.
    state: list[MetricChange] = field(default_factory=list)
    # The optimizer-state tensors' counts; ``summary`` and ``groups`` leave them out.
    optimizer: DiffSummary | None = None

    @property
    def state_changes(self) -> list[MetricChange]:
        """The training-state values that differ (added, removed or changed)."""
        return [m for m in self.state if m.status != "unchanged"]

    # A folder checkpoint's files on either side (empty for a single file), by path.
    files: list[FileChange] = field(default_factory=list)

    @property
    def files_changed(self) -> list[FileChange]:
        return [f for f in self.files if f.status != "unchanged"]

    @property
    def changed(self) -> bool:
        return (
            self.status != "unchanged"
            or any(c.changed for c in self.tensors)
            or bool(self.files_changed)
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
    problems: list[ItemProblem] = field(default_factory=list)  # checkpoints that could not be read
    # ``diff REV_A:PATH_A REV_B:PATH_B``: the two checkpoints compared (None: same paths)
    before_path: str | None = None
    after_path: str | None = None

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.checkpoints)

    @property
    def failed(self) -> bool:
        return any(g.failed for g in self.gate)


def compare_checkpoint(
    path: str,
    before: Pointer | None,
    after: Pointer | None,
    changes: list[TensorChange],
    *,
    depth: int | None = None,
    unsaved: bool = False,
    note_before: tuple[Mapping[str, Scalar], Mapping[str, Scalar]] | None = None,
    note_after: tuple[Mapping[str, Scalar], Mapping[str, Scalar]] | None = None,
    better: Mapping[str, str] | None = None,
    evaluated_before: Collection[str] = (),
    evaluated_after: Collection[str] = (),
) -> CheckpointDiff:
    """The comparison of two snapshots of one checkpoint (either may be absent).

    ``changes`` is :func:`diff_tensors` of their tensors (with values when
    asked); ``note_before`` / ``note_after`` the (metrics, params) of the git
    note that applies to each side, whose values win over the pointer's.
    ``unsaved``: the after side was read from a working checkpoint that
    differs from its pointer. ``better``: metric name -> which way is better
    (``.gitsnap.yaml``, :func:`gitsnap.metrics.read_directions`).
    ``evaluated_before`` / ``evaluated_after``: the metrics of each side's note
    that ``git snap eval`` wrote for that side's snapshot
    (:func:`gitsnap.notes.evaluated`).
    """
    nb_m, nb_p = note_before or ({}, {})
    na_m, na_p = note_after or ({}, {})
    model, optimizer = split_optimizer(changes, path)
    return CheckpointDiff(
        path=path,
        status=checkpoint_status(before, after),
        before=SnapshotSide.of(before) if before else None,
        after=SnapshotSide.of(after, unsaved) if after else None,
        tensors=changes,
        groups=group_changes(model, depth),
        summary=summarize(model),
        metrics=compare(
            before.metrics if before else {},
            nb_m,
            after.metrics if after else {},
            na_m,
            better,
            evaluated_before=evaluated_before,
            evaluated_after=evaluated_after,
        ),
        params=compare(before.params if before else {}, nb_p, after.params if after else {}, na_p),
        security=introduced(before, after, path),
        env=env_changes(before.env if before else {}, after.env if after else {}),
        state=compare(before.metadata if before else {}, {}, after.metadata if after else {}, {}),
        optimizer=summarize(optimizer) if optimizer else None,
        files=diff_files(before, after),
    )


__all__ = [
    "STATUSES",
    "CheckpointDiff",
    "DiffResult",
    "DiffSummary",
    "FileChange",
    "GroupChange",
    "SnapshotSide",
    "TensorChange",
    "TensorSide",
    "ValueDelta",
    "checkpoint_status",
    "compare_checkpoint",
    "diff_files",
    "diff_tensors",
    "group_changes",
    "group_name",
    "is_optimizer_state",
    "split_optimizer",
    "summarize",
]
