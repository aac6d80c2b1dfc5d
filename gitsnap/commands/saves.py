"""``git snap log --all-saves``: every save the snapshot journal holds, committed or not."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from gitsnap import gitio, journal, revisions
from gitsnap.errors import PathError
from gitsnap.metrics import Scalar
from gitsnap.problems import ItemProblem, Listing, collecting
from gitsnap.workspace import Workspace


@dataclass(frozen=True)
class SaveEntry:
    path: str
    entry: str  # the journal entry's id
    recorded: str  # when it was recorded, UTC ISO 8601
    reason: str  # "save", or the command that was about to drop it ("checkout")
    snapshot_id: str
    parent: str | None
    committed: bool  # a commit (reachable from a ref or the reflog) records this snapshot
    commit: str | None  # one such commit
    message: str
    metrics: dict[str, Scalar]
    params: dict[str, Scalar]
    tensors: int
    size: int


def all_saves(
    path: str | os.PathLike[str] | None = None, cwd: Path | None = None
) -> Listing[SaveEntry]:
    """Every save in the snapshot journal (of ``path``, or all), newest first.

    An uncommitted one is restored with
    ``api.checkout(paths=[path], snapshot=entry.snapshot_id)``.

    Example::

        for e in api.all_saves("model.safetensors"):
            print(e.snapshot_id[:12], "committed" if e.committed else "uncommitted", e.metrics)
    """
    ws = Workspace.discover(cwd)
    rel = ws.relpath(path) if path is not None else None
    found = journal.entries(ws.git_dir, rel)
    if rel is not None and not found:
        raise PathError(
            f"{path}: the snapshot journal holds no save of it",
            hint=f"git snap save {path} records one; git snap log {path} lists the committed ones",
        )
    parser = revisions.Parser()
    problems: list[ItemProblem] = []
    commits: dict[tuple[str, str], str] = {}
    wanted = {e.path for e in found}
    if found and gitio.has_commits(ws.root):
        for v in revisions.versions(ws.root, ["--all", "--reflog"]):
            if v.path in wanted:
                with collecting(problems, f"{v.commit[:12]}:{v.path}"):
                    commits.setdefault((v.path, parser.parse(v.raw, v.path).id), v.commit)
    out: list[SaveEntry] = []
    for e in found:
        read = e.pointer()  # one entry's bytes at a time: a huge journal is never held whole
        if read is None:
            problems.append(
                ItemProblem(
                    ws.display(e.path),
                    f"the snapshot journal's entry {e.id} of {ws.display(e.path)} is damaged",
                    "it cannot be restored; the next git snap gc --keep-last drops it",
                )
            )
            continue
        ptr = read[0]
        commit = commits.get((e.path, e.snapshot_id))
        when = datetime.fromtimestamp(e.time_ns / 1e9, timezone.utc)
        out.append(
            SaveEntry(
                path=ws.display(e.path),
                entry=e.id,
                recorded=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                reason=e.reason,
                snapshot_id=e.snapshot_id,
                parent=ptr.parent,
                committed=commit is not None,
                commit=commit,
                message=ptr.message,
                metrics=dict(ptr.metrics),
                params=dict(ptr.params),
                tensors=len(ptr.tensors),
                size=ptr.size,
            )
        )
    return Listing(out, problems)
