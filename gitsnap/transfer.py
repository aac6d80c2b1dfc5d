"""push / fetch / remote status: which snapshots, which objects, moved in parallel.

Which snapshots a command covers:

- no revision: the pointers in the work tree and those of ``HEAD`` (after a
  clone or a ``git checkout`` they are the same; after ``git snap save`` the
  work tree also holds the snapshot about to be committed);
- ``REV...``: the pointers at those commits;
- ``--all``: every pointer version in any commit reachable from a branch or a
  tag (read with one ``git log --raw`` over ``*.snap``, so a long history
  costs one git process, not one per commit), plus the work tree's.

Objects are de-duplicated across snapshots; each keeps the labels
(``path: tensor 'name'``) that errors name. Transfers run on a thread pool of
``jobs`` workers, largest object first. A per-object failure (missing,
corrupt) is recorded and the others carry on, so a re-run only has to deal
with what failed; a failure of the remote itself (unreachable, access
refused) stops the transfer at once.

Git notes under ``refs/notes/gitsnap`` (metrics attached after a commit,
DESIGN D6) travel with the objects, to and from the git remote ``origin``
(:func:`gitsnap.notes.push` / :func:`gitsnap.notes.fetch`). Which snapshots
a command covers is :func:`gitsnap.revisions.snapshots`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gitsnap import notes as notes_sync
from gitsnap.errors import (
    RESAVE,
    GitsnapError,
    ObjectCorrupt,
    ObjectMissing,
    PackMemberCorrupt,
    RemoteError,
    TransferCorrupt,
    TransferMissing,
)
from gitsnap.pack import THRESHOLD as PACK_THRESHOLD
from gitsnap.remote import Remote
from gitsnap.revisions import SnapshotRef
from gitsnap.store import ObjectStore

if TYPE_CHECKING:
    from gitsnap.pointer import Entry, Pointer
    from gitsnap.remote.packs import RemotePacks


class Progress(Protocol):
    """What a transfer reports while it runs (the CLI draws it on a terminal)."""

    def start(self, objects: int, nbytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def object_done(self) -> None: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class Failure:
    oid: str
    size: int
    reason: str  # "missing-local", "missing-remote", "corrupt", "corrupt-local", "error"
    message: str
    tensors: list[str]  # "path: tensor 'name'" (or "path: header segment") for each use
    pack: str | None = None  # the remote pack that holds the damaged copy (storage v2)


@dataclass(frozen=True)
class TransferResult:
    """What ``push`` / ``fetch`` did. ``skipped`` objects were already where they had to go."""

    direction: str  # "push" or "fetch"
    remote: str | None  # None: nothing had to move, no remote was opened
    url: str | None
    snapshots: int
    objects: int
    bytes: int
    objects_transferred: int
    bytes_transferred: int
    objects_skipped: int
    bytes_skipped: int
    objects_failed: int
    bytes_failed: int
    failed: list[Failure]
    seconds: float
    # "pushed", "fetched", "merged", "up-to-date", "none", "no-origin", "skipped", "failed: ..."
    notes: str

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class RemoteStatusEntry:
    path: str
    commit: str | None  # None: the work tree's pointer (not committed as such)
    snapshot_id: str
    missing_objects: int
    total_objects: int
    missing_bytes: int


@dataclass(frozen=True)
class RemoteStatusResult:
    remote: str
    url: str
    entries: list[RemoteStatusEntry] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return all(e.missing_objects == 0 for e in self.entries)


@dataclass
class _Object:
    size: int
    labels: list[str]
    dtype: int = 0  # codec dtype code of its first use (chooses the byte planes)


def objects_of(refs: Iterable[SnapshotRef]) -> dict[str, _Object]:
    from gitsnap.codec import dtype_of_name

    objs: dict[str, _Object] = {}
    for ref in refs:
        for e in ref.pointer.segments():
            label = f"{ref.path}: {e.label}"
            o = objs.get(e.oid)
            if o is None:
                objs[e.oid] = _Object(e.size, [label], dtype_of_name(e.dtype))
            elif label not in o.labels:
                o.labels.append(label)
    return objs


# ------------------------------------------------------------------ transfers


class _NoProgress:
    def start(self, objects: int, nbytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def object_done(self) -> None:
        pass

    def close(self) -> None:
        pass


def _reason(exc: BaseException, direction: str) -> str:
    if isinstance(exc, ObjectCorrupt):
        return "corrupt-local" if direction == "push" else "corrupt"
    if isinstance(exc, ObjectMissing):
        return "missing-local" if direction == "push" else "missing-remote"
    return "error"


Unit = tuple[list[str], Callable[[], dict[str, GitsnapError | None]]]
"""Objects moved together (one loose object, one pack run) and the call that moves them;
it returns each object's outcome (None: moved)."""


def _run(
    direction: str,
    remote: Remote,
    todo: dict[str, _Object],
    units: list[Unit],
    *,
    progress: Progress,
    jobs: int | None,
) -> tuple[int, int, list[Failure]]:
    """Run ``units`` (largest first) on a pool; returns (objects, bytes, failures)."""
    lock = threading.Lock()
    done = [0, 0]
    failures: list[Failure] = []
    stop = threading.Event()

    def one(unit: Unit) -> None:
        if stop.is_set():
            return
        oids, call = unit
        try:
            outcome = call()
        except (ObjectCorrupt, ObjectMissing) as exc:
            outcome = dict.fromkeys(oids, exc)
        except RemoteError:
            stop.set()  # the remote itself fails: do not hammer it with the rest
            raise
        for oid in oids:
            obj = todo[oid]
            why = outcome.get(oid)
            if why is None:
                with lock:
                    done[0] += 1
                    done[1] += obj.size
                progress.object_done()
            elif isinstance(why, (ObjectCorrupt, ObjectMissing)):
                with lock:
                    failures.append(
                        Failure(
                            oid,
                            obj.size,
                            _reason(why, direction),
                            why.message,
                            list(obj.labels),
                            why.pack if isinstance(why, PackMemberCorrupt) else None,
                        )
                    )
            else:
                raise why  # the pointer is wrong (PointerError): as for a loose object

    order = sorted(units, key=lambda u: -sum(todo[o].size for o in u[0]))
    workers = max(1, min(jobs or remote.jobs, len(order) or 1))
    first_error: BaseException | None = None
    if workers == 1:
        for unit in order:
            try:
                one(unit)
            except RemoteError as exc:
                first_error = exc
                break
    else:
        with ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"gitsnap-{direction}"
        ) as pool:
            futures: list[Future[None]] = [pool.submit(one, unit) for unit in order]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # ^C: finish the objects in flight, start no other
                stop.set()
                for fut in futures:
                    fut.cancel()
                raise
            for fut in futures:
                if fut.done() and fut.exception() is not None:
                    first_error = fut.exception()
                    break
            if first_error is not None:
                for fut in futures:
                    fut.cancel()
    if first_error is not None:
        raise first_error
    return done[0], done[1], failures


def _loose(  # noqa: PLR0917 - the transfer's parts, passed on
    direction: str, remote: Remote, store: ObjectStore, todo: dict[str, _Object],
    oids: Iterable[str], progress: Progress,
) -> list[Unit]:  # fmt: skip
    """One unit per object moved as a loose file (v1's layout)."""
    move = remote.upload if direction == "push" else remote.download

    def unit(oid: str) -> Unit:
        obj = todo[oid]

        def call() -> dict[str, GitsnapError | None]:
            move(store, oid, obj.size, obj.labels[0], progress.advance)
            return {oid: None}

        return [oid], call

    return [unit(o) for o in oids]


def delta_bases(  # noqa: PLR0917 - the push's parts, passed on
    root: Path,
    store: ObjectStore,
    remote: Remote,
    refs: list[SnapshotRef],
    todo: dict[str, _Object],
    found: RemotePacks,
) -> dict[str, tuple[str, int]]:
    """For each object to pack (every object, up to ``large.ENCODE_LIMIT``): ``(base id, base
    depth)`` -- the tensor of the same
    name, dtype and shape in its snapshot's parent (the pointer's ``parent``; for a merged
    snapshot also the merge base, then the side merged in), when the
    remote holds it (so a reader can always find it) and the local store too (its bytes
    are XORed in). ``codec.encode`` keeps the delta only where it is the smallest form,
    and ignores a base already ``MAX_DEPTH`` deep."""
    from gitsnap import gitio, revisions
    from gitsnap.remote.large import ENCODE_LIMIT

    small = {o for o, v in todo.items() if v.size <= ENCODE_LIMIT}  # every object packed
    sides = {
        r.pointer.id: _base_snapshots(r.pointer)
        for r in refs
        if any(e.oid in small for e in r.pointer.tensors)
    }
    want = {s for ids in sides.values() for s in ids}
    if not small or not want:
        return {}
    parents = {r.pointer.id: r.pointer for r in refs if r.pointer.id in want}
    missing = want - parents.keys()
    if missing and gitio.has_commits(root):
        paths = {r.path for r in refs}
        parser = revisions.Parser()
        for v in revisions.versions(root, ["--branches", "--tags", "HEAD"]):
            if v.path not in paths:
                continue
            try:
                ptr = parser.parse(v.raw, v.path)
            except GitsnapError:
                continue  # a damaged old pointer only costs a delta
            if ptr.id in missing:
                parents[ptr.id] = ptr
                missing.discard(ptr.id)
                if not missing:
                    break
    candidates: dict[str, list[str]] = {}  # object -> bases, the parent's first
    for r in refs:
        for side in sides.get(r.pointer.id, ()):
            parent = parents.get(side)
            if parent is None:
                continue
            named: dict[tuple[str | None, str | None], Entry] = {
                (e.file, e.name): e for e in parent.tensors if e.name is not None and not e.view
            }
            for e in r.pointer.tensors:
                b = named.get((e.file, e.name))
                if (
                    e.oid in small
                    and not e.view
                    and b is not None
                    and b.oid != e.oid
                    and (b.dtype, b.shape, b.size) == (e.dtype, e.shape, e.size)
                    and store.has(b.oid)
                ):
                    bases = candidates.setdefault(e.oid, [])
                    if b.oid not in bases:
                        bases.append(b.oid)
    wanted = {b for bases in candidates.values() for b in bases}
    there = (wanted & found.oids()) | remote.present(wanted - found.oids())
    chosen = {o: next((b for b in bases if b in there), None) for o, bases in candidates.items()}
    return {
        o: (b, found.where[b].depth if found.has(b) else 0)
        for o, b in chosen.items()
        if b is not None
    }


def _base_snapshots(ptr: Pointer) -> list[str]:
    """The snapshots a tensor of ``ptr`` may be stored as a delta against, best first: its
    parent, then for a merged snapshot the merge base and the side merged in (their tensors
    of the same name are what a merged tensor was derived from)."""
    from gitsnap.merge import MERGE_KEY

    out = [ptr.parent] if ptr.parent else []
    record = ptr.extra.get(MERGE_KEY)
    if isinstance(record, dict):
        theirs = record.get("theirs")
        for side in (record.get("base"), theirs.get("id") if isinstance(theirs, dict) else None):
            if isinstance(side, str) and side and side not in out and side != ptr.id:
                out.append(side)
    return out


def _push_units(
    remote: Remote,
    store: ObjectStore,
    todo: dict[str, _Object],
    progress: Progress,
    bases: dict[str, tuple[str, int]],
) -> list[Unit]:
    """Small objects into packs (if there are enough of them), large ones (up to
    ``large.ENCODE_LIMIT``) into packs of their own, the rest loose."""
    from gitsnap.pack import THRESHOLD
    from gitsnap.remote import large, packs

    few = sum(1 for v in todo.values() if v.size < THRESHOLD) < packs.UNPACK_LIMIT
    big, taken = large.push_units(remote, store, todo, progress.advance, bases, with_small=few)
    todo = {o: v for o, v in todo.items() if o not in taken}
    small = [o for o, v in todo.items() if v.size < THRESHOLD]
    if len(small) < packs.UNPACK_LIMIT:
        return big + _loose("push", remote, store, todo, todo, progress)
    outgoing = [
        packs.Outgoing(o, todo[o].size, todo[o].dtype, todo[o].labels[0], *bases.get(o, (None, 0)))
        for o in small
    ]
    units: list[Unit] = [
        (
            [o.oid for o in group],
            partial(packs.push_group, remote, store, group, progress.advance),
        )
        for group in packs.groups(outgoing)
    ]
    packed = set(small)
    return (
        big
        + units
        + _loose("push", remote, store, todo, [o for o in todo if o not in packed], progress)
    )


def _fetch_units(
    remote: Remote,
    store: ObjectStore,
    todo: dict[str, _Object],
    found: RemotePacks,
    progress: Progress,
) -> list[Unit]:
    """Packed objects by runs of their packs (one ranged read each), the rest loose."""
    from gitsnap.remote import packs

    packed = [o for o in todo if found.has(o)]
    wanted = {o: packs.Wanted(todo[o].size, todo[o].labels[0]) for o in packed}
    units: list[Unit] = []
    for name, members in packs.runs(found, packed):
        units.append(
            (
                [e.oid for e in members],
                partial(
                    packs.fetch_run, remote, store, name, members, wanted, on_bytes=progress.advance
                ),
            )
        )
    rest = [o for o in todo if not found.has(o)]
    if len(rest) > _ASK_ALONE:
        # Listed, not asked for one by one: a snapshot nobody pushed would cost a GET per
        # tensor (20,000 requests for a mixture of experts) only to learn each is missing.
        there = remote.present(rest)
        units += [
            ([o], partial(_absent, remote, o, todo[o].labels[0])) for o in rest if o not in there
        ]
        rest = [o for o in rest if o in there]
    return units + _loose("fetch", remote, store, todo, rest, progress)


# Loose objects a fetch asks for one by one; more than this, it lists the remote first.
_ASK_ALONE = 16


def _absent(remote: Remote, oid: str, label: str) -> dict[str, GitsnapError | None]:
    raise remote.missing(oid, label)


def _result(
    direction: str,
    remote: Remote | None,
    refs: list[SnapshotRef],
    objs: dict[str, _Object],
    *,
    skipped: Iterable[str],
    moved: tuple[int, int],
    failures: list[Failure],
    started: float,
    notes: str,
) -> TransferResult:
    skipped = list(skipped)
    return TransferResult(
        direction=direction,
        remote=remote.info.name if remote else None,
        url=remote.info.url if remote else None,
        snapshots=len(refs),
        objects=len(objs),
        bytes=sum(o.size for o in objs.values()),
        objects_transferred=moved[0],
        bytes_transferred=moved[1],
        objects_skipped=len(skipped),
        bytes_skipped=sum(objs[o].size for o in skipped),
        objects_failed=len(failures),
        bytes_failed=sum(f.size for f in failures),
        failed=sorted(failures, key=lambda f: f.tensors),
        seconds=round(time.perf_counter() - started, 3),
        notes=notes,
    )


def push(
    root: Path,
    store: ObjectStore,
    remote: Remote,
    refs: list[SnapshotRef],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
    notes: bool = True,
) -> TransferResult:
    """Upload the objects of ``refs`` that the remote lacks, then the notes. Raises on failures."""
    started = time.perf_counter()
    progress = progress or _NoProgress()
    from gitsnap.remote import packs

    objs = objects_of(refs)
    found = packs.load(remote, store, jobs)
    on_remote = (set(objs) & found.oids()) | remote.present(set(objs) - found.oids())
    todo = {o: v for o, v in objs.items() if o not in on_remote}
    held = store.held(todo)
    failures = [
        Failure(o, v.size, "missing-local", f"object {o[:12]}… is in neither the local store nor the remote",  # noqa: E501
                list(v.labels))
        for o, v in todo.items() if o not in held
    ]  # fmt: skip
    for f in failures:
        del todo[f.oid]
    progress.start(len(todo), sum(v.size for v in todo.values()))
    try:
        bases = delta_bases(root, store, remote, refs, todo, found)
        units = _push_units(remote, store, todo, progress, bases)
        moved_n, moved_b, more = _run("push", remote, todo, units, progress=progress, jobs=jobs)
    finally:
        progress.close()
    failures += more
    if todo and (bases or on_remote):  # it sent objects that rely on what was there
        failures += _recheck(remote, store, objs, todo, {f.oid for f in failures}, jobs)
    note_state = notes_sync.push(root) if notes else "skipped"
    result = _result(
        "push", remote, refs, objs, skipped=on_remote, moved=(moved_n, moved_b),
        failures=failures, started=started, notes=note_state,
    )  # fmt: skip
    _raise_for(result)
    return result


def _recheck(  # noqa: PLR0917 - the push's parts
    remote: Remote,
    store: ObjectStore,
    objs: dict[str, _Object],
    todo: dict[str, _Object],
    failed: set[str],
    jobs: int | None,
) -> list[Failure]:
    """After a push that relied on what the remote held (objects it skipped, delta bases):
    a ``gc --remote`` elsewhere may have dropped some of them meanwhile (old, and
    unreferenced in that clone), leaving the pushed snapshots unreadable. List the remote
    again: objects now missing are sent again; the packs this push wrote that hold deltas
    whose base is gone are sent again without deltas, then deleted (index first). Returns
    the failures of that second push."""
    from gitsnap.remote import packs

    found = packs.load(remote, store, jobs)
    rest = {o for o in objs if o not in failed and not found.has(o)}
    deltas = {
        o: e.base
        for o in todo
        if o not in failed and (e := found.where.get(o)) is not None and e.base is not None
    }
    asked = rest | {b for b in deltas.values() if not found.has(b)}
    present = remote.present(asked) if asked else set()
    missing = rest - present
    lost = {found.where[o].pack for o, b in deltas.items() if not found.has(b) and b not in present}
    # Only packs all of whose members this push sent: another's pack is not ours to drop.
    broken = [
        found.packs[name]
        for name in sorted(lost)
        if all(o in todo for o in found.packs[name].entries)
    ]
    again = {o: objs[o] for o in missing} | {o: todo[o] for rp in broken for o in rp.entries}
    if not again:
        return []
    units = _push_units(remote, store, again, _NoProgress(), {})
    _, _, failures = _run("push", remote, again, units, progress=_NoProgress(), jobs=jobs)
    if failures:
        return failures
    for rp in broken:
        packfile, idx = rp.files
        remote.delete([idx.key])  # the index first: readers stop using the pack
        remote.delete([packfile.key])
    return []


def fetch(
    root: Path,
    store: ObjectStore,
    open_remote: Callable[[], Remote],
    refs: list[SnapshotRef],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
    notes: bool = True,
) -> TransferResult:
    """Download the objects of ``refs`` the local store lacks (verified), then the notes.

    The remote is opened only when something is missing locally, so a fetch
    with everything present needs no remote at all.
    """
    started = time.perf_counter()
    progress = progress or _NoProgress()
    objs = objects_of(refs)
    held = store.held(objs)
    todo = {o: v for o, v in objs.items() if o not in held}
    have = [o for o in objs if o not in todo]
    remote = open_remote() if todo else None
    moved_n = moved_b = 0
    failures: list[Failure] = []
    if remote is not None:
        from gitsnap.remote import packs

        found = packs.load(remote, store, jobs)
        extra = _bases_to_fetch(store, todo, found)
        every = {**todo, **extra}
        progress.start(len(every), sum(v.size for v in every.values()))
        try:
            # Small objects go into local packs (each verified before it is added, so what
            # came is kept whatever happens next). Delta bases first: each level's bases
            # are published in the local store before the level that needs them.
            small = sum(1 for v in every.values() if v.size < PACK_THRESHOLD)
            with store.batch(small, keep_on_error=True):
                for level in _levels(every, found):
                    units = _fetch_units(
                        remote, store, {o: every[o] for o in level}, found, progress
                    )
                    n, b, more = _run("fetch", remote, every, units, progress=progress, jobs=jobs)
                    moved_n, moved_b = moved_n + n, moved_b + b
                    failures += more
                    store.publish()
        finally:
            progress.close()
        # The bases fetched only to decode deltas are not the snapshots' objects: not counted.
        failed = {f.oid for f in failures}
        moved_n -= sum(1 for o in extra if o not in failed)
        moved_b -= sum(v.size for o, v in extra.items() if o not in failed)
        if found.damaged and any(f.reason == "missing-remote" for f in failures):
            raise found.damaged[0]  # what is missing may be in the damaged pack
    note_state = notes_sync.fetch(root) if notes else "skipped"
    result = _result(
        "fetch", remote, refs, objs, skipped=have, moved=(moved_n, moved_b),
        failures=failures, started=started, notes=note_state,
    )  # fmt: skip
    _raise_for(result)
    return result


def _bases_to_fetch(
    store: ObjectStore, todo: dict[str, _Object], found: RemotePacks
) -> dict[str, _Object]:
    """Delta bases the packed objects of ``todo`` need that neither it nor the store holds."""
    from gitsnap.codec import MAX_DEPTH

    extra: dict[str, _Object] = {}
    bases = {e.base for o in todo if (e := found.where.get(o)) is not None and e.base}
    held = store.held(bases - todo.keys()) if bases else set()  # one look, not a stat each
    for oid in list(todo):
        cur = oid
        for _ in range(MAX_DEPTH + 1):
            e = found.where.get(cur)
            if e is None or e.base is None:
                break
            b = e.base
            if b in todo or b in extra or (b in held if b in bases else store.has(b)):
                break
            extra[b] = _Object(e.raw_size, [f"delta base of {todo[oid].labels[0]}"])
            cur = b
    return extra


def _levels(every: dict[str, _Object], found: RemotePacks) -> list[list[str]]:
    """``every`` in rounds: an object comes one round after the delta base it needs from
    ``every`` (a base outside it is in the local store already)."""
    from gitsnap.codec import MAX_DEPTH

    level: dict[str, int] = {}
    for oid in every:
        chain = [oid]
        while len(chain) <= MAX_DEPTH + 1:
            e = found.where.get(chain[-1])
            if e is None or e.base is None or e.base not in every or e.base in level:
                break
            chain.append(e.base)
        top = chain[-1]
        e = found.where.get(top)
        start = level.get(top)
        if start is None:
            base = e.base if e is not None else None
            start = level[base] + 1 if base is not None and base in level else 0
        for i, o in enumerate(reversed(chain)):
            level.setdefault(o, start + i)
    rounds: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for oid in every:
        rounds[level[oid]].append(oid)
    return rounds


def on_remote_in_any_form(remote: Remote, store: ObjectStore, oids: Iterable[str]) -> set[str]:
    """The subset of ``oids`` the remote holds, loose or packed (its indexes read).

    A pack whose index is damaged counts for nothing: a push sends its objects again.
    """
    from gitsnap.remote import packs

    wanted = set(oids)
    found = packs.load(remote, store)
    return (wanted & found.oids()) | remote.present(wanted - found.oids())


def remote_status(
    remote: Remote, refs: list[SnapshotRef], store: ObjectStore
) -> RemoteStatusResult:
    objs = objects_of(refs)
    on_remote = on_remote_in_any_form(remote, store, objs)
    entries = []
    for ref in refs:
        oids = ref.pointer.oids()
        missing = [o for o in oids if o not in on_remote]
        entries.append(
            RemoteStatusEntry(
                path=ref.path,
                commit=ref.commit,
                snapshot_id=ref.pointer.id,
                missing_objects=len(missing),
                total_objects=len(oids),
                missing_bytes=sum(objs[o].size for o in missing),
            )
        )
    return RemoteStatusResult(remote.info.name, remote.info.url, entries)


def _raise_for(result: TransferResult) -> None:
    if not result.failed:
        return
    f = result.failed
    shown = "\n".join(
        f"  {x.oid[:12]}… {', '.join(x.tensors[:2])}"
        f"{' …' if len(x.tensors) > 2 else ''}: {x.reason}"
        f"{f' (in pack {x.pack[:12]}…)' if x.pack else ''}"
        for x in f[:10]
    )
    more = f"\n  … and {len(f) - 10} more" if len(f) > 10 else ""
    reasons = {x.reason for x in f}
    where = f"remote '{result.remote}'" if result.remote else "the remote"
    err: GitsnapError
    if "corrupt" in reasons:
        err = TransferCorrupt(
            result,
            f"{len(f)} object(s) could not be fetched; corrupt objects on {where} "
            f"were not stored:\n{shown}{more}",
            hint=_replace_packs_hint({x.pack for x in f if x.pack})
            or "push the damaged objects again from a machine that has them (git snap push), "
            "then re-run; objects that did arrive are kept",
        )
    elif "corrupt-local" in reasons:
        err = TransferCorrupt(
            result,
            f"{len(f)} object(s) were not pushed; the local copies are corrupt:\n{shown}{more}",
            hint=f"fetch a good copy (git snap fetch) and push again, or {RESAVE}",
        )
    elif result.direction == "push":
        err = TransferMissing(
            result,
            f"{len(f)} object(s) cannot be pushed: they are in neither the local store "
            f"nor {where}:\n{shown}{more}",
            hint=f"fetch them from where they were saved, or {RESAVE}",
        )
    else:
        err = TransferMissing(
            result,
            f"{len(f)} object(s) are missing from {where}:\n{shown}{more}",
            hint="push them from the machine where they were saved (git snap push), then re-run",
        )
    raise err


def _replace_packs_hint(names: set[str | None]) -> str:
    if not names:
        return ""
    from gitsnap.remote.packs import replace_pack_hint

    return replace_pack_hint(n for n in names if n)
