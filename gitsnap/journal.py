"""The snapshot journal: every saved pointer, committed or not (DESIGN D19, docs/storage.md).

A snapshot that is saved but never committed is named by no commit: ``log``
would forget it and ``gc`` would delete its objects. Every ``save`` (and every
command that is about to drop an uncommitted pointer) therefore records the
pointer's bytes here, and ``gc`` keeps the journal's snapshots under a
retention policy (:func:`retain`).

Layout: ``<git common dir>/gitsnap/journal/<ns>-<pid>-<id12>.entry``, one
file per entry, holding one JSON header line (``path``, ``reason``,
``snapshot``) then the pointer bytes. The common dir is shared by every work
tree of the clone and never pushed. One file per entry makes concurrent saves
safe without a lock (unique names, each written atomically) and a save cheap
(one small write, no git process); ``gc`` deletes the files its retention
drops. git's own ``gc`` never touches the folder.

Reads are bounded whatever the folder holds: only the :data:`MAX_ENTRIES`
newest entries are listed (a heap of that size over the directory scan),
listing reads only each entry's header (at most :data:`HEADER_MAX` bytes),
and a pointer's bytes are read one entry at a time, at most a pointer's size
limit, when a caller asks (:meth:`Entry.pointer`). ``gc`` deletes the
entries past :data:`MAX_ENTRIES` (the oldest), whose objects it no longer
keeps.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from gitsnap import gitio
from gitsnap.errors import GitsnapError
from gitsnap.fsutil import write_atomic
from gitsnap.pointer import Pointer, loads
from gitsnap.pointer.limits import MAX_POINTER_BYTES

MAX_ENTRIES = 10_000  # newest entries listed; retention keeps far fewer by default
DEFAULT_KEEP_LAST = 10  # uncommitted snapshots kept per checkpoint ...
DEFAULT_KEEP_WITHIN = 14 * 24 * 3600  # ... plus every one younger than this (seconds)
HEADER_MAX = 8192  # an entry's JSON header line
_NAME = re.compile(r"^(\d{1,20})-(\d{1,10})-([0-9a-f]{12})\.entry$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Entry:
    id: str  # the file name's stem: "<ns>-<pid>-<snapshot id 12>"
    path: str  # repository-relative checkpoint path
    time_ns: int  # when it was recorded
    reason: str  # "save", or the command that was about to drop it ("checkout")
    snapshot_id: str
    file: Path

    def raw(self) -> bytes | None:
        """The pointer's bytes; None when the entry is gone, cut, or over the size limit."""
        try:
            with self.file.open("rb") as f:
                head = f.readline(HEADER_MAX + 1)
                data = f.read(MAX_POINTER_BYTES + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        if not head.endswith(b"\n") or len(data) > MAX_POINTER_BYTES:
            return None
        return data

    def pointer(self) -> tuple[Pointer, bytes] | None:
        """The parsed pointer and its bytes; None when damaged or not the snapshot it names."""
        raw = self.raw()
        if raw is None:
            return None
        try:
            ptr = loads(raw, source=f"journal {self.id}")
        except GitsnapError:
            return None
        return (ptr, raw) if ptr.id == self.snapshot_id else None


def common_dir(git_dir: Path) -> Path:
    """The git dir every work tree of the clone shares (``git rev-parse --git-common-dir``)."""
    try:
        link = (git_dir / "commondir").read_text().strip()
    except FileNotFoundError:
        return git_dir
    return (git_dir / link).resolve()


def folder(git_dir: Path) -> Path:
    return common_dir(git_dir) / "gitsnap" / "journal"


def record(git_dir: Path, rel: str, raw: bytes, snapshot_id: str, reason: str = "save") -> None:
    """Append pointer ``raw`` of checkpoint ``rel`` to the journal (atomic, lock-free)."""
    now = time.time_ns()
    name = f"{now}-{os.getpid()}-{snapshot_id[:12]}.entry"
    header = {"path": rel, "reason": reason, "snapshot": snapshot_id}
    data = json.dumps(header, sort_keys=True).encode() + b"\n" + raw
    write_atomic(folder(git_dir) / name, data)


def record_root(root: Path, rel: str, raw: bytes, snapshot_id: str, reason: str) -> None:
    """:func:`record`, for a caller that knows only the work tree's root; once per snapshot."""
    git_dir = Path(gitio.out(["rev-parse", "--absolute-git-dir"], root))
    if not any(e.snapshot_id == snapshot_id for e in entries(git_dir, rel)):
        record(git_dir, rel, raw, snapshot_id, reason)


def _scan(base: Path) -> Iterator[tuple[int, str]]:
    try:
        with os.scandir(base) as it:
            for d in it:
                if m := _NAME.match(d.name):
                    yield int(m[1]), d.name
    except (FileNotFoundError, NotADirectoryError):
        return


def entries(git_dir: Path, rel: str | None = None) -> list[Entry]:
    """The journal's entries (of checkpoint ``rel``, or all), newest first.

    Only the :data:`MAX_ENTRIES` newest files are looked at, and of each only
    its header. An entry whose header is damaged is skipped; one whose
    pointer is damaged is found when read (:meth:`Entry.pointer`).
    """
    base = folder(git_dir)
    out: list[Entry] = []
    for ns, name in heapq.nlargest(MAX_ENTRIES, _scan(base)):
        entry = _header(base / name, ns)
        if entry is not None and (rel is None or entry.path == rel):
            out.append(entry)
    return out


def _header(path: Path, ns: int) -> Entry | None:
    try:
        with path.open("rb") as f:
            head = f.readline(HEADER_MAX + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    if not head.endswith(b"\n"):
        return None
    try:
        meta = json.loads(head)
        rel, reason, sid = meta["path"], meta["reason"], meta["snapshot"]
    except (ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (rel, reason, sid)) or not _HEX64.match(sid):
        return None
    if path.name[-len(".entry") - 12 : -len(".entry")] != sid[:12]:
        return None
    return Entry(path.name[: -len(".entry")], rel, ns, reason, sid, path)


def overflow(git_dir: Path) -> list[str]:
    """Ids of the entries past the :data:`MAX_ENTRIES` newest (at most that many per call)."""
    base = folder(git_dir)
    newest = heapq.nlargest(MAX_ENTRIES, _scan(base))
    if len(newest) < MAX_ENTRIES:
        return []
    cut = newest[-1]
    older = (x for x in _scan(base) if x < cut)
    return [name[: -len(".entry")] for _, name in heapq.nlargest(MAX_ENTRIES, older)]


def retain(
    found: Sequence[Entry],
    committed: AbstractSet[tuple[str, str]],
    *,
    in_use: AbstractSet[tuple[str, str]] = frozenset(),
    keep_last: int | None = None,
    keep_within: int | None = None,
    now_ns: int | None = None,
) -> tuple[list[Entry], list[Entry]]:
    """Split ``found`` (newest first) into (kept, dropped) by the retention policy.

    Kept always: an entry whose snapshot a commit records (``committed``:
    (path, snapshot id) pairs, from any ref, tags included, or the reflog)
    or an index or work tree holds (``in_use``). Of the uncommitted ones, per
    checkpoint, the newest ``keep_last`` snapshots and every one younger than
    ``keep_within`` seconds. Neither given: the defaults
    (:data:`DEFAULT_KEEP_LAST`, :data:`DEFAULT_KEEP_WITHIN`); one given: only that one.
    """
    if keep_last is None and keep_within is None:
        keep_last, keep_within = DEFAULT_KEEP_LAST, DEFAULT_KEEP_WITHIN
    now = time.time_ns() if now_ns is None else now_ns
    seen: dict[str, list[str]] = {}  # path -> distinct uncommitted snapshot ids, newest first
    kept: list[Entry] = []
    dropped: list[Entry] = []
    for e in found:
        key = (e.path, e.snapshot_id)
        if key in committed:
            kept.append(e)
            continue
        ids = seen.setdefault(e.path, [])
        if e.snapshot_id not in ids:
            ids.append(e.snapshot_id)
        recent = keep_within is not None and now - e.time_ns <= keep_within * 1_000_000_000
        newest = keep_last is not None and ids.index(e.snapshot_id) < keep_last
        (kept if newest or recent or key in in_use else dropped).append(e)
    return kept, dropped


def drop(git_dir: Path, gone: Iterable[str]) -> None:
    """Delete the entries ``gone`` (ids) names."""
    base = folder(git_dir)
    for i in gone:
        if _NAME.match(f"{i}.entry"):
            (base / f"{i}.entry").unlink(missing_ok=True)


def find(git_dir: Path, rel: str, snapshot: str) -> Entry | None:
    """The newest entry of ``rel`` whose snapshot id starts with ``snapshot``, or of that id."""
    want = snapshot.strip().lower()
    if not want:
        return None
    for e in entries(git_dir, rel):
        if e.snapshot_id.startswith(want) or e.id == want:
            return e
    return None
