"""``git snap fsck``: re-hash every object, check the snapshots in scope have theirs.

Re-hashes every object of the local store (or of the remote, streamed), in
parallel, and checks that the snapshots in scope (work tree + HEAD, or
``REV...``, or ``--all-commits``) have all their objects. Problems are
reported by snapshot (``path@commit``) and tensor.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio, revisions
from gitsnap.commands.gc import OID_RE
from gitsnap.errors import ObjectCorrupt, ObjectMissing
from gitsnap.liveness import LiveSnapshot, Segment, live_snapshots
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.remote import Remote
    from gitsnap.transfer import Progress


def fsck(
    revs: Sequence[str] = (),
    *,
    remote: bool = False,
    remote_name: str | None = None,
    all_commits: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    cwd: Path | None = None,
) -> FsckResult:
    """Re-hash every local (or remote) object.

    Reports corrupt or missing objects by snapshot and tensor.

    Example::

        res = api.fsck()
        for p in res.problems:
            print(p.problem, p.oid[:12], [(u.snapshot, u.segment) for u in p.uses])
    """
    ws = Workspace.discover(cwd)
    target = None
    if remote or remote_name:
        from gitsnap.remote import open_remote

        target = open_remote(ws.require_dvc(), remote_name, jobs)
    return check(
        ws,
        remote=target,
        revs=[revisions.to_git(ws, r) for r in revs],
        all_commits=all_commits,
        jobs=jobs,
        progress=progress,
    )


@dataclass(frozen=True)
class FsckUse:
    snapshot: str  # "path@commit" (or "path (work tree)")
    path: str
    commit: str | None
    segment: str  # "tensor 'head.weight'", "header segment", ...


@dataclass(frozen=True)
class FsckProblem:
    oid: str
    size: int
    problem: str  # "corrupt" or "missing"
    uses: list[FsckUse]  # empty: a corrupt object no live snapshot needs


@dataclass(frozen=True)
class FsckResult:
    target: str  # "local" or "remote"
    location: str
    remote: str | None
    scope: str  # "work tree + HEAD", "REV...", "all commits"
    snapshots: int  # in scope
    objects_checked: int
    bytes_checked: int
    corrupt: int
    missing: int
    problems: list[FsckProblem]
    seconds: float
    ok: bool
    damaged_packs: list[str] = field(default_factory=list)  # remote pack indexes that are unusable


def check(
    ws: Workspace,
    *,
    remote: Remote | None = None,
    revs: Sequence[str] = (),
    all_commits: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> FsckResult:
    """Re-hash every object (local store, or ``remote``); check the snapshots in scope."""
    started = time.perf_counter()
    everything = live_snapshots(ws)  # names every object it can, for the report
    if all_commits:
        scoped, scope = everything, "all commits"
    elif revs:
        scoped, scope = live_snapshots(ws, revs=revs, worktrees=False), " ".join(revs)
    else:
        heads = ["HEAD"] if gitio.has_commits(ws.root) else []
        scoped, scope = live_snapshots(ws, revs=heads), "work tree + HEAD"
    uses = everything.uses()
    for oid, found in scoped.uses().items():
        if oid not in uses:
            uses[oid] = found

    # What there is to check: (oid, size, reader)
    if remote is None:
        store = ws.store
        present: dict[str, int] = {}
        for oid in store.iter_oids():
            if OID_RE.match(oid):
                try:
                    present[oid] = store.path(oid).lstat().st_size
                except FileNotFoundError:
                    continue
        # Local packs: each checked against its name, every member decoded and re-hashed
        # once, here (the loop below checks the loose objects).
        local_damage: list[str] = []
        local_packed: dict[str, bool] = {}
        local_packed_bytes = 0
        if store.packs_dir.is_dir():
            packs = store.packs()
            bad: set[str] = set()
            local_damage += [p.message for p in packs.damaged + packs.verify(bad)]
            local_packed = {o: o in bad for o in packs.oids()}
            local_packed_bytes = sum(p.size for p in packs.packs)
        workers = jobs or max(2, min(8, os.cpu_count() or 1))
    else:
        present = {f.oid: f.size for f in remote.list() if f.oid}
        workers = jobs or remote.jobs
    if remote is None:
        packed_corrupt, packed_bytes, damaged = local_packed, local_packed_bytes, local_damage
    else:
        packed_corrupt, packed_bytes, damaged = _check_packs(remote, ws, uses)
    progress_ = progress
    if progress_ is not None:
        progress_.start(len(present), sum(present.values()))
    lock = threading.Lock()
    corrupt: list[str] = []
    source = ws.store if remote is None else remote

    def check(oid: str) -> None:
        try:
            digest = source.digest(oid, on_bytes=progress_.advance if progress_ else None).oid
        except ObjectMissing:
            return  # deleted meanwhile (a concurrent gc): the missing check below sees it
        except ObjectCorrupt:
            digest = ""  # not a file at all (a directory): corrupt, named below
        if digest != oid:
            with lock:
                corrupt.append(oid)
        if progress_ is not None:
            progress_.object_done()

    try:
        order = sorted(present, key=lambda o: -present[o])
        if workers <= 1 or len(order) <= 1:
            for oid in order:
                check(oid)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gitsnap-fsck") as pool:
                for _ in pool.map(check, order):
                    pass
    finally:
        if progress_ is not None:
            progress_.close()

    if remote is None:
        missing = sorted(o for o in scoped.oids() if not ws.store.has(o))
    else:
        listed = set(present) | set(packed_corrupt)
        missing = sorted(o for o in scoped.oids() if o not in listed)
    corrupt += [o for o, bad in packed_corrupt.items() if bad and o not in present]
    sizes = {
        seg.oid: seg.size
        for snap in everything.snapshots + scoped.snapshots
        for seg in snap.segments
    }
    problems = [
        FsckProblem(oid, present.get(oid, sizes.get(oid, 0)), kind, _uses(uses.get(oid, [])))
        for kind, oids in (("corrupt", sorted(corrupt)), ("missing", missing))
        for oid in oids
    ]
    return FsckResult(
        "local" if remote is None else "remote",
        str(ws.store.root) if remote is None else remote.info.url,
        None if remote is None else remote.info.name,
        scope,
        len(scoped.snapshots),
        len(present | packed_corrupt.keys()),
        sum(present.values()) + packed_bytes,
        len(corrupt),
        len(missing),
        problems,
        round(time.perf_counter() - started, 3),
        not problems and not damaged,
        damaged,
    )


def _check_packs(
    remote: Remote, ws: Workspace, uses: dict[str, list[tuple[LiveSnapshot, Segment]]]
) -> tuple[dict[str, bool], int, list[str]]:
    """A remote's packs: each read whole, checked against its name, every member decoded and
    re-hashed. Returns ``({oid: corrupt}, stored bytes read, damaged pack indexes)``."""
    from gitsnap.remote import packs

    found = packs.load(remote, ws.store)
    outside = packs.remote_lookup(remote, found)  # delta bases in other packs, or loose
    result: dict[str, bool] = {}
    read = 0
    damaged = [d.message for d in found.damaged]

    def label(oid: str) -> str:
        found_uses = uses.get(oid)
        return found_uses[0][1].label if found_uses else "object"

    for rp in found.packs.values():
        intact, whole = packs.verify_pack(remote, rp, label, outside)
        read += rp.size
        if not whole:
            damaged.append(
                f"pack {rp.name[:12]}… on remote '{remote.info.name}': its bytes do not match "
                "its name"
            )
        for oid, ok in intact.items():
            result[oid] = result.get(oid, False) or not ok  # corrupt in any copy: reported
    return result, read, damaged


def _uses(found: list[tuple[LiveSnapshot, Segment]]) -> list[FsckUse]:
    out = [FsckUse(snap.label, snap.path, snap.commit, seg.label) for snap, seg in found]
    return sorted(set(out), key=lambda u: (u.path, u.snapshot, u.segment))
