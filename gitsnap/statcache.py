"""Remember which snapshot id a checkpoint file had, keyed on size / mtime / inode.

``git snap status`` on a clean multi-GB checkpoint must not re-hash it (git's
index and DVC's state db do the same). The cache is a small JSON file in the
worktree's git dir. An entry is only written for a file whose mtime is at
least ``RACY_NS`` older than the moment hashing started: a write landing in
the same timestamp tick as our read would otherwise go unnoticed (git's
"racy clean" problem).

The stat recorded must be the one taken *before* the bytes were read (see
``Ingested.stat``): a file replaced while it was hashed, or after, then
never matches the entry, and is hashed again. A stat taken after hashing
would pass a file renamed into place with an older mtime (``rsync -a``,
``cp -p``) for the bytes that were hashed, and ``checkout`` would overwrite
weights that were never stored.

The cache is only a shortcut: when it cannot be read or written (a
read-only repository, a full disk) commands work without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RACY_NS = 100_000_000  # 0.1 s: well above the timestamp tick of ext4, xfs, btrfs, apfs


class StatCache:
    def __init__(self, git_dir: Path) -> None:
        self.file = git_dir / "gitsnap" / "stat-cache.json"
        self._data: dict[str, list[int | str]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, list[int | str]]:
        if self._data is None:
            try:
                data = json.loads(self.file.read_text(encoding="utf-8"))
                self._data = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    @staticmethod
    def _key(st: os.stat_result) -> list[int]:
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def get(self, relpath: str, st: os.stat_result) -> str | None:
        entry = self._load().get(relpath)
        if entry and entry[:3] == self._key(st) and isinstance(entry[3], str):
            return entry[3]
        return None

    def put(
        self, relpath: str, st: os.stat_result | None, snapshot_id: str, started_ns: int
    ) -> None:
        """Record that the file whose stat was ``st`` (taken before hashing) has ``snapshot_id``.

        ``st`` None (nothing trustworthy) or too recent drops any entry instead.
        """
        data = self._load()
        if st is None or st.st_mtime_ns > started_ns - RACY_NS:
            if data.pop(relpath, None) is not None:
                self._dirty = True
            return
        data[relpath] = [*self._key(st), snapshot_id]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self._data is None:
            return
        import tempfile  # only when something changed: a clean status never writes

        tmp: str | None = None
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".stat-cache.")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._data, f, separators=(",", ":"), sort_keys=True)
            Path(tmp).replace(self.file)
        except OSError:
            # Read-only or full: the next command hashes again, which is only slower.
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        self._dirty = False
