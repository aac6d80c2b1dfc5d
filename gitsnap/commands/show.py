"""``git snap show [REV:]PATH``: one snapshot, its tensors with stats, metrics and params.

The argument is read as ``git snap diff`` reads each of its sides
(:func:`gitsnap.revisions.locate`): ``REV:PATH`` is the snapshot committed at
REV, a bare ``PATH`` the work tree's pointer, and a registry reference
(``NAME@v1.2.0``, ``NAME#prod``) that model's snapshot at its commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import revisions
from gitsnap.errors import PathError
from gitsnap.pointer.peek import SUFFIX
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.pointer import Pointer


@dataclass(frozen=True)
class ShowResult:
    path: str  # the checkpoint, as shown to the user (relative to the current folder)
    rev: str | None  # the revision as the user named it; None: the work tree's pointer
    commit: str | None
    pointer: Pointer = field(repr=False)


def show(spec: str, cwd: Path | None = None) -> ShowResult:
    """One snapshot: ``PATH`` (work tree), ``REV:PATH``, or a model (``NAME#prod``).

    Example::

        res = api.show("HEAD~1:model.safetensors")
        print(res.commit, res.pointer.id, len(res.pointer.tensors))
    """
    from gitsnap.pointer import loads

    ws = Workspace.discover(cwd)
    loc = revisions.locate(ws, spec)
    shown = ws.display(loc.path)
    if loc.rev is None:
        ptr = ws.read_pointer(loc.path)
        if ptr is None:
            raise PathError(
                f"{shown}: no pointer {shown}{SUFFIX} in the work tree",
                hint=f"git snap save {shown}, or REV:{shown} for a commit's snapshot",
            )
        return ShowResult(shown, None, None, ptr)
    commit = revisions.commit_of(ws, loc.rev)
    raw = revisions.blob_at(ws, commit, loc.path)
    if raw is None:
        raise PathError(
            f"{shown} is not a snapshot at {loc.rev}",
            hint=f"git snap log {shown} lists the commits that have one",
        )
    return ShowResult(shown, loc.rev, commit, loads(raw, source=f"{loc.rev}:{loc.path}{SUFFIX}"))
