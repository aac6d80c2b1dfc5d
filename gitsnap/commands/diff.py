"""``git snap diff`` (and ``textconv``, what ``git diff`` shows of a pointer).

Each side is a commit's pointers (read with one ``git cat-file --batch``,
:func:`gitsnap.revisions.blobs_at`) or the work tree's; the comparison of
two snapshots of a checkpoint is :func:`gitsnap.diff.compare_checkpoint`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from gitsnap import gitio, revisions
from gitsnap.errors import GitsnapError, MissingDependency, ObjectMissing, PathError, UsageError
from gitsnap.pointer.peek import SUFFIX, pointer_bytes
from gitsnap.problems import ItemProblem, collecting
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.diff import CheckpointDiff, DiffResult, TensorChange
    from gitsnap.metrics import Condition
    from gitsnap.notes import Note
    from gitsnap.pointer import Entry, FileEntry, Pointer
    from gitsnap.statcache import StatCache

_T = TypeVar("_T")


@dataclass
class _Side:
    """One side of ``diff``: a commit's pointers, or the work tree's."""

    label: str
    commit: str | None
    pointers: dict[str, Pointer]
    note: Note | None = None  # the commit's note
    files: dict[str, Path] = field(default_factory=dict)  # work tree: checkpoints to read
    unsaved: set[str] = field(default_factory=set)
    notes_for: dict[str, Note] = field(default_factory=dict)  # path -> the note that applies
    # path -> the metrics of that note that ``git snap eval`` wrote for this snapshot
    evaluated_for: dict[str, frozenset[str]] = field(default_factory=dict)
    problems: list[ItemProblem] = field(default_factory=list)  # checkpoints that could not be read
    bad: set[str] = field(default_factory=set)  # their paths
    config: bytes | None = None  # a commit's .gitsnap.yaml, read with its pointers


@dataclass(frozen=True)
class _Fetched:
    """What git says about one side of a diff, before any pointer is parsed."""

    commit: str | None  # None: no commit yet (a new repository)
    blobs: dict[str, bytes]
    note: Note | None
    note_error: GitsnapError | None  # raised after the pointers are read, as it used to be
    config: bytes | None = None  # the commit's .gitsnap.yaml (metric directions)


def _fetch_commit_side(ws: Workspace, rev: str, wanted: Sequence[str], implicit: bool) -> _Fetched:
    from gitsnap import notes

    if implicit and not gitio.has_commits(ws.root):
        return _Fetched(None, {}, None, None)  # a new repository: everything is added
    from gitsnap.metrics import CONFIG_FILE

    commit = revisions.commit_of(ws, rev)
    blobs, files = revisions.blobs_and_files_at(ws, commit, wanted, [CONFIG_FILE], within=True)
    config = files[CONFIG_FILE]
    try:
        return _Fetched(commit, blobs, notes.read(ws.root, commit), None, config)
    except GitsnapError as exc:
        return _Fetched(commit, blobs, None, exc, config)


class _Background(threading.Thread, Generic[_T]):
    """``fn()`` in a thread; :meth:`result` joins it and returns or raises its outcome."""

    def __init__(self, fn: Callable[[], _T]) -> None:
        super().__init__(name="gitsnap-diff", daemon=True)
        self._fn = fn
        self._out: _T | None = None
        self._exc: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._out = self._fn()
        except BaseException as exc:  # handed to the caller by result()
            self._exc = exc

    def result(self) -> _T:
        self.join()
        if self._exc is not None:
            raise self._exc
        assert self._out is not None
        return self._out


def _commit_side(rev: str, got: _Fetched, parser: revisions.Parser) -> _Side:
    if got.commit is None:
        return _Side(rev, None, {})
    problems: list[ItemProblem] = []
    pointers = parser.parse_all(got.blobs, rev, problems)
    if got.note_error is not None:
        raise got.note_error
    side = _Side(rev, got.commit, pointers, got.note, problems=problems, config=got.config)
    side.bad = set(got.blobs) - set(pointers)
    side.notes_for = dict.fromkeys(side.pointers, got.note) if got.note else {}
    side.evaluated_for = _evaluated(side)
    return side


def _evaluated(side: _Side) -> dict[str, frozenset[str]]:
    """Per checkpoint with a note, the note's metrics that ``git snap eval`` wrote for the
    snapshot this side has (the note's eval record names it by repository path)."""
    from gitsnap import notes

    return {
        rel: names
        for rel, note in side.notes_for.items()
        if (names := notes.evaluated(note, rel, side.pointers[rel].id))
    }


def _worktree_side(
    ws: Workspace,
    wanted: Sequence[str],
    head: _Side | None,
    workers: int | None,
    parser: revisions.Parser,
) -> _Side:
    """The work tree's pointers; a checkpoint that differs from its pointer is ingested.

    Ingesting it stores nothing. The stat cache answers for an unchanged
    checkpoint without reading it.
    HEAD's note applies to a checkpoint whose snapshot is still HEAD's.
    """
    from gitsnap import notes

    cache = ws.stat_cache
    side = _Side("working tree", None, {})
    for rel, raw in revisions.worktree_blobs(ws, wanted, within=True).items():
        side.bad.add(rel)
        with collecting(side.problems, ws.display(rel)):
            _worktree_item(ws, side, rel, raw, parser, cache, workers)
            side.bad.discard(rel)
    cache.save()
    if gitio.has_commits(ws.root):
        head_commit = gitio.resolve_commit(ws.root, "HEAD")
        if head is not None and head.commit == head_commit:
            head_note, head_ptrs = head.note, head.pointers
        else:
            head_note = notes.read(ws.root, head_commit)
            head_ptrs = (
                revisions.pointers_at(ws, head_commit, "HEAD", wanted, parser, within=True)
                if head_note
                else {}
            )
        if head_note:
            side.notes_for = {
                rel: head_note
                for rel, p in side.pointers.items()
                if rel in head_ptrs and head_ptrs[rel].id == p.id
            }
            side.evaluated_for = _evaluated(side)
    return side


def _worktree_item(  # noqa: PLR0917 - one checkpoint of _worktree_side's loop
    ws: Workspace,
    side: _Side,
    rel: str,
    raw: bytes,
    parser: revisions.Parser,
    cache: StatCache,
    workers: int | None,
) -> None:
    from gitsnap import snapshot

    ptr = parser.parse(raw, f"{rel}{SUFFIX}")
    path = ws.root / rel
    try:
        st = snapshot.stat_path(path)  # a folder checkpoint: all its files
    except FileNotFoundError:
        side.pointers[rel] = ptr  # no checkpoint here: the pointer is the work tree's state
        return
    if cache.get(rel, st) != ptr.id:
        started_ns = time.time_ns()
        ing = snapshot.ingest(path, None, previous=ptr, want_stats=True, workers=workers)
        cache.put(rel, st, ing.id, started_ns)
        if ing.id != ptr.id:
            ptr = snapshot.pointer_of(
                ing, rel, parent=ptr.id, message=ptr.message, metrics=ptr.metrics,
                params=ptr.params,
            )  # fmt: skip
            side.unsaved.add(rel)
    side.pointers[rel] = ptr
    side.files[rel] = path


def _value_sources(
    ws: Workspace,
    before: _Side,
    after: _Side,
    changes: dict[str, list[TensorChange]],
    workers: int | None,
) -> None:
    """Make sure every object a value diff reads from the store is here: fetch it, or say how."""
    from gitsnap.diff_values import value_dtypes_supported
    from gitsnap.pointer import Entry, Pointer

    needed: dict[tuple[str, str | None], list[Entry]] = {}
    labels: dict[tuple[str, str | None], str] = {}
    for rel, items in changes.items():
        for c in items:
            if not value_dtypes_supported(c):
                continue
            for side, ts in ((before, c.before), (after, c.after)):
                if ts is None or rel in side.files or ws.store.has(ts.oid):
                    continue
                key = (rel, side.commit)
                labels[key] = side.label
                needed.setdefault(key, []).append(
                    Entry(
                        offset=ts.offset, size=ts.size, oid=ts.oid, name=c.name,
                        dtype=ts.dtype, shape=ts.shape, file=ts.file,
                    )
                )  # fmt: skip
    if not needed:
        return
    revs = sorted({labels[k] for k in needed})
    hint = f"git snap fetch {' '.join(r for r in revs if r != 'working tree') or ''}".strip()
    count = sum(len(v) for v in needed.values())
    try:
        from gitsnap.remote import configured_remote

        configured_remote(ws.require_dvc())
    except MissingDependency:
        raise  # a remote is configured, dvc to reach it is not installed: say so
    except (ImportError, GitsnapError):
        raise ObjectMissing(
            f"{count} object(s) needed by --values are not in the local store "
            "and no remote is set up to fetch them",
            hint=f"{hint} (after configuring a DVC remote), or run without --values",
        ) from None
    from gitsnap.commands.checkout import fetch_missing

    refs = [
        revisions.SnapshotRef(
            rel,
            commit,
            Pointer(id="0" * 64, path=rel, format="", size=0, tensors=entries, blobs=[]),
        )
        for (rel, commit), entries in needed.items()
    ]
    fetch_missing(ws, refs, None, workers)


def diff(
    rev_a: str | None = None,
    rev_b: str | None = None,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    values: bool = False,
    depth: int | None = None,
    fail_on: Sequence[str] = (),
    allow_missing: bool = False,
    cwd: Path | None = None,
    workers: int | None = None,
) -> DiffResult:
    """Compare snapshots tensor by tensor and metric by metric (a :class:`gitsnap.diff.DiffResult`).

    No revision: HEAD's pointers vs the work tree (a checkpoint changed since
    its pointer is read from disk, nothing is stored). One revision: it vs the
    work tree. Two: those commits. ``REV:PATH`` on either side compares two
    checkpoints, at any paths (a bare ``PATH`` beside it is the work tree's;
    a lone ``REV:PATH`` is compared with the same path in the work tree;
    ``paths`` must then be empty). ``values`` also reads the objects of
    modified tensors (fetching them if needed); ``fail_on`` takes conditions
    such as ``"accuracy < -0.01"`` whose verdicts land in ``result.gate``.

    Example::

        result = api.diff("main", "HEAD", values=True, fail_on=["accuracy < -0.01"])
        steps = api.diff("HEAD:ckpts/checkpoint-500", "HEAD:ckpts/checkpoint-1000")
        for ck in result.checkpoints:
            print(ck.path, ck.summary.tensors_changed, [g.name for g in ck.groups[:3]])
        if result.failed:
            ...
    """
    from gitsnap import metrics as m

    if rev_a is None and rev_b is not None:
        raise UsageError("a second revision needs a first one", hint="git snap diff REV_A REV_B")
    if depth is not None and depth < 1:
        raise UsageError(
            f"--depth must be at least 1, got {depth}",
            hint="leave it out for the automatic layer rule",
        )
    conditions = [m.Condition.parse(text) for text in fail_on]
    ws = Workspace.discover(cwd)
    parser = revisions.Parser()  # tensor lines both sides have are parsed once
    between = _two_paths(ws, rev_a, rev_b, paths)
    if between is not None:
        before, after = (
            _located_side(ws, loc, between[1].path, parser, workers) for loc in between
        )
        return _compare(
            ws, before, after, values=values, depth=depth, conditions=conditions,
            allow_missing=allow_missing, workers=workers, located=between,
        )  # fmt: skip
    wanted = [ws.relpath(p) for p in paths]
    # `diff clf@v1.0.0 clf#prod` (or one model reference vs the work tree) compares that model
    model_refs = [revisions.model_ref(ws, r) for r in (rev_a, rev_b) if r is not None]
    model_paths = {ref.path for ref in model_refs if ref is not None}
    if not wanted and model_refs and all(model_refs) and len(model_paths) == 1:
        wanted = list(model_paths)
    if rev_b is None:
        rev = rev_a or "HEAD"
        before = _commit_side(
            rev, _fetch_commit_side(ws, rev, wanted, implicit=rev_a is None), parser
        )
        after = _worktree_side(ws, wanted, before, workers, parser)
    else:
        # The after side's git processes run while the before side is parsed
        # (~25 ms of a 2,000-tensor diff); errors still come in the same order.
        b = rev_b
        later = _Background(lambda: _fetch_commit_side(ws, b, wanted, False))
        try:
            before = _commit_side(
                rev_a or "HEAD", _fetch_commit_side(ws, rev_a or "HEAD", wanted, False), parser
            )
        finally:
            later.join()
        after = _commit_side(rev_b, later.result(), parser)
    # A checkpoint one side cannot read is reported, not shown as added or removed.
    if wanted and not (set(before.pointers) | set(after.pointers) | before.bad | after.bad):
        raise PathError(
            f"no snapshot of {', '.join(wanted)} in {before.label} or the {after.label}"
            if rev_b is None
            else f"no snapshot of {', '.join(wanted)} in {before.label} or {after.label}",
            hint="git snap log PATH lists the commits that have one",
        )
    return _compare(
        ws, before, after, values=values, depth=depth, conditions=conditions,
        allow_missing=allow_missing, workers=workers, wanted=wanted,
    )  # fmt: skip


def _compare(
    ws: Workspace,
    before: _Side,
    after: _Side,
    *,
    values: bool,
    depth: int | None,
    conditions: Sequence[Condition],
    allow_missing: bool,
    workers: int | None,
    located: tuple[revisions.Located, revisions.Located] | None = None,
    wanted: Sequence[str] = (),
) -> DiffResult:
    """The diff of two sides' pointers, checkpoint by checkpoint (same path on both sides)."""
    from gitsnap import diff as d
    from gitsnap import metrics as m

    bad = before.bad | after.bad
    rels = sorted((set(before.pointers) | set(after.pointers)) - bad)
    problems = [*before.problems, *after.problems]
    # `-- ckpt/model.safetensors`: a folder checkpoint limited to the files named inside it.
    parts = {rel: _parts(rel, wanted, before, after) for rel in rels}

    def tensors(side: _Side, rel: str) -> list[Entry]:
        ptr = side.pointers.get(rel)
        found = ptr.tensors if ptr is not None else []
        only = parts[rel]
        return found if only is None else [e for e in found if _within(e.file, only)]

    changes = {rel: d.diff_tensors(tensors(before, rel), tensors(after, rel)) for rel in rels}
    if values:
        _compute_values(ws, before, after, changes, rels, workers)
    better = (
        m.directions_of(before.config, f"{before.commit[:10]}:{m.CONFIG_FILE}")
        if before.commit is not None
        else m.read_directions(ws.root, None)
    )
    out = []
    for rel in rels:
        na, nb = before.notes_for.get(rel), after.notes_for.get(rel)
        ea, eb = before.evaluated_for.get(rel, ()), after.evaluated_for.get(rel, ())
        out.append(
            d.compare_checkpoint(
                ws.display(rel),
                before.pointers.get(rel),
                after.pointers.get(rel),
                changes[rel],
                depth=depth,
                unsaved=rel in after.unsaved,
                note_before=(na.metrics, na.params) if na else None,
                note_after=(nb.metrics, nb.params) if nb else None,
                better=better,
                evaluated_before=ea,
                evaluated_after=eb,
            )
        )
    out = [_limited(ck, parts[rel]) for ck, rel in zip(out, rels, strict=True)]
    gate = m.evaluate(
        conditions, [(c.path, [*c.metrics, *c.params]) for c in out], allow_missing=allow_missing
    )
    labels = (before.label, after.label)
    if located is not None:  # two paths: each side is named REV:PATH, or PATH (working tree)
        labels = (
            located[0].label(ws.display(located[0].path)),
            located[1].label(ws.display(located[1].path)),
        )
    return d.DiffResult(
        *labels, before.commit, after.commit, values, depth, out, gate, problems,
        before_path=ws.display(located[0].path) if located else None,
        after_path=ws.display(located[1].path) if located else None,
    )  # fmt: skip


def _two_paths(
    ws: Workspace,
    rev_a: str | None,
    rev_b: str | None,
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[revisions.Located, revisions.Located] | None:
    """The two checkpoints of ``diff REV_A:PATH_A REV_B:PATH_B``; None for a diff by revisions.

    When either side is ``REV:PATH``, each side names one checkpoint:
    ``REV:PATH``, or a bare ``PATH`` for the work tree's. A lone ``REV:PATH``
    is compared with the same path in the work tree.
    """
    words = [w for w in (rev_a, rev_b) if w is not None]
    if not any(revisions.split_rev_path(w) is not None for w in words):
        return None
    if paths:
        raise UsageError(
            "REV:PATH already names its checkpoint; it cannot be limited with -- PATH",
            hint="git snap diff REV_A:PATH_A REV_B:PATH_B (without -- PATH), "
            "or git snap diff REV_A REV_B -- PATH",
        )
    a = revisions.locate(ws, words[0])
    b = revisions.locate(ws, words[1]) if len(words) > 1 else revisions.Located(None, a.path)
    return a, b


def _located_side(
    ws: Workspace, loc: revisions.Located, key: str, parser: revisions.Parser, workers: int | None
) -> _Side:
    """One side of a two-path diff: the snapshot ``loc`` names, filed under ``key``.

    Both sides are filed under the after side's path, so the comparison
    below pairs them as one checkpoint.
    """
    shown = ws.display(loc.path)
    if loc.rev is None:
        side = _worktree_side(ws, [loc.path], None, workers, parser)
    else:
        side = _commit_side(loc.rev, _fetch_commit_side(ws, loc.rev, [loc.path], False), parser)
    if loc.path not in side.pointers and loc.path not in side.bad:
        where = f"at {loc.rev}" if loc.rev is not None else "in the work tree"
        inside = revisions.select(side.pointers, [loc.path])
        raise PathError(
            f"{shown} is not a snapshot {where}"
            + (f" (it holds {len(inside)}: {', '.join(sorted(inside)[:3])})" if inside else ""),
            hint=(f"git snap log {shown} lists the commits that have one; " if loc.rev else "")
            + "a checkpoint is named by the file or folder git snap save was given"
            + ("" if loc.rev else ", and REV:PATH names one at a commit"),
        )

    def one(mapping: dict[str, _T]) -> dict[str, _T]:
        return {key: mapping[loc.path]} if loc.path in mapping else {}

    side.pointers, side.files, side.notes_for, side.evaluated_for = (
        one(side.pointers),
        one(side.files),
        one(side.notes_for),
        one(side.evaluated_for),
    )
    bad = loc.path in side.bad  # reported below, under its own name; not compared
    side.unsaved = {key} if loc.path in side.unsaved else set()
    side.bad = {key} if bad else set()
    side.problems = side.problems if bad else []
    return side


def _within(file: str | None, parts: Sequence[str]) -> bool:
    """Whether a folder's file is one of ``parts`` or below one of them."""
    return file is not None and any(file == p or file.startswith(p + "/") for p in parts)


def _parts(rel: str, wanted: Sequence[str], before: _Side, after: _Side) -> list[str] | None:
    """The files of checkpoint ``rel`` the path arguments name inside it; None: all of it.

    A path that names no file of either side is an error (a typo would show "no change").
    """
    parts = revisions.inside(rel, wanted)
    if parts is None:
        return None
    files = [f.path for side in (before, after) for f in _files_of(side.pointers.get(rel))]
    for part in parts:
        if not any(_within(f, [part.rstrip("/")]) for f in files):
            where = f"{before.label} or {'the ' if after.commit is None else ''}{after.label}"
            raise PathError(
                f"{rel}/{part}: no such file in the folder checkpoint {rel} in {where}",
                hint=f"git snap show {rel} --json lists the files of the checkpoint",
            )
    return [p.rstrip("/") for p in parts]


def _files_of(ptr: Pointer | None) -> list[FileEntry]:
    return [] if ptr is None else ptr.files


def _limited(ck: CheckpointDiff, parts: Sequence[str] | None) -> CheckpointDiff:
    """A folder's diff limited to ``parts``: its files, and the status they have."""
    from dataclasses import replace

    if parts is None:
        return ck
    files = [f for f in ck.files if _within(f.path, parts)]
    moved = any(f.status != "unchanged" for f in files)
    status = "unchanged" if ck.status == "modified" and not moved else ck.status
    return replace(ck, files=files, status=status)


def _compute_values(  # noqa: PLR0917 - the two sides and what to compute
    ws: Workspace,
    before: _Side,
    after: _Side,
    changes: dict[str, list[TensorChange]],
    rels: Sequence[str],
    workers: int | None,
) -> None:
    from gitsnap import diff_values as dv

    _value_sources(ws, before, after, changes, workers)
    store = dv.StoreSource(ws.store)
    for rel in rels:
        # The work tree's side is read from its files (either side, with two paths).
        src_before: dv.StoreSource | dv.FileSource = store
        src_after: dv.StoreSource | dv.FileSource = store
        try:
            if rel in before.files:
                src_before = dv.FileSource(before.files[rel])
            if rel in after.files:
                src_after = dv.FileSource(after.files[rel])
            changes[rel] = dv.compute_values(changes[rel], src_before, src_after, workers=workers)
        finally:
            for src in (src_before, src_after):
                if isinstance(src, dv.FileSource):
                    src.close()


def textconv(path: str | os.PathLike[str]) -> Pointer | bytes:
    """What ``git diff`` shows for a pointer file.

    The parsed pointer, or the raw bytes if it is not one: git hands textconv
    a temporary copy of each side; a side that is not a valid pointer (a
    merge conflict, a hand edit) is shown as it is rather than failing the
    whole ``git diff``.
    """
    from gitsnap.pointer import loads

    try:
        data = pointer_bytes(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise PathError(
            f"{os.fspath(path)}: no such file",
            hint="git snap textconv FILE shows a pointer file as git diff does",
        ) from None
    try:
        return loads(data, source=str(path))
    except GitsnapError:
        return data
