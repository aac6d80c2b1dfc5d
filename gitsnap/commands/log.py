"""``git snap log``: snapshot history, newest first (and reading one pointer file)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio, revisions
from gitsnap.errors import NoteError, PathError, RegistryError
from gitsnap.metrics import Scalar
from gitsnap.pointer.peek import SUFFIX, is_conflicted, pointer_bytes
from gitsnap.problems import ItemProblem, Listing, collecting
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.pointer import Pointer


@dataclass(frozen=True)
class LogEntry:
    path: str
    commit: str | None  # None: the uncommitted pointer in the work tree
    commit_time: int | None
    subject: str
    snapshot_id: str
    parent: str | None
    created: str
    message: str
    metrics: dict[str, Scalar]
    params: dict[str, Scalar]
    tensors: int
    size: int
    # Added by issue 14. ``metrics``/``params`` stay the pointer's (recorded at save);
    # ``note``: the commit's gitsnap note (measured later), None when it has none.
    note: dict[str, dict[str, Scalar]] | None = None
    tags: list[str] = field(default_factory=list)  # registry tags on this snapshot, oldest first
    stages: list[str] = field(default_factory=list)  # stages it holds now (GTO's reading)
    # The note's metrics that ``git snap eval`` wrote for this snapshot (sorted): their
    # source reads ``eval`` (:func:`gitsnap.notes.evaluated`).
    evaluated: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls, rel: str, ptr: Pointer, commit: str | None, ctime: int | None, subject: str
    ) -> LogEntry:
        return cls(
            path=rel,
            commit=commit,
            commit_time=ctime,
            subject=subject,
            snapshot_id=ptr.id,
            parent=ptr.parent,
            created=ptr.created,
            message=ptr.message,
            metrics=dict(ptr.metrics),
            params=dict(ptr.params),
            tensors=len(ptr.tensors),
            size=ptr.size,
        )

    @property
    def effective_metrics(self) -> dict[str, Scalar]:
        """The pointer's metrics with the note's on top (a note wins for the same name, D6)."""
        return {**self.metrics, **(self.note or {}).get("metrics", {})}


def log(path: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Listing[LogEntry]:
    """Snapshot history, newest first, through every parent of every merge.

    The uncommitted pointer (if any) comes first, then each commit that
    changed it, reached through any parent (``git log --full-history
    --date-order``): a branch's snapshots stay listed after it is merged. A
    merge commit is listed when it made a snapshot of its own (its pointer
    differs from every parent's) or carries a registry tag. Each entry has
    the commit's gitsnap note beside the pointer's metrics, and its registry
    tags and stages. A version whose pointer (or note) does not parse is
    listed in ``.problems``.

    Example::

        for e in api.log("model.safetensors"):
            print(e.commit, e.snapshot_id[:12], e.metrics, e.note, e.tags, e.stages)
    """
    ws = Workspace.discover(cwd)
    if path is not None:
        rels = [ws.relpath(path)]
    else:
        rels = sorted(
            set(ws.pointer_paths())
            | set(ws.pointer_paths("HEAD") if gitio.has_commits(ws.root) else [])
        )
    parser = revisions.Parser()
    problems: list[ItemProblem] = []
    marks = _registry_marks(ws, rels, problems)
    entries: list[LogEntry] = []
    for rel in rels:
        found = _path_history(ws, rel, parser, marks, problems)
        if path is not None and not found and not problems:
            raise PathError(f"{path}: no snapshots recorded", hint=f"git snap save {path}")
        entries.extend(found)
    entries = _with_notes(ws, entries, problems)
    if path is None:
        entries.sort(key=lambda e: (e.commit_time is not None, -(e.commit_time or 0)))
    return Listing(entries, problems)


_Marks = dict[tuple[str, str], tuple[list[str], list[str]]]  # (commit, path) -> (tags, stages)


def _path_history(
    ws: Workspace,
    rel: str,
    parser: revisions.Parser,
    marks: _Marks,
    problems: list[ItemProblem],
) -> list[LogEntry]:
    """One checkpoint's snapshots: the uncommitted one, then every commit's, newest first."""
    pointer = rel + SUFFIX
    history = gitio.log(ws.root, pointer)
    specs = {f"{h.commit}:{pointer}" for h in history} | {f"HEAD:{pointer}"}
    specs |= {f"{p}:{pointer}" for h in history if len(h.parents) > 1 for p in h.parents}
    blobs = gitio.cat_blobs(ws.root, sorted(specs)) if history else {}
    try:
        working_raw: bytes | None = pointer_bytes(ws.root / pointer)
    except FileNotFoundError:
        working_raw = None
    found: list[LogEntry] = []
    # A pointer in a merge conflict is no snapshot (status names it): log skips it.
    if (
        working_raw is not None
        and working_raw != blobs.get(f"HEAD:{pointer}")
        and not is_conflicted(working_raw)
    ):
        with collecting(problems, ws.display(rel)):
            found.append(LogEntry.of(rel, parser.parse(working_raw, pointer), None, None, ""))
    for h in history:
        raw = blobs.get(f"{h.commit}:{pointer}")
        tags, stages = marks.get((h.commit, rel), ([], []))
        if raw is None or (
            # a merge that kept one side's snapshot: that side's commit lists it
            len(h.parents) > 1
            and not tags
            and not stages
            and any(blobs.get(f"{p}:{pointer}") == raw for p in h.parents)
        ):
            continue
        with collecting(problems, f"{h.commit[:12]}:{rel}"):
            entry = LogEntry.of(
                rel, parser.parse(raw, f"{h.commit[:12]}:{pointer}"), h.commit, h.time, h.subject
            )
            found.append(replace(entry, tags=list(tags), stages=list(stages)))
    return found


def _with_notes(
    ws: Workspace, entries: list[LogEntry], problems: list[ItemProblem]
) -> list[LogEntry]:
    """Each committed entry with its commit's gitsnap note (all read with one cat-file)."""
    from gitsnap import notes

    raws = notes.read_many(ws.root, {e.commit for e in entries if e.commit})
    parsed: dict[str, notes.Note] = {}
    for commit, raw in raws.items():
        try:
            parsed[commit] = notes.parse(raw, source=f"note on {commit[:12]}")
        except NoteError as err:  # a note pushed by anyone: that entry shows no note
            problems.append(ItemProblem(f"note on {commit[:12]}", err.message, err.hint))

    def noted(e: LogEntry, note: notes.Note) -> LogEntry:
        return replace(
            e,
            note={"metrics": note.metrics, "params": note.params},
            evaluated=sorted(notes.evaluated(note, e.path, e.snapshot_id)),
        )

    return [noted(e, parsed[e.commit]) if e.commit in parsed else e for e in entries]


def _registry_marks(ws: Workspace, rels: list[str], problems: list[ItemProblem]) -> _Marks:
    """(commit, checkpoint path) -> its registry tags (oldest first) and the stages it holds."""
    from gitsnap import registry

    marks: _Marks = {}
    evs = registry.events(ws.root)
    if not evs:
        return marks
    by_name: dict[str, list[registry.Event]] = {}
    for e in evs:
        by_name.setdefault(e.name, []).append(e)
    try:
        models = registry.catalog(ws, rels).models
    except RegistryError as err:  # a bad .gitsnap.yaml: the paths the tags themselves name
        problems.append(ItemProblem(registry.CONFIG_FILE, err.message, err.hint))
        models = {}
    for name, group in by_name.items():
        model = models.get(name)
        last = next((e.path for e in reversed(group) if e.path), None)
        for e in group:
            at = model.path if model else e.path
            if at is not None:
                marks.setdefault((e.commit, at), ([], []))[0].append(e.tag)
        held = model.path if model else last
        if held is not None:
            for st in registry.state_of(name, group).stages:
                marks.setdefault((st.commit, held), ([], []))[1].append(st.stage)
    return marks


def read_pointer_file(path: str | os.PathLike[str]) -> Pointer:
    """Parse one pointer file from disk (no repository needed)."""
    from gitsnap.pointer import loads

    p = Path(path)
    try:
        return loads(pointer_bytes(p), source=str(p))
    except FileNotFoundError:
        raise PathError(f"{p}: no such pointer file") from None
