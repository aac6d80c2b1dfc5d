"""``git snap checkout`` (and the restore half of ``pull``): checkpoints back from the store."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio, revisions, working
from gitsnap.errors import DirtyCheckpoint, PathError, RemoteError
from gitsnap.paths import check_relpath, safe_target
from gitsnap.pointer import SUFFIX
from gitsnap.pointer.peek import is_conflicted, pointer_bytes
from gitsnap.problems import ItemProblem, Listing, collecting
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.pointer import Pointer
    from gitsnap.revisions import SnapshotRef
    from gitsnap.statcache import StatCache
    from gitsnap.store import ObjectStore
    from gitsnap.transfer import TransferResult


@dataclass(frozen=True)
class CheckoutEntry:
    path: str
    target: str
    action: str  # "restored", "unchanged", "conflicted" (skipped: a pointer in a merge conflict)
    snapshot_id: str
    size: int
    dropped: tuple[str, ...] = ()  # what --force discarded (D19): said, never silent


@dataclass(frozen=True)
class Selected:
    """One checkpoint to restore: its pointer, and the pointer's bytes when read from a commit."""

    path: str
    pointer: Pointer
    raw: bytes | None  # None: the work tree's own pointer


def checkout(
    rev: str | None = None,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    to: str | os.PathLike[str] | None = None,
    force: bool = False,
    cwd: Path | None = None,
    workers: int | None = None,
) -> Listing[CheckoutEntry]:
    """Restore checkpoints byte-exactly from the store.

    Without ``rev``: from the pointers in the work tree. With ``rev``: from the
    pointers at that commit, which are also written into the work tree (as
    ``git checkout REV -- PATH.snap`` would). With ``to``: write into that
    folder instead, each checkpoint at its repository-relative path below it
    (as ``git checkout-index --prefix`` does), and leave the work tree alone.

    Example::

        api.checkout("HEAD~1")
        api.checkout("classifier#prod", to="/tmp/prod-model")

    A checkpoint whose pointer does not parse, or whose restore meets a
    format error, is left as it is and listed in ``.problems``; the others
    are restored.
    """
    ws = Workspace.discover(cwd)
    wanted = [ws.relpath(p) for p in paths]
    conflicted: list[str] = []
    problems: list[ItemProblem] = []
    selected = select(ws, rev, wanted, revisions.Parser(), problems, conflicted=conflicted)
    skipped = [CheckoutEntry(ws.display(r), ws.display(r), "conflicted", "", 0) for r in conflicted]
    done = restore_selected(ws, selected, to=to, force=force, workers=workers)
    return Listing([*skipped, *done], [*problems, *done.problems])


def select(
    ws: Workspace,
    rev: str | None,
    wanted: Sequence[str],
    parser: revisions.Parser,
    problems: list[ItemProblem] | None = None,
    *,
    conflicted: list[str] | None = None,
) -> list[Selected]:
    """The checkpoints a checkout of ``rev`` (None: the work tree) and ``wanted`` covers.

    A registry reference (``NAME@v1.2.0``, ``NAME#prod``) selects that model.
    With ``problems``, a pointer that does not parse is left out and reported there.
    ``conflicted``: work-tree pointers in a merge conflict are added to it and
    skipped, instead of failing the command.
    """
    out: list[Selected] = []
    if rev is None:
        blobs = revisions.worktree_blobs(ws, wanted)
        if conflicted is not None:
            conflicted += [rel for rel, raw in blobs.items() if is_conflicted(raw)]
            blobs = {rel: raw for rel, raw in blobs.items() if not is_conflicted(raw)}
        parsed = parser.parse_all(blobs, "", problems)
        out = [Selected(rel, ptr, None) for rel, ptr in parsed.items()]
    else:
        model = revisions.model_ref(ws, rev)
        commit = model.commit if model else gitio.resolve_commit(ws.root, rev)
        wanted = wanted or ([model.path] if model else [])
        blobs = revisions.blobs_at(ws, commit, wanted)
        parsed = parser.parse_all(blobs, rev, problems)
        out = [Selected(rel, ptr, blobs[rel]) for rel, ptr in parsed.items()]
    if wanted and not out and not problems and not conflicted:
        where = f"at {rev}" if rev else "in the work tree"
        raise PathError(
            f"no snapshot of {', '.join(wanted)} {where}",
            hint="git snap log PATH lists the commits that have one",
        )
    return out


def restore_selected(
    ws: Workspace,
    selected: Sequence[Selected],
    *,
    to: str | os.PathLike[str] | None = None,
    force: bool = False,
    workers: int | None = None,
) -> Listing[CheckoutEntry]:
    """Restore each selected checkpoint (into ``to``, or in place); the work of :func:`checkout`.

    Into ``to``, a checkpoint goes to its repository-relative path under that
    folder (``DIR/models/model.safetensors``), whichever way it was selected.

    A checkpoint whose restore meets a bad pointer or file is reported in
    ``.problems`` and the others are restored.
    """
    store = ws.store
    cache = ws.stat_cache
    export_dir = (ws.cwd / to) if to is not None else None
    results: Listing[CheckoutEntry] = Listing()
    for sel in selected:
        with collecting(results.problems, ws.display(sel.path)):
            results.append(_restore_one(ws, sel, export_dir, force, workers, store, cache))
    cache.save()
    return results


def _restore_one(  # noqa: PLR0917 - one item of restore_selected's loop
    ws: Workspace,
    sel: Selected,
    export_dir: Path | None,
    force: bool,
    workers: int | None,
    store: ObjectStore,
    cache: StatCache,
) -> CheckoutEntry:
    from gitsnap import snapshot
    from gitsnap.fsutil import write_atomic

    rel, ptr, raw = sel.path, sel.pointer, sel.raw
    check_relpath(rel, f"{rel}{SUFFIX}")  # a pointer named .git.snap, ...
    if export_dir is not None:  # one layout, however selected: the repository path under DIR
        dest = export_dir / rel
    else:  # no .git, no symlink out of the work tree, nothing into the store
        dest = safe_target(ws.root, rel, f"{rel}{SUFFIX}", forbidden=[store.root.resolve()])
    shown = ws.display(rel) if export_dir is None else str(dest)
    in_workspace = export_dir is None
    dropped: list[str] = []
    if in_workspace and raw is not None:  # D19: an uncommitted snapshot needs --force
        dropped = snapshot.guard_uncommitted(
            ws.root, rel, raw, ptr.id, force=force, shown=ws.display(rel)
        )
    current = working.working_id(cache, ws.root, rel) if in_workspace else None
    if in_workspace and current == ptr.id:
        action = "unchanged"
    else:
        if dest.exists() and not force:
            if in_workspace:
                dirty = current is not None and not working.is_saved(
                    dest, current, store, [ws.read_pointer(rel)]
                )
            else:
                dirty = snapshot.ingest(dest, None, want_stats=False).id != ptr.id
            if dirty and in_workspace:
                raise DirtyCheckpoint(
                    f"{shown} has changes that are not saved; refusing to overwrite it",
                    hint=(
                        f"git snap save {ws.display(rel)} to keep them, "
                        "or pass --force to discard them"
                    ),
                )
            if dirty:  # exporting (--to) into a folder that holds something else
                raise DirtyCheckpoint(
                    f"{shown} exists and differs from the snapshot; refusing to overwrite it",
                    hint="choose an empty folder, or pass --force to overwrite",
                )
        started_ns = time.time_ns()
        if snapshot.missing_objects(ptr, store):
            _fetch_if_remote(ws, rel, ptr, workers)
        removed = snapshot.restore(
            ptr, store, dest, workers=workers, force=force,
            root=ws.root if in_workspace else None,
        )  # fmt: skip
        dropped += [f"{shown}/{e} (not a file of any snapshot)" for e in removed]
        if in_workspace:
            cache.put(rel, snapshot.stat_path(dest), ptr.id, started_ns)
        action = "restored"
    if in_workspace and raw is not None:
        pointer_file = ws.root / (rel + SUFFIX)
        if not pointer_file.exists() or pointer_bytes(pointer_file) != raw:
            write_atomic(pointer_file, raw)
        ws.ensure_ignored(rel)
    return CheckoutEntry(ws.display(rel), shown, action, ptr.id, ptr.size, tuple(dropped))


def fetch_missing(
    ws: Workspace, refs: list[SnapshotRef], remote: str | None = None, jobs: int | None = None
) -> TransferResult:
    """Fetch the objects of ``refs`` the local store lacks from DVC remote ``remote``
    (None: the default); the notes are left alone. Raises what the fetch raises."""
    from gitsnap import transfer
    from gitsnap.remote import open_remote

    dvc_dir = ws.require_dvc()
    return transfer.fetch(
        ws.root, ws.store, lambda: open_remote(dvc_dir, remote, jobs), refs, notes=False
    )


def _fetch_if_remote(ws: Workspace, rel: str, ptr: Pointer, workers: int | None) -> None:
    """checkout found objects missing locally: fetch them if a remote is configured.

    Without one, do nothing and let restore explain.
    """
    from gitsnap.remote import configured_remote

    try:
        configured_remote(ws.require_dvc())
    except RemoteError:
        return  # no usable remote: snapshot.restore raises ObjectMissing with its own hint
    fetch_missing(ws, [revisions.SnapshotRef(rel, None, ptr)], None, workers)
