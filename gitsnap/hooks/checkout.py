"""post-checkout / post-merge / post-commit / post-rewrite (``restore``): bring the
checkpoints in line with the new HEAD.

With nothing to do -- every checkpoint already matches its pointer -- this
reads the index's pointer paths (one ``git ls-files``), the head of each
pointer and the stat cache, and imports nothing heavier than
:mod:`gitsnap.gitio` (DESIGN D10). Pointers are parsed, checkpoints hashed
and dvc imported only for what actually changed. Never fails the checkout:
problems are warnings.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio
from gitsnap.errors import GitsnapError
from gitsnap.hooks.result import HookResult, Out
from gitsnap.paths import allowed
from gitsnap.pointer.peek import HEAD, SUFFIX, pointer_bytes
from gitsnap.working import checkpoint_stat, peek_id

if TYPE_CHECKING:
    from gitsnap.pointer import Pointer
    from gitsnap.statcache import StatCache
    from gitsnap.workspace import Workspace


_Todo = list[tuple[str, bytes, os.stat_result | None]]


def restore(
    root: Path, git_dir: Path, previous: str | None = None, *, hook: str = "post-checkout"
) -> HookResult:
    """Make each checkpoint match its pointer in the work tree, from the local store.

    ``previous`` is the commit the work tree came from (post-checkout's first
    argument, ``ORIG_HEAD`` after a merge): a checkpoint that still holds its
    snapshot there, with every object stored, is saved and may be replaced.
    Anything else that differs from its pointer has unsaved changes and is
    kept, with a warning.
    """
    from gitsnap.statcache import StatCache

    cache = StatCache(git_dir)
    todo: _Todo = []
    for pointer_path in gitio.index_pointers(root):
        rel = pointer_path[: -len(SUFFIX)]
        try:
            data = pointer_bytes(root / pointer_path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue  # deleted in the work tree
        if not data.startswith(HEAD):
            continue  # another tool's *.snap, or a conflicted pointer: nothing to restore
        snapshot_id = peek_id(data)
        st = checkpoint_stat(root / rel) if allowed(rel) else None  # never stat a .git (paths)
        if st is not None and snapshot_id is not None and cache.get(rel, st) == snapshot_id:
            continue
        todo.append((rel, data, st))
    if not todo:
        return HookResult(hook, 0)
    out = Out()
    try:
        restored, kept = _restore(root, cache, todo, previous, out)
    except GitsnapError as err:
        out.warn(f"checkpoints were not restored: {err}", err.hint or "git snap checkout")
        restored, kept = [], [rel for rel, _, _ in todo]
    cache.save()
    return HookResult(hook, 0, out.messages, restored=restored, kept=kept)


def _restore(
    root: Path, cache: StatCache, todo: _Todo, previous: str | None, out: Out
) -> tuple[list[str], list[str]]:
    from gitsnap import revisions, snapshot
    from gitsnap.errors import PathError, PointerError
    from gitsnap.paths import check_relpath
    from gitsnap.pointer import loads
    from gitsnap.working import current_id, human_size, is_saved
    from gitsnap.workspace import Workspace

    ws = Workspace.discover(root)
    if ws.dvc_dir is None:
        out.warn(
            "checkpoints were not restored: this repository is not set up for gitsnap",
            "git snap init",
        )
        return [], [rel for rel, _, _ in todo]
    store = ws.store
    before = revisions.pointers_at_rev(root, previous, [rel for rel, _, _ in todo])
    ready: list[tuple[str, Pointer]] = []
    absent: list[tuple[str, Pointer]] = []
    kept: list[str] = []
    for rel, data, st in todo:
        try:
            check_relpath(rel, rel + SUFFIX)  # ---- paths: a pointer named .git.snap, ...
            ptr = loads(data, source=rel + SUFFIX)
        except (PointerError, PathError) as err:
            out.warn(f"{rel} not restored: {err}", err.hint)
            kept.append(rel)
            continue
        if st is not None:
            try:
                current, ing = current_id(cache, root, rel, st)
            except GitsnapError as err:  # a checkpoint its format reader refuses: keep it
                out.warn(f"{rel} not restored: {err}", err.hint)
                kept.append(rel)
                continue
            if current == ptr.id:
                continue  # already right (the stat cache had not seen it yet)
            if not is_saved(root / rel, current, store, [before.get(rel)], ing):
                out.warn(
                    f"kept {rel}: it has changes that are not saved, so it was not replaced by "
                    f"snapshot {ptr.id[:12]} of the new HEAD",
                    f"git snap save {rel} to keep them, "
                    f"or git snap checkout --force {rel} to discard them",
                )
                kept.append(rel)
                continue
        (absent if snapshot.missing_objects(ptr, store) else ready).append((rel, ptr))
    if absent:
        auto = gitio.config_get(root, "gitsnap.autoFetch", "bool") == "true"
        if auto:
            _fetch(root, ws, absent, out)
        still = [(rel, p) for rel, p in absent if snapshot.missing_objects(p, store)]
        missing = {rel for rel, _ in still}
        ready += [(rel, p) for rel, p in absent if rel not in missing]
        if still:
            names = ", ".join(rel for rel, _ in still)
            out.warn(
                f"not restored (objects not in the local store): {names}",
                "git snap pull"
                + ("" if auto else "  (or git config gitsnap.autoFetch true to fetch on checkout)"),
            )
            kept += [rel for rel, _ in still]
    restored = []
    for rel, ptr in ready:
        started_ns = time.time_ns()
        try:
            snapshot.restore(ptr, store, root / rel, root=root)
        except GitsnapError as err:
            out.warn(f"{rel} not restored: {err}", err.hint)
            kept.append(rel)
            continue
        cache.put(rel, snapshot.stat_path(root / rel), ptr.id, started_ns)
        out.info(f"restored {rel} (snapshot {ptr.id[:12]}, {human_size(ptr.size)})")
        restored.append(rel)
    return restored, kept


def _fetch(root: Path, ws: Workspace, absent: list[tuple[str, Pointer]], out: Out) -> None:
    from gitsnap.commands.checkout import fetch_missing
    from gitsnap.revisions import SnapshotRef
    from gitsnap.working import human_size

    refs = [SnapshotRef(rel, None, ptr) for rel, ptr in absent]
    name = gitio.config_get(root, "gitsnap.remote")
    try:
        result = fetch_missing(ws, refs, name)
    except GitsnapError as err:
        out.warn(f"gitsnap.autoFetch: could not fetch the missing objects: {err}", err.hint)
        return
    if result.objects_transferred:
        out.info(
            f"fetched {result.objects_transferred} object(s) "
            f"({human_size(result.bytes_transferred)}) from DVC remote '{result.remote}'"
        )
