"""``git snap log``: snapshot history, newest first (and reading one pointer file)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio, revisions
from gitsnap.errors import PathError
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


def log(path: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Listing[LogEntry]:
    """Snapshot history, newest first.

    The uncommitted pointer (if any) comes first, then each commit that changed it.
    A version whose pointer does not parse is left out and listed in ``.problems``.

    Example::

        for e in api.log("model.safetensors"):
            print(e.commit, e.snapshot_id[:12], e.metrics)
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
    entries: list[LogEntry] = []
    problems: list[ItemProblem] = []
    for rel in rels:
        history = gitio.log(ws.root, rel + SUFFIX)
        blobs = gitio.cat_blobs(ws.root, [f"{h.commit}:{rel}{SUFFIX}" for h in history])
        try:
            working_raw: bytes | None = pointer_bytes(ws.root / (rel + SUFFIX))
        except FileNotFoundError:
            working_raw = None
        head_raw = blobs.get(f"{history[0].commit}:{rel}{SUFFIX}") if history else None
        found: list[LogEntry] = []
        # A pointer in a merge conflict is no snapshot (status names it): log skips it.
        if working_raw is not None and working_raw != head_raw and not is_conflicted(working_raw):
            with collecting(problems, ws.display(rel)):
                ptr = parser.parse(working_raw, rel + SUFFIX)
                found.append(LogEntry.of(rel, ptr, None, None, ""))
        for h in history:
            raw = blobs[f"{h.commit}:{rel}{SUFFIX}"]
            if raw is not None:
                with collecting(problems, f"{h.commit[:12]}:{rel}"):
                    ptr = parser.parse(raw, f"{h.commit[:12]}:{rel}{SUFFIX}")
                    found.append(LogEntry.of(rel, ptr, h.commit, h.time, h.subject))
        if path is not None and not found and not problems:
            raise PathError(f"{path}: no snapshots recorded", hint=f"git snap save {path}")
        entries.extend(found)
    if path is None:
        entries.sort(key=lambda e: (e.commit_time is not None, -(e.commit_time or 0)))
    return Listing(entries, problems)


def read_pointer_file(path: str | os.PathLike[str]) -> Pointer:
    """Parse one pointer file from disk (no repository needed)."""
    from gitsnap.pointer import loads

    p = Path(path)
    try:
        return loads(pointer_bytes(p), source=str(p))
    except FileNotFoundError:
        raise PathError(f"{p}: no such pointer file") from None
