"""The checkpoint on disk against its pointer and the store: the rules status,
checkout, diff and the hooks share.

- :func:`current_id`: the snapshot id of the checkpoint on disk, from the stat
  cache when the file is unchanged since it was last hashed;
- :func:`is_saved`: whether every byte of it is in the store, so replacing it
  loses nothing (the dirty check of ``checkout`` and of the checkout hook);
- :func:`peek_id`: a pointer's id without parsing it;
- :func:`holds_stored_snapshot`: the advisory form of :func:`is_saved` that
  ``status`` and the pre-commit hints use, remembered per checkpoint state, so
  that a checkpoint left behind by ``git reset --hard``, ``git stash`` or a
  conflict resolved with ``--theirs`` is told apart from unsaved work without
  hashing it at every ``status``.

As light as :mod:`gitsnap.gitio` on import: a hook with nothing to do uses
it (DESIGN D10). Hashing a checkpoint imports the snapshot layer, only then.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap.errors import GitsnapError
from gitsnap.pointer.peek import HEAD as POINTER_HEAD

if TYPE_CHECKING:
    from gitsnap.pointer import Pointer
    from gitsnap.snapshot import Ingested
    from gitsnap.statcache import StatCache
    from gitsnap.store import ObjectStore

# A pointer's top-level id line (keys are sorted and only top-level keys start
# a line with a letter): enough to tell "clean" from "changed" without YAML.
_ID_LINE = re.compile(rb"^id: ([0-9a-f]{64})[ \t]*\r?$", re.M)


def peek_id(data: bytes) -> str | None:
    """The snapshot id in a pointer's bytes without parsing them; None if not a gitsnap pointer."""
    if not data.startswith(POINTER_HEAD):
        return None
    m = _ID_LINE.search(data)
    return m.group(1).decode() if m else None


def checkpoint_stat(path: Path) -> os.stat_result | None:
    """The stat-cache key of a checkpoint (a folder's: a fingerprint of its files), or None."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        from gitsnap.snapshot import stat_path

        return stat_path(path)
    return st


def current_id(
    cache: StatCache, root: Path, rel: str, st: os.stat_result
) -> tuple[str, Ingested | None]:
    """(snapshot id of the checkpoint on disk, its ingest result if it had to be read, else None).

    The stat cache answers for an unchanged checkpoint; only a changed one is
    read and hashed (nothing is stored).
    """
    cached = cache.get(rel, st)
    if cached is not None:
        return cached, None
    from gitsnap import snapshot

    started_ns = time.time_ns()
    ing = snapshot.ingest(root / rel, None, want_stats=False)
    cache.put(rel, st, ing.id, started_ns)
    return ing.id, ing


def working_id(cache: StatCache, root: Path, rel: str) -> str | None:
    """Snapshot id of the checkpoint ``rel`` on disk (stat cache first); None if it is absent."""
    st = checkpoint_stat(root / rel)
    return None if st is None else current_id(cache, root, rel, st)[0]


def is_saved(
    path: Path,
    current: str,
    store: ObjectStore,
    known: Iterable[Pointer | None] = (),
    ing: Ingested | None = None,
) -> bool:
    """True when every byte of the checkpoint at ``path`` (snapshot ``current``) is in ``store``.

    A ``known`` pointer of the same snapshot answers without reading the
    file (when its objects are all stored); otherwise the file is hashed
    (``ing``: already done) and each of its objects looked up.
    """
    for ptr in known:
        if ptr is not None and ptr.id == current and all(store.has(o) for o in ptr.oids()):
            return True
    if ing is None:
        from gitsnap import snapshot

        ing = snapshot.ingest(path, None, want_stats=False)
    return all(store.has(e.oid) for e in [*ing.tensors, *ing.blobs] if not e.view)


_STORED_KEY = "stored:"  # stat-cache entries: "<id>:1" (all objects stored) or "<id>:0"


def holds_stored_snapshot(
    cache: StatCache,
    root: Path,
    rel: str,
    current: str,
    store: ObjectStore,
    *,
    ing: Ingested | None = None,
    executable: Iterable[str] | None = None,
) -> bool:
    """True when the checkpoint ``rel`` (snapshot ``current``) is a snapshot whose every
    object is in ``store``: replacing it by its pointer's snapshot loses nothing.

    ``executable``: the folder files the pointer marks executable. A checkpoint whose
    files differ from them in that bit alone holds a ``chmod`` nobody saved: not a
    stored snapshot (its bytes are stored, its modes are the user's change).

    For hints only (``status``, the pre-commit hook): the answer is remembered
    for the checkpoint's stat, so a checkpoint with unsaved changes is hashed
    once, not at every ``status``. Whatever replaces a checkpoint asks
    :func:`is_saved`, which never trusts a remembered answer.
    """
    st = checkpoint_stat(root / rel)
    if st is None:
        return False
    modes = None if executable is None else sorted(executable)
    asked = current if modes is None else f"{current}/{','.join(modes)}"
    key = _STORED_KEY + rel
    remembered = cache.get(key, st)
    if remembered is not None and remembered[:-2] == asked:
        return remembered.endswith(":1")
    started_ns = time.time_ns()
    try:
        if ing is None:
            from gitsnap import snapshot

            ing = snapshot.ingest(root / rel, None, want_stats=False)
        stored = is_saved(root / rel, current, store, (), ing)
        if stored and modes is not None and ing.files:
            stored = sorted(f.path for f in ing.files if f.executable) == modes
    except GitsnapError:
        return False
    cache.put(key, st, f"{asked}:{int(stored)}", started_ns)
    return stored


def human_size(n: float) -> str:
    """``1.5 MiB``: a byte count as hooks and commands show it."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
