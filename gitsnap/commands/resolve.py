"""``git snap merge-driver`` (what ``git merge`` runs for a ``*.snap``) and ``git snap resolve``.

Set up by :func:`gitsnap.hooks.install.setup_merge_driver` (``init`` and ``install`` call it): a
``.gitattributes`` line ``*.snap merge=gitsnap`` (committed, so every clone
names the driver) and, in ``.git/config`` (which git never shares, so every
clone runs ``install``), ``merge.gitsnap.driver``.

The driver merges tensor by tensor (:mod:`gitsnap.merge`): it writes the
merged pointer over git's ``%A`` and succeeds, or writes a readable conflict
summary there and fails, so git records a conflict. That summary is
recognised by every command (:func:`gitsnap.pointer.peek.is_conflicted`):
``status`` lists it as conflicted, ``checkout`` skips it, the others refuse
it with the fix, which is :func:`resolve`: it writes the chosen side's
pointer from the index (stage 1 base, 2 ours, 3 theirs), stages it, and
restores that side's weights as ``checkout`` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio
from gitsnap.errors import (
    DirtyCheckpoint,
    GitsnapError,
    PathError,
    PointerError,
    UsageError,
)
from gitsnap.fsutil import write_atomic
from gitsnap.pointer.peek import SUFFIX, pointer_bytes

if TYPE_CHECKING:
    from gitsnap.merge import MergeOutcome
    from gitsnap.pointer import Pointer
    from gitsnap.workspace import Workspace

SIDES = {"base": 1, "ours": 2, "theirs": 3}  # index stages of an unmerged path


# ------------------------------------------------------------------ the merge driver


@dataclass(frozen=True)
class DriverResult:
    """What the merge driver did to ``%A``: merged (exit 0) or left a conflict summary (exit 1)."""

    path: str
    merged: bool
    snapshot_id: str | None  # the merged snapshot
    conflicts: tuple[str, ...] = ()  # "what: reason" lines
    from_ours: tuple[str, ...] = ()
    from_theirs: tuple[str, ...] = ()


def _read_side(path: str, label: str) -> tuple[Pointer | None, str | None]:
    """(pointer, None), (None, None) for an absent/empty side, or (None, why it is unreadable)."""
    from gitsnap.pointer import loads

    try:
        data = pointer_bytes(path)
    except FileNotFoundError:
        return None, None
    if not data.strip():
        return None, None
    try:
        return loads(data, source=f"{label} {SUFFIX}"), None
    except PointerError as err:
        return None, f"{label}: {err}"


def merge_driver(base: str, ours: str, theirs: str, path: str) -> DriverResult:
    """git's ``%O %A %B %P``: merge the three pointer files, write the result to ``ours``.

    Never raises for a bad pointer on a side (it is other people's input):
    that is a conflict, summarised in the file like any other.
    """
    from gitsnap.merge import Conflict, MergeOutcome, conflict_text, merge
    from gitsnap.pointer import dumps

    checkpoint = path[: -len(SUFFIX)] if path.endswith(SUFFIX) else path
    sides = [
        _read_side(p, label) for p, label in ((base, "base"), (ours, "ours"), (theirs, "theirs"))
    ]
    unreadable = [why for _, why in sides if why is not None]
    b, o, t = (ptr for ptr, _ in sides)
    outcome: MergeOutcome
    if unreadable:
        outcome = MergeOutcome(None, tuple(Conflict("a pointer", why) for why in unreadable))
    else:
        outcome = merge(b, o, t)
    merged = outcome.pointer
    if merged is not None:
        try:
            text = dumps(merged)
            _store_new_objects(outcome.objects)
        except GitsnapError as err:  # both records over a limit; no store for a new header
            outcome = MergeOutcome(None, (Conflict("the merged pointer", str(err)),))
        else:
            write_atomic(Path(ours), text.encode())
            return DriverResult(
                checkpoint, True, merged.id, (), outcome.from_ours, outcome.from_theirs
            )
    summary = conflict_text(
        checkpoint, outcome.conflicts, (("ours", o), ("theirs", t), ("base", b))
    )
    write_atomic(Path(ours), summary.encode())
    return DriverResult(
        checkpoint, False, None, tuple(f"{c.what}: {c.reason}" for c in outcome.conflicts)
    )


def _store_new_objects(objects: dict[str, bytes]) -> None:
    """Objects of the merged snapshot that no side stored (a rebuilt header): into the store.

    ``git snap push`` then sends them with the rest; checkout assembles from them.
    """
    if not objects:
        return
    from gitsnap.workspace import Workspace

    store = Workspace.discover(Path.cwd()).store  # git runs the driver at the work tree's top
    for oid, data in objects.items():
        store.put(oid, data)


# ------------------------------------------------------------------ resolve


@dataclass(frozen=True)
class ResolveResult:
    path: str
    side: str  # "ours", "theirs" or "base"
    snapshot_id: str
    action: str  # "restored" or "unchanged" (the checkpoint already held those weights)
    dropped: tuple[str, ...] = field(default_factory=tuple)


def _stages(root: Path, pointer: str) -> dict[int, str]:
    """Blob ids of an unmerged path's index stages (1 base, 2 ours, 3 theirs)."""
    out = gitio.run(["ls-files", "-u", "-z", "--", pointer], root).stdout.decode()
    stages = {}
    for rec in out.split("\0"):
        meta, _, name = rec.partition("\t")
        if name == pointer:
            _mode, sha, stage = meta.split()
            stages[int(stage)] = sha
    return stages


def _side_after_add(root: Path, pointer: str, side: str) -> bytes | None:
    """A conflict summary already ``git add``-ed: the side from the merge's commits."""
    merge_head = gitio.run(["rev-parse", "-q", "--verify", "MERGE_HEAD"], root, check=False)
    if merge_head.returncode != 0:
        return None
    theirs = merge_head.stdout.decode().strip()
    if side == "ours":
        rev = "HEAD"
    elif side == "theirs":
        rev = theirs
    else:
        found = gitio.run(["merge-base", "HEAD", theirs], root, check=False)
        if found.returncode != 0:
            return None
        rev = found.stdout.decode().strip()
    return gitio.show_blob(root, rev, pointer)


def resolve(
    path: str | os.PathLike[str],
    side: str,
    *,
    force: bool = False,
    cwd: Path | None = None,
) -> ResolveResult:
    """End a pointer conflict with one side: write its pointer, stage it, restore its weights.

    Refuses (:class:`DirtyCheckpoint`) to overwrite a checkpoint whose bytes
    the store does not hold unless ``force``, as ``checkout`` does.

    Example::

        resolve("models/model.safetensors", "theirs")
    """
    from gitsnap.commands.checkout import checkout
    from gitsnap.pointer import loads
    from gitsnap.workspace import Workspace

    if side not in SIDES:
        raise UsageError(f"no side {side!r}", hint="choose --ours, --theirs or --base")
    ws = Workspace.discover(cwd)
    rel = ws.relpath(path)
    pointer = rel + SUFFIX
    shown = ws.display(rel)
    stages = _stages(ws.root, pointer)
    raw: bytes | None
    if stages:
        sha = stages.get(SIDES[side])
        raw = gitio.cat_blobs(ws.root, [sha])[sha] if sha else None
    else:
        from gitsnap.pointer.peek import is_conflicted

        try:
            working = pointer_bytes(ws.root / pointer)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            working = b""
        if not is_conflicted(working):
            raise PathError(
                f"{shown}{SUFFIX} is not in a merge conflict",
                hint="git snap status lists conflicted pointers; "
                "git snap checkout restores a pointer's weights",
            )
        raw = _side_after_add(ws.root, pointer, side)
    if raw is None:
        raise PathError(
            f"{shown}{SUFFIX} has no {side} version in this conflict "
            "(added or deleted on that side)",
            hint="choose another side: "
            + ", ".join(
                f"--{s}" for s in SIDES if s != side and (not stages or SIDES[s] in stages)
            ),
        )
    ptr = loads(raw, source=f"{side}:{pointer}")
    checkpoint = ws.root / rel
    if not force and checkpoint.exists():
        _refuse_unsaved(ws, checkpoint, ptr, shown)
    write_atomic(ws.root / pointer, raw)
    gitio.run(["add", "--", pointer], ws.root)
    # The restore is checkout's own: the same checks, the same stat cache.
    restored = checkout(None, [ws.root / rel], force=force, cwd=ws.root)
    action = restored[0].action if restored else "restored"
    dropped = restored[0].dropped if restored else ()
    return ResolveResult(shown, side, ptr.id, action, tuple(dropped))


def _refuse_unsaved(ws: Workspace, checkpoint: Path, ptr: Pointer, shown: str) -> None:
    """The checkpoint holds bytes the store lacks and the chosen side differs: refuse (D19)."""
    from gitsnap import snapshot

    store = ws.store
    current = snapshot.ingest(checkpoint, None, want_stats=False)
    if current.id == ptr.id:
        return
    if any(not store.has(e.oid) for e in [*current.tensors, *current.blobs] if not e.view):
        raise DirtyCheckpoint(
            f"{shown} has changes that are not saved; refusing to overwrite it with the "
            "chosen side's weights",
            hint=f"git snap save {shown} to keep them (then resolve again), "
            "or pass --force to discard them",
        )


__all__ = [
    "DriverResult",
    "ResolveResult",
    "merge_driver",
    "resolve",
]
