"""``git snap push`` / ``fetch`` / ``pull`` / ``remote status``: objects to and from a DVC remote.

Which snapshots each covers is :func:`gitsnap.revisions.snapshots`; moving
their objects is :mod:`gitsnap.transfer`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import revisions
from gitsnap.commands.checkout import CheckoutEntry, restore_selected, select
from gitsnap.errors import PathError
from gitsnap.problems import ItemProblem, raise_first
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.remote import Remote
    from gitsnap.revisions import SnapshotRef
    from gitsnap.transfer import Progress, RemoteStatusResult, TransferResult


@dataclass(frozen=True)
class PullResult:
    fetch: TransferResult
    checkout: list[CheckoutEntry]


def push(
    revs: Sequence[str] = (),
    *,
    remote: str | None = None,
    all_refs: bool = False,
    paths: Sequence[str | os.PathLike[str]] = (),
    jobs: int | None = None,
    progress: Progress | None = None,
    notes: bool = True,
    cwd: Path | None = None,
) -> TransferResult:
    """Upload the objects the DVC remote lacks.

    Covers HEAD and the work tree (or ``revs`` / ``all_refs``). Also pushes
    ``refs/notes/gitsnap`` to the git remote ``origin``. Raises
    TransferMissing / TransferCorrupt after the transfer when some objects
    could not be pushed (``err.result`` holds the summary), RemoteError when
    the remote cannot be used.

    Example::

        res = api.push()                  # default DVC remote, HEAD + work tree
        print(res.objects_transferred, res.bytes_transferred, res.objects_skipped)
        api.push(["v1.0", "main"], remote="backup", jobs=16)
    """
    from gitsnap import transfer

    ws = Workspace.discover(cwd)
    problems: list[ItemProblem] = []
    refs = _refs(ws, revs, all_refs, paths, revisions.Parser(), problems=problems)
    target = _open_remote(ws, remote, jobs)
    result = transfer.push(
        ws.root, ws.store, target, refs, jobs=jobs, progress=progress, notes=notes
    )
    raise_first(problems)  # after the others were pushed: a bad pointer fails the push
    return result


def fetch(
    revs: Sequence[str] = (),
    *,
    remote: str | None = None,
    all_refs: bool = False,
    paths: Sequence[str | os.PathLike[str]] = (),
    jobs: int | None = None,
    progress: Progress | None = None,
    notes: bool = True,
    cwd: Path | None = None,
) -> TransferResult:
    """Download into the local store the objects it lacks (verified; the work tree is not touched).

    Also fetches ``refs/notes/gitsnap`` from ``origin`` and merges it with the
    local notes. A corrupt or missing remote object raises TransferCorrupt /
    TransferMissing naming the tensor, after every other object was fetched.

    Example::

        api.fetch(["main~3"])             # objects of main~3's snapshots, no checkout
    """
    ws = Workspace.discover(cwd)
    refs = _refs(ws, revs, all_refs, paths, revisions.Parser())
    return _fetch(ws, refs, remote, jobs, progress, notes)


def _fetch(  # noqa: PLR0917 - fetch()'s options, passed on
    ws: Workspace,
    refs: list[SnapshotRef],
    remote: str | None,
    jobs: int | None,
    progress: Progress | None,
    notes: bool,
) -> TransferResult:
    from gitsnap import transfer

    with ws.lock("fetch"):
        return transfer.fetch(
            ws.root, ws.store, lambda: _open_remote(ws, remote, jobs), refs,
            jobs=jobs, progress=progress, notes=notes,
        )  # fmt: skip


def pull(
    rev: str | None = None,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    remote: str | None = None,
    all_refs: bool = False,
    jobs: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
    cwd: Path | None = None,
) -> PullResult:
    """``fetch`` then ``checkout``.

    After ``git clone``, ``api.pull()`` restores HEAD's weights byte-exactly.
    One workspace and one parse of each pointer serve both halves.

    Example::

        result = api.pull()
        print(result.fetch.objects_transferred, [e.path for e in result.checkout])
    """
    ws = Workspace.discover(cwd)
    parser = revisions.Parser()
    with ws.lock("pull"):  # both halves under one hold (the lock is re-entrant)
        refs = _refs(ws, [rev] if rev else [], all_refs, paths, parser)
        fetched = _fetch(ws, refs, remote, jobs, progress, True)
        wanted = [ws.relpath(p) for p in paths]
        restored = restore_selected(ws, select(ws, rev, wanted, parser), force=force)
    raise_first(restored.problems)
    return PullResult(fetched, restored)


def remote_status(
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    remote: str | None = None,
    revs: Sequence[str] = (),
    cwd: Path | None = None,
) -> RemoteStatusResult:
    """Which snapshots (path, commit) are not fully on the remote.

    Looks at the work tree and HEAD, or at ``revs``.

    Example::

        for e in api.remote_status().entries:
            if e.missing_objects:
                print(e.path, e.commit, e.missing_objects)
    """
    from gitsnap import transfer

    ws = Workspace.discover(cwd)
    refs = _refs(ws, revs, False, paths, revisions.Parser())
    return transfer.remote_status(_open_remote(ws, remote, None), refs, ws.store)


def _refs(
    ws: Workspace,
    revs: Sequence[str],
    all_refs: bool,
    paths: Sequence[str | os.PathLike[str]],
    parser: revisions.Parser,
    *,
    problems: list[ItemProblem] | None = None,
) -> list[SnapshotRef]:
    refs = revisions.snapshots(ws, revs, all_refs=all_refs, parser=parser, problems=problems)
    if paths:
        wanted = [ws.relpath(p) for p in paths]
        keep = set(revisions.select(sorted({r.path for r in refs}), wanted))
        refs = [r for r in refs if r.path in keep]
        if not refs:
            raise PathError(
                f"no snapshot of {', '.join(wanted)} to transfer",
                hint="git snap log PATH lists them",
            )
    return refs


def _open_remote(ws: Workspace, remote: str | None, jobs: int | None) -> Remote:
    from gitsnap.remote import open_remote

    return open_remote(ws.require_dvc(), remote, jobs)
