"""``git snap compare``: many snapshots side by side, the best picked by a metric.

Each revision is one column. The first one is the reference: every other
column is :func:`gitsnap.commands.diff.diff` of the first against it, so a
column's metrics and params are the diff's (pointer and note merged, the
note winning, each value marked by its source; DESIGN D6), its change from
the first is the diff's (structure and stats, or the exact ``‖ΔW‖/‖W‖``
with ``values``), and the direction of a metric is the one ``.gitsnap.yaml``
declares at the first revision, as for a diff's base side. What a column
stores (each distinct object once, and what no column to its left already
needs) and its training state (``epoch``, ``global_step``, … from the
pointer's metadata) come from its pointer.

With ``metric``, the best column is the one whose value of that metric is
the largest (``best="max"``) or smallest (``"min"``); without ``best``, the
direction ``.gitsnap.yaml`` declares (``higher`` -> max, ``lower`` -> min).
``tag`` / ``stage`` then register the best as a version or assign it a
stage in the registry (GTO-compatible tags, :mod:`gitsnap.registry`).

At most :data:`MAX_REVISIONS` revisions: each is one diff against the first.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import revisions
from gitsnap.errors import UsageError
from gitsnap.problems import ItemProblem
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.diff import CheckpointDiff, DiffResult, GroupChange
    from gitsnap.metrics import MetricChange, Scalar
    from gitsnap.pointer import Pointer
    from gitsnap.registry import TagResult

# Columns at most: each is one diff against the first, and a table past this
# many columns is read by no one (--json of several runs serves tooling).
MAX_REVISIONS = 32
# Layers listed per column: the most moved since the first.
TOP_LAYERS = 3
# The last component of a pointer metadata key (after a folder's ``file:``) that
# says how far training got: Lightning's ``epoch`` / ``global_step``, the
# Trainer's ``trainer_state.json`` and a hand-written ``{"step": ...}``.
TRAINING_KEYS = ("epoch", "global_step", "step")
BEST = ("max", "min")
_BY_DIRECTION = {"higher": "max", "lower": "min"}


@dataclass(frozen=True)
class Drift:
    """How far a column's snapshot moved from the first column's (the diff's rankings).

    ``movement`` is the whole checkpoint rolled up as one group
    (:func:`gitsnap.diff.group_changes`): ``‖ΔW‖/‖W_first‖`` when every
    changed tensor's values were read (``exact``), else the larger of the
    stats lower bound and the norm change. ``layers`` are the most-moved
    groups, as the diff ranks them.
    """

    tensors_changed: int
    tensors: int
    params_changed: int
    params_changed_fraction: float
    bytes_new: int  # tensor bytes whose object the first snapshot does not have
    movement: float
    rel_change: float | None  # exact, with values
    change_bound: float | None  # the stats lower bound
    exact: bool
    layers: list[GroupChange] = field(default_factory=list)


@dataclass(frozen=True)
class Column:
    """One revision's snapshot of the checkpoint (``snapshot_id`` None: it has none there)."""

    rev: str  # as the user named it
    commit: str
    snapshot_id: str | None
    message: str = ""
    created: str = ""
    format: str = ""
    size: int = 0  # logical bytes of the checkpoint
    tensors: int = 0
    stored_bytes: int = 0  # each distinct object of the snapshot once
    new_bytes: int = 0  # of those, objects no column to the left needs
    training: dict[str, Scalar] = field(default_factory=dict)
    drift: Drift | None = None  # None: the first column, or no snapshot on either side

    @property
    def present(self) -> bool:
        return self.snapshot_id is not None


@dataclass(frozen=True)
class Row:
    """One metric or param across the columns.

    ``cells[i]`` compares the first column with column ``i``
    (:class:`gitsnap.metrics.MetricChange`): its ``after`` is column ``i``'s
    value (``source_after`` where it comes from: ``note`` or ``pointer``;
    ``origin_after`` says ``eval`` for a note's value ``git snap eval`` wrote),
    ``abs_change`` / ``verdict`` its change from the first.
    """

    name: str
    kind: str  # "metric" or "param"
    better: str | None  # "higher" / "lower", as .gitsnap.yaml declares; None: not declared
    cells: list[MetricChange]


@dataclass(frozen=True)
class CheckpointComparison:
    path: str  # as shown (relative to the current directory when below it)
    columns: list[Column]
    metrics: list[Row]
    params: list[Row]
    best: int | None = None  # index of the best column by the chosen metric

    @property
    def best_column(self) -> Column | None:
        return None if self.best is None else self.columns[self.best]


@dataclass(frozen=True)
class CompareResult:
    revisions: list[str]
    commits: list[str]
    values: bool
    metric: str | None
    best: str | None  # "max" / "min"
    best_from: str | None  # "option" (--best) or ".gitsnap.yaml"
    checkpoints: list[CheckpointComparison]
    registered: list[TagResult] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)


def compare(
    revs: Sequence[str],
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    metric: str | None = None,
    best: str | None = None,
    tag: tuple[str, str] | None = None,
    stage: str | None = None,
    values: bool = False,
    message: str | None = None,
    cwd: Path | None = None,
    workers: int | None = None,
) -> CompareResult:
    """Compare the snapshots of ``revs`` side by side; pick (and register) the best.

    ``paths`` narrows to some checkpoints. ``metric`` with ``best`` (``"max"``
    or ``"min"``; by default the direction ``.gitsnap.yaml`` declares) marks
    the best column. ``tag=(NAME, VERSION)`` registers the best as
    ``NAME@VERSION``; ``stage`` assigns it ``NAME#STAGE`` (NAME from ``tag``,
    else the checkpoint's model name). ``values`` measures the exact change
    from the first revision (reading, or fetching, the weights).

    Example::

        res = api.compare(["run-a", "run-b", "run-c"], ["model.safetensors"],
                          metric="accuracy", best="max", tag=("classifier", "v1.3.0"))
        ck = res.checkpoints[0]
        print(ck.best_column.rev, res.registered[0].tag)
    """
    revs = list(revs)
    _check_options(revs, metric, best, tag, stage)
    ws = Workspace.discover(cwd)
    wanted = [ws.relpath(p) for p in paths] or _model_paths(ws, revs)
    commits = [revisions.commit_of(ws, r) for r in revs]
    # A pointer that does not parse is reported (the diffs leave it out too); its
    # column shows no snapshot.
    parser = revisions.Parser()
    problems: list[ItemProblem] = []
    pointers = [
        parser.parse_all(revisions.blobs_at(ws, c, wanted), r, problems)
        for r, c in zip(revs, commits, strict=True)
    ]
    rels = sorted({rel for ptrs in pointers for rel in ptrs})
    if wanted and not rels and not problems:
        from gitsnap.errors import PathError

        raise PathError(
            f"no snapshot of {', '.join(wanted)} in {', '.join(revs)}",
            hint="git snap log PATH lists the commits that have one",
        )
    diffs = _diffs(ws, revs, pointers, values, workers)
    out = []
    for rel in rels:
        shown = ws.display(rel)
        cks = [_checkpoint_of(d, shown) for d in diffs]
        snaps = [ptrs.get(rel) for ptrs in pointers]
        out.append(_comparison(shown, revs, commits, snaps, cks))
    direction, source = None, None
    if metric is not None:
        direction, source = _direction(metric, best, out)
        out = [_with_best(ck, metric, direction) for ck in out]
    result = CompareResult(revs, commits, values, metric, direction, source, out, [], problems)
    if tag is None and stage is None:
        return result
    registered = _register(ws, result, rels, tag=tag, stage=stage, message=message)
    return dataclasses.replace(result, registered=registered)


def _check_options(
    revs: list[str],
    metric: str | None,
    best: str | None,
    tag: tuple[str, str] | None,
    stage: str | None,
) -> None:
    usage = "git snap compare REV REV... [-- PATH] [--metric NAME [--best max|min]]"
    if len(revs) < 2:
        raise UsageError("compare needs at least two revisions", hint=usage)
    if len(revs) > MAX_REVISIONS:
        raise UsageError(
            f"at most {MAX_REVISIONS} revisions, got {len(revs)}",
            hint="compare fewer at a time (git snap log PATH lists the candidates)",
        )
    if best is not None and best not in BEST:
        raise UsageError(f"--best {best!r}: expected max or min", hint=usage)
    if best is not None and metric is None:
        raise UsageError("--best needs --metric NAME", hint=usage)
    if (tag is not None or stage is not None) and metric is None:
        raise UsageError(
            "registering the best needs --metric NAME to choose it",
            hint="git snap compare REV... --metric accuracy --best max --tag NAME VERSION",
        )


def _model_paths(ws: Workspace, revs: Sequence[str]) -> list[str]:
    """``compare clf@v1.0.0 clf@v1.1.0 HEAD``: the registry references' one checkpoint."""
    refs = [revisions.model_ref(ws, r) for r in revs]
    paths = {ref.path for ref in refs if ref is not None}
    return list(paths) if len(paths) == 1 else []


def _diffs(
    ws: Workspace,
    revs: Sequence[str],
    pointers: Sequence[dict[str, Pointer]],
    values: bool,
    workers: int | None,
) -> list[DiffResult | None]:
    """The first revision against each other one, on the checkpoints either of the two has
    (None: neither has any; the first column has no diff of its own)."""
    from gitsnap.commands.diff import diff

    out: list[DiffResult | None] = [None]
    for rev, ptrs in zip(revs[1:], pointers[1:], strict=True):
        both = sorted(set(pointers[0]) | set(ptrs))
        where = [ws.root / rel for rel in both]
        out.append(
            diff(revs[0], rev, where, values=values, cwd=ws.cwd, workers=workers) if both else None
        )
    return out


def _checkpoint_of(d: DiffResult | None, shown: str) -> CheckpointDiff | None:
    return None if d is None else next((ck for ck in d.checkpoints if ck.path == shown), None)


def _stored(ptr: Pointer) -> dict[str, int]:
    """Object id -> size of the objects a snapshot needs (``git snap du``'s count)."""
    return {e.oid: e.size for e in ptr.segments()}


def training_state(ptr: Pointer) -> dict[str, Scalar]:
    """The pointer metadata that says how far training got (:data:`TRAINING_KEYS`)."""
    out: dict[str, Scalar] = {}
    for key, value in sorted(ptr.metadata.items()):
        last = key.rsplit(":", 1)[-1]
        if last in TRAINING_KEYS and isinstance(value, (int, float, str, bool)):
            out[key] = value
    return out


def _comparison(
    shown: str,
    revs: Sequence[str],
    commits: Sequence[str],
    snaps: Sequence[Pointer | None],
    cks: Sequence[CheckpointDiff | None],
) -> CheckpointComparison:
    seen: set[str] = set()
    columns = []
    for i, (rev, commit, ptr) in enumerate(zip(revs, commits, snaps, strict=True)):
        if ptr is None:
            columns.append(Column(rev, commit, None))
            continue
        objects = _stored(ptr)
        new = sum(n for oid, n in objects.items() if oid not in seen)
        seen |= set(objects)
        ck = cks[i]
        drift = _drift(ck) if i > 0 and ck is not None and ck.before is not None else None
        columns.append(
            Column(
                rev, commit, ptr.id, ptr.message, ptr.created, ptr.format, ptr.size,
                len(ptr.tensors), sum(objects.values()), new, training_state(ptr), drift,
            )
        )  # fmt: skip
    return CheckpointComparison(
        shown, columns, _rows(cks, "metric", snaps), _rows(cks, "param", snaps)
    )


def _drift(ck: CheckpointDiff) -> Drift:
    from gitsnap.diff import group_changes, split_optimizer

    # The model as one group: the rule that ranks layers, applied to all of its tensors
    # (optimizer state moves with every step: it is not drift, as in diff's summary).
    model = split_optimizer(ck.tensors, ck.path)[0] or ck.tensors
    [whole] = group_changes([dataclasses.replace(c, name="checkpoint", file=None) for c in model])
    s = ck.summary
    return Drift(
        tensors_changed=s.tensors_changed,
        tensors=max(s.tensors_before, s.tensors_after),
        params_changed=s.params_changed,
        params_changed_fraction=s.params_changed_fraction,
        bytes_new=s.bytes_new,
        movement=whole.movement,
        rel_change=whole.rel_change,
        change_bound=whole.change_bound,
        exact=whole.rel_change is not None,
        layers=[g for g in ck.groups if g.tensors_changed][:TOP_LAYERS],
    )


def _rows(
    cks: Sequence[CheckpointDiff | None], kind: str, snaps: Sequence[Pointer | None]
) -> list[Row]:
    """One row per name any column has. Column ``i > 0`` is the after side of the diff of
    the first revision against it; the first column is the before side of any of them."""
    from gitsnap.metrics import MetricChange

    def changes(ck: CheckpointDiff | None) -> list[MetricChange]:
        return [] if ck is None else ck.metrics if kind == "metric" else ck.params

    first: dict[str, MetricChange] = {}
    if snaps[0] is not None:
        ck = next((c for c in cks[1:] if c is not None), None)
        first = {
            m.name: dataclasses.replace(
                m, sources_after=m.sources_before, evaluated_after=m.evaluated_before
            )
            for m in changes(ck)
            if m.sources_before
        }
    per_column = [first]
    for ck, ptr in zip(cks[1:], snaps[1:], strict=True):
        per_column.append({m.name: m for m in changes(ck) if ptr is not None and m.sources_after})
    names = sorted({n for col in per_column for n in col})
    rows = []
    for name in names:
        before = dict(first[name].sources_after) if name in first else {}
        evaluated = name in first and first[name].evaluated_after
        better = next((m.better for col in per_column if (m := col.get(name)) is not None), None)
        cells = [
            col.get(name) or MetricChange(name, before, {}, better, evaluated_before=evaluated)
            for col in per_column
        ]
        rows.append(Row(name, kind, better, cells))
    return rows


def _number(v: Scalar) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _direction(
    metric: str, best: str | None, checkpoints: Sequence[CheckpointComparison]
) -> tuple[str, str]:
    """(``max``/``min``, where it came from) for ``metric``, or the usage error to fix."""
    from gitsnap.metrics import CONFIG_FILE, unknown_name

    rows = [r for ck in checkpoints for r in ck.metrics if r.name == metric]
    if not rows:
        known = sorted({r.name for ck in checkpoints for r in ck.metrics})
        raise UsageError(
            f"--metric {metric!r}: "
            + unknown_name(
                metric, known, what="metric", where="in these snapshots", nothing="they record none"
            ),
            hint="check the spelling (git snap metrics show REV lists a commit's metrics)",
        )
    if best is not None:
        return best, "option"
    declared = next((r.better for r in rows if r.better), None)
    if declared is None:
        raise UsageError(
            f"which way is better for {metric!r}? {CONFIG_FILE} declares no direction",
            hint=f"add --best max (or min), or declare it in {CONFIG_FILE}: "
            f"metrics: {{{metric}: {{better: higher}}}}",
        )
    return _BY_DIRECTION[declared], CONFIG_FILE


def _with_best(ck: CheckpointComparison, metric: str, direction: str) -> CheckpointComparison:
    """The column with the best numeric value of ``metric`` (the leftmost of equals)."""
    row = next((r for r in ck.metrics if r.name == metric), None)
    if row is None:
        return ck
    found: tuple[float, int] | None = None
    for i, cell in enumerate(row.cells):
        v = _number(cell.after) if cell.sources_after and ck.columns[i].present else None
        if v is None:
            continue
        if found is None or (v > found[0] if direction == "max" else v < found[0]):
            found = (v, i)
    return ck if found is None else dataclasses.replace(ck, best=found[1])


def _register(
    ws: Workspace,
    result: CompareResult,
    rels: Sequence[str],
    *,
    tag: tuple[str, str] | None,
    stage: str | None,
    message: str | None,
) -> list[TagResult]:
    """Register the best column as ``NAME@VERSION`` and/or assign it ``NAME#STAGE``."""
    from gitsnap import registry

    hint = "git snap compare REV... -- PATH --metric NAME --tag NAME VERSION"
    if len(result.checkpoints) != 1:
        raise UsageError(
            f"the revisions hold {len(result.checkpoints)} checkpoints: "
            "registering the best needs one",
            hint=hint,
        )
    [ck] = result.checkpoints
    column = ck.best_column
    if column is None:
        raise UsageError(
            f"no revision has a numeric {result.metric!r} for {ck.path}: nothing to register",
            hint="git snap metrics add --rev REV NAME=VALUE records one",
        )
    [rel] = rels
    cat = registry.catalog(ws, [rel])
    name = tag[0] if tag is not None else cat.name_for(rel)
    if name is None:
        raise UsageError(
            f"{ck.path} has no model name to assign a stage to",
            hint=f"name it with --tag NAME VERSION, or in {registry.CONFIG_FILE}: "
            f"models: {{NAME: {rel}}}",
        )
    model = cat.find(name)
    if model.path != rel:
        raise UsageError(
            f"model {name!r} is {model.path}, not the compared {rel}",
            hint=hint,
        )
    done = []
    if tag is not None:
        done.append(registry.register(ws, name, tag[1], column.commit, message=message))
    if stage is not None:
        done.append(registry.assign(ws, name, stage, column.commit, message=message))
    return done
