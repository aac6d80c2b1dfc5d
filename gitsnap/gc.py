"""Storage management: ``gc`` (collect), ``du`` (report), ``fsck`` (verify).

The full description is ``docs/storage.md``. Only gitsnap's own objects are
ever touched -- ``<cache>/gitsnap/blake3/`` and ``<remote>/gitsnap/blake3/``
(DESIGN D3) -- never DVC's ``files/md5``.

gc
    Deletes the objects no live snapshot (:mod:`gitsnap.storage`) needs.
    An unreferenced object younger than the grace period is kept: a
    ``git snap save`` writes its objects before its pointer, and a colleague's
    ``git snap push`` reaches a shared remote before their ``git push`` does.
    Default grace: 1 hour locally, 14 days on a remote (git's own
    ``gc.pruneExpire``); ``--grace now`` drops it. Temp files of interrupted
    writes older than an hour go too.

    On a remote, gc needs ``--all-commits`` (the scope: every commit this
    clone can reach, plus every branch and tag each git remote advertises,
    which must all be fetched) and ``--force`` to delete; ``--dry-run`` needs
    only the scope.

du
    Per model and in total: the logical size (the sum of the sizes of the
    distinct live snapshots), the bytes stored (each distinct object once),
    the bytes of those in the local store, and the dedup ratio
    logical / stored.

fsck
    Re-hashes every object of the local store (or of the remote, streamed),
    in parallel, and checks that the snapshots in scope (work tree + HEAD, or
    ``REV...``, or ``--all-commits``) have all their objects. Problems are
    reported by snapshot (``path@commit``) and tensor.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gitsnap import gitio
from gitsnap.errors import ObjectCorrupt, ObjectMissing, UsageError
from gitsnap.storage import Live, StorageError, live_snapshots
from gitsnap.workspace import Workspace

TMP_MAX_AGE = 3600  # seconds: a temp file this old belongs to no running write
LOCAL_GRACE = 3600
REMOTE_GRACE = 14 * 24 * 3600
_OID_RE = re.compile(r"^[0-9a-f]{64}$")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Progress(Protocol):
    def start(self, objects: int, nbytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def object_done(self) -> None: ...

    def close(self) -> None: ...


def parse_duration(text: str) -> int:
    """``now``/``0``, ``90`` (seconds), ``30m``, ``1h``, ``14d``, ``2w`` -> seconds."""
    t = text.strip().lower()
    if t == "now":
        return 0
    m = _DURATION_RE.match(t)
    if not m:
        raise UsageError(
            f"--grace {text!r} is not a duration", hint="use now, 0, 90s, 30m, 1h, 14d or 2w"
        )
    return int(float(m[1]) * _UNITS[m[2]])


def _live(ws: Workspace, projects: Sequence[Path] = (), extra_commits: Iterable[str] = ()) -> Live:
    live = live_snapshots(ws.root, extra_commits=extra_commits)
    for project in projects:
        other = Workspace.discover(project)
        more = live_snapshots(other.root)
        live.snapshots.extend(more.snapshots)
        live.unreadable.extend(more.unreadable)
    return live


# ------------------------------------------------------------------ gc


@dataclass(frozen=True)
class GcObject:
    oid: str
    size: int


@dataclass(frozen=True)
class GcResult:
    target: str  # "local" or "remote"
    location: str  # the store folder, or the remote's URL
    remote: str | None  # DVC remote name
    dry_run: bool
    grace_seconds: int
    snapshots: int  # live snapshots that were kept whole
    objects_kept: int
    bytes_kept: int
    objects_deleted: int  # with dry_run: would be deleted
    bytes_deleted: int
    deleted: list[GcObject]
    objects_recent: int  # unreferenced but younger than the grace period: kept
    bytes_recent: int
    tmp_deleted: int  # stale temp files of interrupted writes
    tmp_bytes: int
    unreadable_pointers: list[str]  # kept by the hex ids in their text


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def gc_local(
    ws: Workspace,
    *,
    dry_run: bool = False,
    grace: int = LOCAL_GRACE,
    projects: Sequence[Path] = (),
    force: bool = False,
) -> GcResult:
    dvc_dir = ws.require_dvc()
    store = ws.store
    if not _is_inside(ws.cache_dir, dvc_dir) and not projects and not force and not dry_run:
        raise StorageError(
            f"the DVC cache {ws.cache_dir} is outside this project and may be shared with other "
            "projects; gc would delete the snapshots only they use",
            hint="name the other projects (git snap gc --projects DIR...), "
            "or pass --force if this project alone uses the cache",
        )
    live = _live(ws, projects)
    keep = live.oids()
    now = time.time()
    kept, recent = [0, 0], [0, 0]
    doomed: list[GcObject] = []
    for oid in store.iter_oids():
        if not _OID_RE.match(oid):
            continue  # not an object name: not ours to judge
        path = store.path(oid)
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if oid in keep:
            kept[0] += 1
            kept[1] += st.st_size
        elif now - st.st_mtime < grace:
            recent[0] += 1
            recent[1] += st.st_size
        else:
            doomed.append(GcObject(oid, st.st_size))
    if not dry_run:
        for obj in doomed:
            try:
                store.path(obj.oid).unlink()
            except FileNotFoundError:
                continue
        for prefix in {obj.oid[:2] for obj in doomed}:
            with contextlib.suppress(OSError):
                (store.root / prefix).rmdir()  # only when empty
    tmp_n, tmp_b = _stale_tmp_local(store.root / "tmp", now, dry_run)
    return GcResult(
        "local",
        str(store.root),
        None,
        dry_run,
        grace,
        len(live.snapshots),
        kept[0],
        kept[1],
        len(doomed),
        sum(o.size for o in doomed),
        sorted(doomed, key=lambda o: o.oid),
        recent[0],
        recent[1],
        tmp_n,
        tmp_b,
        live.unreadable,
    )


def _stale_tmp_local(tmp: Path, now: float, dry_run: bool) -> tuple[int, int]:
    n = b = 0
    try:
        entries = list(os.scandir(tmp))
    except FileNotFoundError:
        return 0, 0
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if now - st.st_mtime >= TMP_MAX_AGE and e.is_file(follow_symlinks=False):
            if not dry_run:
                Path(e.path).unlink(missing_ok=True)
            n += 1
            b += st.st_size
    return n, b


def _advertised_commits(ws: Workspace) -> list[str]:
    """Commits every git remote advertises (branches, tags).

    All must be here: a snapshot only a colleague's pushed branch holds
    would otherwise look unreferenced.
    """
    commits: set[str] = set()
    missing: list[str] = []
    for name in gitio.git_remotes(ws.root):
        refs = gitio.ls_remote_heads(ws.root, name)
        absent = gitio.missing_objects(ws.root, refs.values())
        missing += [f"{name} {ref}" for ref, sha in sorted(refs.items()) if sha in absent]
        commits |= {sha for sha in refs.values() if sha not in absent}
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise StorageError(
            f"this clone lacks commits that git remotes advertise ({shown}); "
            "their snapshots would look unreferenced and be deleted from the shared remote",
            hint="git fetch --all --tags, then run gc again "
            "(or --ignore-git-remotes if those refs hold no snapshots you need)",
        )
    return sorted(commits)


def require_remote_scope(*, all_commits: bool, force: bool, dry_run: bool) -> None:
    """gc on a remote must say what survives (the scope) and, to delete, --force."""
    if not all_commits:
        raise UsageError(
            "gc --remote needs a scope: which snapshots must survive "
            "on a remote other clones share",
            hint="git snap gc --remote --all-commits --dry-run shows what would go; "
            "add --force to delete. --all-commits keeps every snapshot of every commit "
            "this clone and its git remotes can reach",
        )
    if not force and not dry_run:
        raise UsageError(
            "gc --remote deletes objects from a shared DVC remote and needs --force",
            hint="look first: git snap gc --remote --all-commits --dry-run",
        )


def gc_remote(
    ws: Workspace,
    remote: Any,
    *,
    all_commits: bool,
    force: bool,
    dry_run: bool = False,
    grace: int = REMOTE_GRACE,
    check_git_remotes: bool = True,
) -> GcResult:
    require_remote_scope(all_commits=all_commits, force=force, dry_run=dry_run)
    extra = _advertised_commits(ws) if check_git_remotes else []
    live = _live(ws, extra_commits=extra)
    keep = live.oids()
    now = time.time()
    kept, recent = [0, 0], [0, 0]
    doomed: list[Any] = []
    stale_tmp: list[Any] = []
    for f in remote.list():
        age = now - f.mtime if f.mtime is not None else 0.0  # unknown age: treat as new
        if f.oid is None:
            if f.tmp and f.mtime is not None and age >= TMP_MAX_AGE:
                stale_tmp.append(f)
            continue
        if f.oid in keep:
            kept[0] += 1
            kept[1] += f.size
        elif age < grace:
            recent[0] += 1
            recent[1] += f.size
        else:
            doomed.append(f)
    if not dry_run:
        remote.delete([f.key for f in doomed] + [f.key for f in stale_tmp])
    deleted = sorted((GcObject(f.oid, f.size) for f in doomed), key=lambda o: o.oid)
    return GcResult(
        "remote",
        remote.info.url,
        remote.info.name,
        dry_run,
        grace,
        len(live.snapshots),
        kept[0],
        kept[1],
        len(deleted),
        sum(o.size for o in deleted),
        deleted,
        recent[0],
        recent[1],
        len(stale_tmp),
        sum(f.size for f in stale_tmp),
        live.unreadable,
    )


# ------------------------------------------------------------------ du


@dataclass(frozen=True)
class DuEntry:
    name: str | None  # model name (None: no name, see docs/registry.md)
    path: str
    snapshots: int  # distinct live snapshots
    objects: int  # distinct objects they need
    logical_bytes: int  # sum of the snapshots' sizes
    stored_bytes: int  # each distinct object once
    local_bytes: int  # of those, present in the local store
    dedup_ratio: float  # logical / stored (1.0 when nothing is stored)


@dataclass(frozen=True)
class DuResult:
    models: list[DuEntry]
    total: DuEntry  # objects shared between models count once
    store_objects: int  # everything in the local store, referenced or not
    store_bytes: int
    unreferenced_objects: int  # in the store, needed by no live snapshot (gc's candidates)
    unreferenced_bytes: int


def _entry(name: str | None, path: str, snaps: list[Any], local: set[str]) -> DuEntry:
    sizes: dict[str, int] = {}
    for snap in snaps:
        for seg in snap.segments:
            sizes[seg.oid] = seg.size
    logical = sum(s.size for s in snaps)
    stored = sum(sizes.values())
    return DuEntry(
        name,
        path,
        len(snaps),
        len(sizes),
        logical,
        stored,
        sum(v for k, v in sizes.items() if k in local),
        round(logical / stored, 3) if stored else 1.0,
    )


def du(ws: Workspace) -> DuResult:
    from gitsnap import registry

    live = live_snapshots(ws.root)
    store = ws.store
    on_disk: dict[str, int] = {}
    for oid in store.iter_oids():
        try:
            on_disk[oid] = store.path(oid).lstat().st_size
        except FileNotFoundError:
            continue
    local = set(on_disk)
    snaps = [s for s in live.snapshots if s.snapshot_id is not None]
    by_path: dict[str, list[Any]] = {}
    for s in snaps:
        by_path.setdefault(s.path, []).append(s)
    cat = registry.catalog(ws, by_path)
    rows = [_entry(cat.name_for(p), p, ss, local) for p, ss in sorted(by_path.items())]
    keep = live.oids()
    unref = {o: n for o, n in on_disk.items() if o not in keep}
    return DuResult(
        rows,
        _entry(None, "", snaps, local),
        len(on_disk),
        sum(on_disk.values()),
        len(unref),
        sum(unref.values()),
    )


# ------------------------------------------------------------------ fsck


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


def fsck(
    ws: Workspace,
    *,
    remote: Any = None,
    revs: Sequence[str] = (),
    all_commits: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> FsckResult:
    """Re-hash every object (local store, or ``remote``); check the snapshots in scope."""
    started = time.perf_counter()
    everything = live_snapshots(ws.root)  # names every object it can, for the report
    if all_commits:
        scoped, scope = everything, "all commits"
    elif revs:
        scoped, scope = live_snapshots(ws.root, revs=revs, worktrees=False), " ".join(revs)
    else:
        heads = ["HEAD"] if gitio.has_commits(ws.root) else []
        scoped, scope = live_snapshots(ws.root, revs=heads), "work tree + HEAD"
    uses = everything.uses()
    for oid, found in scoped.uses().items():
        if oid not in uses:
            uses[oid] = found

    # What there is to check: (oid, size, reader)
    if remote is None:
        store = ws.store
        present: dict[str, int] = {}
        for oid in store.iter_oids():
            if _OID_RE.match(oid):
                try:
                    present[oid] = store.path(oid).lstat().st_size
                except FileNotFoundError:
                    continue
        workers = jobs or max(2, min(8, os.cpu_count() or 1))
    else:
        present = {f.oid: f.size for f in remote.list() if f.oid}
        workers = jobs or remote.jobs
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
        listed = set(present)
        missing = sorted(o for o in scoped.oids() if o not in listed)
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
        len(present),
        sum(present.values()),
        len(corrupt),
        len(missing),
        problems,
        round(time.perf_counter() - started, 3),
        not problems,
    )


def _uses(found: list[Any]) -> list[FsckUse]:
    out = [FsckUse(snap.label, snap.path, snap.commit, seg.label) for snap, seg in found]
    return sorted(set(out), key=lambda u: (u.path, u.snapshot, u.segment))


__all__ = [
    "DuEntry",
    "DuResult",
    "FsckProblem",
    "FsckResult",
    "FsckUse",
    "GcObject",
    "GcResult",
    "StorageError",
    "du",
    "fsck",
    "gc_local",
    "gc_remote",
    "parse_duration",
]
