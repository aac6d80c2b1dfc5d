"""``git snap gc``: delete the objects no live snapshot needs (docs/storage.md).

Only gitsnap's own objects are ever touched -- ``<cache>/gitsnap/blake3/`` and
``<remote>/gitsnap/blake3/`` (DESIGN D3) -- never DVC's ``files/md5``.

Deletes the objects no live snapshot (:mod:`gitsnap.liveness`) needs.
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

Saved but uncommitted snapshots live in the snapshot journal
(:mod:`gitsnap.journal`); locally, gc keeps them under a retention policy
(``keep_last`` per checkpoint, ``keep_within``; defaults in
:func:`gitsnap.journal.retain`) and removes the entries it drops from the
journal too. Committed and tagged snapshots are always kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio, journal, liveness
from gitsnap.errors import StorageError, UsageError
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.remote import Remote, RemoteFile, packs, rewrite
    from gitsnap.store import ObjectStore

TMP_MAX_AGE = 3600  # seconds: a temp file this old belongs to no running write
LOCAL_GRACE = 3600
# gc --remote plans again at most this many times when packs arrive while it plans.
_REPLANS = 3
REMOTE_GRACE = 14 * 24 * 3600
OID_RE = re.compile(r"^[0-9a-f]{64}$")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def gc(
    *,
    dry_run: bool = False,
    remote: bool = False,
    remote_name: str | None = None,
    all_commits: bool = False,
    force: bool = False,
    grace: str | int | None = None,
    projects: Sequence[str | os.PathLike[str]] = (),
    check_git_remotes: bool = True,
    jobs: int | None = None,
    keep_last: int | None = None,
    keep_within: str | int | None = None,
    cwd: Path | None = None,
) -> GcResult:
    """Delete objects no live snapshot needs.

    Locally, or (``remote``) on the DVC remote.

    Example::

        res = api.gc(dry_run=True)
        print(res.objects_deleted, res.bytes_deleted)
        api.gc(remote=True, all_commits=True, force=True)
        api.gc(keep_last=3)  # of the uncommitted saves in the journal, the newest 3 per checkpoint
    """
    ws = Workspace.discover(cwd)
    seconds = None if grace is None else grace if isinstance(grace, int) else parse_duration(grace)
    if remote or remote_name:
        # before opening it
        require_remote_scope(all_commits=all_commits, force=force, dry_run=dry_run)
        from gitsnap.remote import open_remote

        target = open_remote(ws.require_dvc(), remote_name, jobs)
        with ws.lock("gc"):
            return gc_remote(
                ws, target, all_commits=True, force=force, dry_run=dry_run,
                grace=REMOTE_GRACE if seconds is None else seconds,
                check_git_remotes=check_git_remotes,
            )  # fmt: skip
    if keep_last is not None and keep_last < 0:
        raise UsageError(f"--keep-last {keep_last} is negative", hint="give 0 or more")
    within = (
        keep_within
        if keep_within is None or isinstance(keep_within, int)
        else parse_duration(keep_within, "--keep-within")
    )
    with ws.lock("gc"):
        return gc_local(
            ws, dry_run=dry_run, grace=LOCAL_GRACE if seconds is None else seconds,
            projects=[Path(ws.cwd / p) for p in projects], force=force,
            keep_last=keep_last, keep_within=within,
        )  # fmt: skip


def parse_duration(text: str, option: str = "--grace") -> int:
    """``now``/``0``, ``90`` (seconds), ``30m``, ``1h``, ``14d``, ``2w`` -> seconds."""
    t = text.strip().lower()
    if t == "now":
        return 0
    m = _DURATION_RE.match(t)
    if not m:
        raise UsageError(
            f"{option} {text!r} is not a duration", hint="use now, 0, 90s, 30m, 1h, 14d or 2w"
        )
    return int(float(m[1]) * _UNITS[m[2]])


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
    # Snapshot journal (saved, not committed): entries kept, and dropped by retention (ids).
    journal_kept: int = 0
    journal_dropped: list[str] = field(default_factory=list)
    # Packs (storage v2), after gc (a dry run: estimated). A pack loses its dead members by
    # a rewrite (locally whenever it has one; on a remote once they are worth it,
    # remote.rewrite.REWRITE_FRACTION); a member a kept delta needs is never dropped.
    packs_kept: int = 0  # packs left
    packed_objects: int = 0
    packed_bytes: int = 0  # stored (compressed) bytes of the packs
    packed_unreferenced: int = 0  # packed objects no live snapshot needs (young, or bases)
    packs_rewritten: int = 0  # packs rewritten without their dead members, or deleted
    packs_written: int = 0  # new packs they were rewritten into (remote)
    packed_deleted: int = 0  # dead packed objects dropped (remote; also counted in deleted)
    packed_bytes_freed: int = 0  # remote .pack/.idx bytes deleted minus those written


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
    keep_last: int | None = None,
    keep_within: int | None = None,
) -> GcResult:
    store = ws.store
    # A linked worktree's cache is its main worktree's: this repository's own.
    if not _is_inside(ws.cache_dir, ws.home_dvc_dir) and not projects and not force and not dry_run:
        raise StorageError(
            f"the DVC cache {ws.cache_dir} is outside this project and may be shared with other "
            "projects; gc would delete the snapshots only they use",
            hint="name the other projects (git snap gc --projects DIR...), "
            "or pass --force if this project alone uses the cache",
        )
    kept_entries: list[journal.Entry] = []
    dropped_entries: list[journal.Entry] = []

    def policy(
        found: Sequence[journal.Entry],
        committed: set[tuple[str, str]],
        in_use: set[tuple[str, str]],
    ) -> list[journal.Entry]:
        kept_, dropped_ = journal.retain(
            found, committed, in_use=in_use, keep_last=keep_last, keep_within=keep_within
        )
        kept_entries.extend(kept_)
        dropped_entries.extend(dropped_)
        return kept_

    live = liveness.live(ws, projects, journal_keep=policy)
    keep = live.oids()
    dropped_ids = [e.id for e in dropped_entries] + journal.overflow(ws.git_dir)
    if not dry_run:
        journal.drop(ws.git_dir, dropped_ids)
    now = time.time()
    kept, recent = [0, 0], [0, 0]
    doomed: list[GcObject] = []
    packed = _plan_packs(store, keep, grace, now, kept, recent, doomed)
    keep = keep | packed.outside_bases  # loose bases that kept packed deltas need
    for oid in store.iter_oids():
        if not OID_RE.match(oid):
            continue  # not an object name: not ours to judge
        path = store.path(oid)
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        # A loose copy of a packed object that stays is one object, counted already
        # (its bytes are on disk all the same).
        again = oid in packed.keep
        if oid in keep:
            kept[0] += 0 if again else 1
            kept[1] += st.st_size
        elif again or now - st.st_mtime < grace:
            # Young, or the loose copy of a packed object kept unreferenced (young, or a
            # delta base): the object stays, so the copy does too, counted with it.
            recent[0] += 0 if again else 1
            recent[1] += st.st_size
        else:
            doomed.append(GcObject(oid, st.st_size))
    if not dry_run:
        from gitsnap import pack

        if packed.rewrite:
            packed.packs_left = len(store.packs().packs) - len(packed.rewrite)
            packed.packs_left += len(pack.rewrite(store.packs(), packed.keep).packs_written)
        pack.clean(store.packs_dir)
        for obj in doomed:
            if obj.oid in packed.dropped:
                continue
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
        len(kept_entries),
        dropped_ids,
        packs_kept=packed.packs_left,
        packed_objects=packed.objects_left,
        packed_bytes=packed.bytes_left,
        packed_unreferenced=packed.unreferenced_left,
        packs_rewritten=len(packed.rewrite),
    )


@dataclass
class _PackPlan:
    keep: set[str] = field(default_factory=set)  # packed objects that stay
    dropped: set[str] = field(default_factory=set)
    outside_bases: set[str] = field(default_factory=set)
    rewrite: list[str] = field(default_factory=list)  # packs that lose members
    packs_left: int = 0
    objects_left: int = 0
    bytes_left: int = 0
    unreferenced_left: int = 0


def _plan_packs(  # noqa: PLR0917 - the local gc's running totals, filled in
    store: ObjectStore,
    keep: set[str],
    grace: int,
    now: float,
    kept: list[int],
    recent: list[int],
    doomed: list[GcObject],
) -> _PackPlan:
    """What gc does to the local packs: members no live snapshot needs are dropped (their
    packs rewritten, :func:`gitsnap.pack.rewrite`), except in packs younger than the grace
    period (a save in progress has no pointer yet), and except delta bases kept ones need."""
    from gitsnap import pack

    plan = _PackPlan()
    if not store.packs_dir.is_dir():
        return plan
    packs = store.packs()
    wanted = set(keep)
    young: set[str] = set()
    for p in packs.packs:
        try:
            age = now - p.path.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < grace:
            young.update(p.entries)
    need, _, outside = pack.needed_closure(packs, wanted | young)
    plan.keep, plan.outside_bases = need, outside
    for e in packs.entries():
        if e.oid in need:
            if e.oid in keep:
                kept[0] += 1
                kept[1] += e.length
            else:
                recent[0] += 1
                recent[1] += e.length
                plan.unreferenced_left += 1
        else:
            plan.dropped.add(e.oid)
            doomed.append(GcObject(e.oid, e.length))
    plan.rewrite = [p.name for p in packs.packs if any(o not in need for o in p.entries)]
    left = [p for p in packs.packs if p.name not in plan.rewrite]
    # A dry run's estimate: the rewritten packs' kept members fit one new pack or more.
    rewritten = sum(packs.entry(o).length for o in need if packs.pack_of(o).name in plan.rewrite)
    plan.packs_left = len(left) + -(-rewritten // pack.MAX_PACK)
    plan.objects_left = len(need)
    plan.bytes_left = sum(packs.entry(o).length for o in need)
    return plan


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
    remote: Remote,
    *,
    all_commits: bool,
    force: bool,
    dry_run: bool = False,
    grace: int = REMOTE_GRACE,
    check_git_remotes: bool = True,
) -> GcResult:
    require_remote_scope(all_commits=all_commits, force=force, dry_run=dry_run)
    extra = _advertised_commits(ws) if check_git_remotes else []
    live = liveness.live(ws, extra_commits=extra)
    from gitsnap.remote import packs, rewrite

    live_oids = live.oids()
    # A push that lands while gc plans may store deltas against objects the plan drops
    # (old, and unreferenced here): before deleting anything, gc lists the packs again
    # and plans anew if one appeared, its young members and their bases then kept.
    found = packs.load(remote, ws.store)
    for attempt in range(_REPLANS + 1):
        if found.damaged:
            # A damaged index hides which loose objects its packed deltas need: delete nothing.
            raise found.damaged[0]
        now = time.time()
        # Packs: dead members go by rewriting their pack once they are worth it
        # (remote.rewrite); every delta base a remaining member needs stays, packed or loose.
        todo = rewrite.plan(found, live_oids, grace=grace, now=now)
        keep = live_oids | todo.needed
        kept, recent = [0, 0], [0, 0]
        doomed: list[RemoteFile] = []
        # A pack without its index is an interrupted push (the index goes last) or rewrite:
        # like a temp file, it is dropped once it is older than any running push.
        stale_tmp: list[RemoteFile] = [
            f for f in found.orphans if f.mtime is not None and now - f.mtime >= TMP_MAX_AGE
        ]
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
        if dry_run:
            break
        listed = packs.load(remote, ws.store)  # new indexes only are read
        if set(listed.packs) == set(found.packs):
            break
        found = listed  # plan again with what arrived
        if attempt == _REPLANS:
            raise StorageError(
                f"packs kept arriving on remote '{remote.info.name}' while gc planned "
                f"({_REPLANS + 1} plans): a push is running, and gc deleted nothing",
                hint="run git snap gc --remote again once the pushes to it are done",
            )
    deleted = {f.oid: GcObject(f.oid, f.size) for f in doomed if f.oid is not None}
    packed = _remote_pack_totals(found, todo, live_oids, kept, recent, deleted)
    if not dry_run:
        # Packs first: until an old pack is gone, its members may need loose bases.
        done = rewrite.execute(remote, ws.store, found, todo)
        packed.packs_left += len(done.packs_written) - packed.written
        packed.bytes_left += done.pack_bytes_written - packed.new_pack_bytes
        packed.bytes_freed = done.bytes_deleted - done.bytes_written
        packed.written = len(done.packs_written)
        remote.delete([f.key for f in doomed] + [f.key for f in stale_tmp])
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
        sum(o.size for o in deleted.values()),
        sorted(deleted.values(), key=lambda o: o.oid),
        recent[0],
        recent[1],
        len(stale_tmp),
        sum(f.size for f in stale_tmp),
        live.unreadable,
        packs_kept=packed.packs_left,
        packed_objects=len(packed.objects_left),
        packed_bytes=packed.bytes_left,
        packed_unreferenced=len(packed.objects_left - live_oids),
        packs_rewritten=len(todo.rewritten()),
        packs_written=packed.written,
        packed_deleted=packed.deleted,
        packed_bytes_freed=packed.bytes_freed,
    )


@dataclass
class _RemotePacked:
    packs_left: int = 0
    objects_left: set[str] = field(default_factory=set)
    bytes_left: int = 0  # .pack bytes
    deleted: int = 0  # dead members dropped
    written: int = 0  # new packs (a dry run: an estimate)
    bytes_freed: int = 0  # .pack and .idx bytes deleted minus those written (dry run: estimate)
    new_pack_bytes: int = 0  # the estimate of the new .pack files' bytes


def _remote_pack_totals(  # noqa: PLR0917 - gc_remote's running totals, filled in
    found: packs.RemotePacks,
    todo: rewrite.Plan,
    live: set[str],
    kept: list[int],
    recent: list[int],
    deleted: dict[str, GcObject],
) -> _RemotePacked:
    """gc's counts for the remote's packs: kept members (live, or kept unreferenced: young,
    or a delta base), dropped ones, and what is left after the rewrites (before them, for a
    dry run, the new packs estimated from the bytes to copy)."""
    from gitsnap import pack

    out = _RemotePacked()
    rewritten = {f.name for f in todo.rewritten()}
    for name in sorted(found.packs):
        rp = found.packs[name]
        if name not in rewritten:
            out.packs_left += 1
            out.bytes_left += rp.size
            out.objects_left.update(rp.entries)
    copied = [e for es in todo.copies.values() for e in es]
    out.objects_left.update(e.oid for e in copied)
    for oid in out.objects_left:
        e = found.where[oid]
        if oid in live:
            kept[0] += 1
            kept[1] += e.share
        else:
            recent[0] += 1
            recent[1] += e.share
    for name in sorted(rewritten):
        for e in found.packs[name].entries.values():
            if e.oid not in todo.needed and e.oid not in deleted:
                out.deleted += 1
                deleted[e.oid] = GcObject(e.oid, e.share)
    # a group member is copied once, whole, for all its live objects
    copy = sum({(e.pack, e.offset): e.length for e in copied}.values())
    out.written = -(-copy // pack.MAX_PACK)
    new_packs = copy + 16 * out.written  # + each pack's header
    new_indexes = pack.ENTRY_SIZE * len(copied) + 80 * out.written  # + header, trailer
    out.bytes_left += new_packs
    out.new_pack_bytes = new_packs
    out.packs_left += out.written
    old = sum(f.size for n in rewritten for f in found.packs[n].files)
    out.bytes_freed = old - new_packs - new_indexes
    return out
