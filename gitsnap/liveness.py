"""Which snapshots are live: what ``gc`` keeps, ``du`` measures and ``fsck`` checks.

A snapshot is *live* when a pointer naming it is in

- a commit reachable from any ref (branches, tags, remote-tracking branches,
  notes, ``refs/stash``) or from any reflog entry (``git log --all --reflog``,
  which also covers the older stash entries and every work tree's HEAD);
- the index of any work tree (every conflict stage);
- the working files of any work tree (saved, not yet staged);
- the snapshot journal (:mod:`gitsnap.journal`: every save, committed or
  not), under ``gc``'s retention policy.

Commit pointers are found with one ``git log --raw`` (see
:func:`gitsnap.gitio.snap_blob_versions`) and read with one ``git cat-file
--batch``, each distinct pointer blob parsed once. A pointer that cannot be
parsed (damaged, or from a newer gitsnap) still protects every 64-digit hex
id in its text: when in doubt, keep.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitsnap import gitio, journal, revisions
from gitsnap.errors import GitsnapError
from gitsnap.pointer import SUFFIX, Pointer, is_pointer, loads
from gitsnap.pointer.peek import pointer_bytes
from gitsnap.workspace import Workspace

# (journal entries newest first, committed (path, snapshot id) pairs, those an index or work
# tree holds) -> the entries to keep
JournalPolicy = Callable[
    [Sequence[journal.Entry], set[tuple[str, str]], set[tuple[str, str]]],
    Sequence[journal.Entry],
]
_HEX64 = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


@dataclass(frozen=True)
class Segment:
    oid: str
    size: int
    label: str  # "tensor 'head.weight'", "header segment", ...


@dataclass(frozen=True)
class LiveSnapshot:
    path: str  # repository-relative checkpoint path
    commit: str | None  # a commit that holds it; None: only in an index or work tree
    where: str  # "commit", "index", "worktree" or "journal"
    snapshot_id: str | None  # None: the pointer could not be parsed
    size: int
    segments: tuple[Segment, ...]

    @property
    def label(self) -> str:
        if self.commit:
            return f"{self.path}@{self.commit[:10]}"
        shown = {"index": "index", "journal": "journal"}.get(self.where, "work tree")
        return f"{self.path} ({shown})"


@dataclass
class Live:
    snapshots: list[LiveSnapshot] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # pointers kept by their hex ids only

    def oids(self) -> set[str]:
        return {s.oid for snap in self.snapshots for s in snap.segments}

    def uses(self) -> dict[str, list[tuple[LiveSnapshot, Segment]]]:
        out: dict[str, list[tuple[LiveSnapshot, Segment]]] = {}
        for snap in self.snapshots:
            for seg in snap.segments:
                out.setdefault(seg.oid, []).append((snap, seg))
        return out


class _Collector:
    def __init__(self) -> None:
        self.live = Live()
        self._parsed: dict[bytes, Pointer | None] = {}
        self._seen: set[tuple[str, str]] = set()
        self._seen_raw: set[tuple[str, bytes]] = set()

    def add(self, raw: bytes, path: str, commit: str | None, where: str, source: str) -> None:
        if not is_pointer(raw):
            return  # another tool's *.snap (a Jest snapshot): it names no object of ours
        if raw not in self._parsed:
            try:
                self._parsed[raw] = loads(raw, source=source)
            except GitsnapError:
                self._parsed[raw] = None
        ptr = self._parsed[raw]
        if ptr is None:
            # Keep every id the text names: gc must never drop what a pointer may need.
            if (path, raw) in self._seen_raw:
                return
            self._seen_raw.add((path, raw))
            oids = sorted({m.decode() for m in _HEX64.findall(raw)})
            self.live.unreadable.append(source)
            segs = tuple(Segment(o, 0, "unreadable pointer") for o in oids)
            self.live.snapshots.append(LiveSnapshot(path, commit, where, None, 0, segs))
            return
        key = (path, ptr.id)
        if key in self._seen:
            return
        self._seen.add(key)
        segs = tuple(Segment(e.oid, e.size, e.label) for e in ptr.segments())
        self.live.snapshots.append(LiveSnapshot(path, commit, where, ptr.id, ptr.size, segs))


def live_snapshots(
    ws: Workspace,
    *,
    revs: Sequence[str] | None = None,
    extra_commits: Iterable[str] = (),
    worktrees: bool = True,
    journal_keep: JournalPolicy | None = None,
) -> Live:
    """The live snapshots of the repository ``ws``.

    ``revs`` None: every reachable commit (``--all --reflog``) plus
    ``extra_commits`` and the snapshot journal's entries (those
    ``journal_keep`` keeps, given the entries, the committed (path, snapshot
    id) pairs and those an index or work tree holds; None: all); else only
    those revisions' commits.
    ``worktrees``: also every work tree's index and pointer files.
    """
    col = _Collector()
    root = ws.root
    if revs is None:
        for v in revisions.versions(root, ["--all", "--reflog", *extra_commits], strict=True):
            col.add(v.raw, v.path, v.commit, "commit", f"{v.commit[:10]}:{v.path}{SUFFIX}")
    else:
        for rev in revs:
            commit = gitio.resolve_commit(root, rev)
            for rel, raw in ws.pointer_blobs(commit).items():
                col.add(raw, rel, commit, "commit", f"{rev}:{rel}{SUFFIX}")
    if worktrees:
        for wt in gitio.worktrees(root):
            staged = gitio.index_snap_blobs(wt)
            blobs = revisions.read_blobs(root, sorted({b for b, _ in staged}))
            for blob, path in staged:
                col.add(blobs[blob], path[: -len(SUFFIX)], None, "index", f":{path}")
            for path in gitio.ls_files(wt, f"*{SUFFIX}"):
                try:
                    raw = pointer_bytes(wt / path)
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    continue
                col.add(raw, path[: -len(SUFFIX)], None, "worktree", path)
    if revs is None:
        found = journal.entries(ws.git_dir)
        if journal_keep is not None:
            committed = {(s.path, s.snapshot_id or "") for s in col.live.snapshots if s.commit}
            in_use = {(s.path, s.snapshot_id or "") for s in col.live.snapshots if not s.commit}
            found = list(journal_keep(found, committed, in_use))
        for e in found:
            entry_raw = e.raw()  # one entry's bytes at a time (bounded)
            if entry_raw is not None:
                col.add(entry_raw, e.path, None, "journal", f"journal {e.id}")
    return col.live


def live(
    ws: Workspace,
    projects: Sequence[Path] = (),
    extra_commits: Iterable[str] = (),
    journal_keep: JournalPolicy | None = None,
) -> Live:
    """The live snapshots of ``ws`` and of the other ``projects`` sharing its cache.

    ``journal_keep`` applies to ``ws``'s journal; the other projects' journals are kept whole.
    """
    found = live_snapshots(ws, extra_commits=extra_commits, journal_keep=journal_keep)
    for project in projects:
        more = live_snapshots(Workspace.discover(project))
        found.snapshots.extend(more.snapshots)
        found.unreadable.extend(more.unreadable)
    return found
