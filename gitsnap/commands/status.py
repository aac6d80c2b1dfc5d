"""``git snap status``: each working checkpoint against its pointer, and the store's objects.

On the fast path of a clean status (DESIGN D10): a pointer unchanged since
it was last read is not parsed again, a checkpoint unchanged since it was
hashed is not read (the stat cache answers both).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitsnap import revisions, working
from gitsnap.errors import PathError, PointerConflict
from gitsnap.paths import check_relpath
from gitsnap.pointer.peek import SUFFIX, pointer_bytes
from gitsnap.problems import ItemProblem, collecting
from gitsnap.statcache import StatCache
from gitsnap.workspace import Workspace


@dataclass(frozen=True)
class StatusEntry:
    path: str
    # "clean"; "modified" (changes that are not saved); "outdated" (the checkpoint is
    # another snapshot, every object of it stored: the pointer moved under it -- git
    # reset, stash, checkout -- PATH.snap, a conflict resolved with --ours/--theirs --
    # and git snap checkout PATH brings it in line); "absent"; "conflicted"
    state: str
    missing_objects: int
    total_objects: int
    # Entries of a folder checkpoint that no snapshot holds (a nested .git, files of
    # other tools): unsaved, so listed; a checkout keeps them (DESIGN D19).
    unowned: tuple[str, ...] = ()
    # The snapshot id of the checkpoint on disk (None: absent, or a conflicted pointer).
    working_id: str | None = None


@dataclass(frozen=True)
class StatusResult:
    entries: list[StatusEntry]
    problems: list[ItemProblem] = field(default_factory=list)  # checkpoints that could not be read

    @property
    def clean(self) -> bool:
        return not self.problems and all(
            e.state == "clean" and e.missing_objects == 0 and not e.unowned for e in self.entries
        )


def status(paths: Sequence[str | os.PathLike[str]] = (), cwd: Path | None = None) -> StatusResult:
    """Compare each working checkpoint with its pointer, and check the store has its objects.

    Example::

        for e in api.status().entries:
            print(e.path, e.state, e.missing_objects)
    """
    ws = Workspace.discover(cwd)
    store = ws.store
    cache = ws.stat_cache
    wanted = [ws.relpath(p) for p in paths]
    entries = []
    problems: list[ItemProblem] = []
    for rel in revisions.select(ws.pointer_paths(), wanted):
        check_relpath(rel, rel + SUFFIX)  # never stat or hash a .git (a .git.snap)
        with collecting(problems, ws.display(rel)):
            try:
                known = _pointer_summary(ws, rel, cache)
            except PointerConflict:  # listed with its fix, never a crash
                entries.append(StatusEntry(ws.display(rel), "conflicted", 0, 0))
                continue
            if known is None:
                continue  # pointer deleted in the work tree
            pointer_id, oids = known
            current = working.working_id(cache, ws.root, rel)
            if current is None:
                state = "absent"
            elif current == pointer_id:
                state = "clean"
            elif working.holds_stored_snapshot(
                cache, ws.root, rel, current, store, executable=_executable(ws, rel)
            ):
                state = "outdated"  # saving it would record the weights the pointer moved off
            else:
                state = "modified"
            missing = sum(1 for oid in oids if not store.has(oid))
            unowned = _unowned(ws.root / rel) if current is not None else ()
            entries.append(
                StatusEntry(ws.display(rel), state, missing, len(oids), unowned, current)
            )
    if wanted and not entries and not problems:
        raise PathError(
            f"no saved checkpoint matches {', '.join(str(p) for p in paths)}",
            hint="git snap save PATH records one",
        )
    cache.save()
    return StatusResult(entries, problems)


def _unowned(path: Path) -> tuple[str, ...]:
    """The entries of a folder checkpoint gitsnap does not own; nothing for a file."""
    if path.is_symlink() or not path.is_dir():
        return ()
    from gitsnap.formats.folder import foreign_entries

    return tuple(foreign_entries(path))


def _pointer_summary(ws: Workspace, rel: str, cache: StatCache) -> tuple[str, set[str]] | None:
    """(snapshot id, stored object ids) of a working pointer, without a YAML parse when
    the pointer file is unchanged since one (a 2,000-tensor parse costs ~0.5 s)."""
    from gitsnap.pointer import dumps, loads, scan_oids

    path = ws.root / (rel + SUFFIX)
    try:
        st = path.stat()
        raw = pointer_bytes(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    key = "pointer:" + rel
    cached = cache.get(key, st)
    if cached is not None:
        return cached, scan_oids(raw)
    started_ns = time.time_ns()
    ptr = loads(raw, source=rel + SUFFIX)
    if dumps(ptr).encode() == raw:  # canonical: the line scan reads it exactly
        cache.put(key, st, ptr.id, started_ns)
    return ptr.id, ptr.oids()


def _executable(ws: Workspace, rel: str) -> list[str]:
    """The files of a folder checkpoint its pointer marks executable."""
    ptr = ws.read_pointer(rel)
    return [] if ptr is None else [f.path for f in ptr.files if f.executable]
