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
DESIGN D6) travel with the objects, to and from the git remote ``origin``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gitsnap import gitio
from gitsnap.errors import GitError, GitsnapError, ObjectCorrupt, ObjectMissing, RemoteError
from gitsnap.pointer import NOTES_REF, SUFFIX, Pointer, is_pointer, loads
from gitsnap.remote import Remote
from gitsnap.store import ObjectStore

GIT_REMOTE = "origin"
# Where the origin's notes land before they are merged into ours.
NOTES_TRACKING = "refs/gitsnap/notes/origin"
# Notes on different commits always combine. When both sides annotated the
# same commit, the local note is kept and, where both are gitsnap metric
# mappings, the other side's missing keys are added to it (_combine_notes).
NOTES_MERGE_STRATEGY = "ours"


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


class TransferCorrupt(ObjectCorrupt):
    """Some objects were corrupt; ``result`` summarises the whole transfer."""

    def __init__(self, result: TransferResult, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.result = result


class TransferMissing(ObjectMissing):
    """Some objects were missing; ``result`` summarises the whole transfer."""

    def __init__(self, result: TransferResult, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.result = result


# ------------------------------------------------------------------ snapshots


@dataclass(frozen=True)
class SnapshotRef:
    path: str  # repository-relative checkpoint path
    commit: str | None  # None: the work tree's pointer
    pointer: Pointer


def snapshots_at(
    root: Path,
    revs: Sequence[str] = (),
    *,
    all_refs: bool = False,
    worktree_pointers: Callable[[], list[tuple[str, bytes]]] | None = None,
) -> list[SnapshotRef]:
    """The snapshots a command covers (see the module docstring), de-duplicated by (path, id).

    ``worktree_pointers`` returns (checkpoint path, raw pointer bytes) of the
    work tree; a pointer identical to one already read from a commit is not
    parsed again (parsing a 2,000-tensor pointer is the slow part).
    """
    found: list[SnapshotRef] = []
    seen: set[tuple[str, str]] = set()
    parsed: dict[bytes, Pointer] = {}

    def parse(raw: bytes, source: str) -> Pointer:
        ptr = parsed.get(raw)
        if ptr is None:
            ptr = parsed[raw] = loads(raw, source=source)
        return ptr

    def add(rel: str, commit: str | None, ptr: Pointer) -> None:
        if (rel, ptr.id) not in seen:
            seen.add((rel, ptr.id))
            found.append(SnapshotRef(rel, commit, ptr))

    use_worktree = not revs
    commits = [gitio.resolve_commit(root, r) for r in revs]
    if not revs and gitio.has_commits(root):
        commits = [gitio.resolve_commit(root, "HEAD")]
    for commit in commits:
        rels = [p[: -len(SUFFIX)] for p in gitio.ls_files(root, f"*{SUFFIX}", commit)]
        blobs = gitio.cat_blobs(root, [f"{commit}:{rel}{SUFFIX}" for rel in rels])
        for rel in rels:
            raw = blobs[f"{commit}:{rel}{SUFFIX}"]
            if raw is not None and is_pointer(raw):  # not another tool's *.snap
                add(rel, commit, parse(raw, f"{commit[:12]}:{rel}{SUFFIX}"))
    if use_worktree and worktree_pointers is not None:
        for rel, raw in worktree_pointers():
            add(rel, None, parse(raw, rel + SUFFIX))
    if all_refs:
        for rel, commit, ptr in _all_pointer_versions(root):
            add(rel, commit, ptr)
    return found


def _all_pointer_versions(root: Path) -> list[tuple[str, str, Pointer]]:
    """Every pointer blob in any commit reachable from a branch or tag, with a commit that has it.

    One ``git log --raw`` (:func:`gitio.snap_blob_versions`) names them all.
    """
    versions = {
        blob: (path[: -len(SUFFIX)], commit)
        for blob, (path, commit) in gitio.snap_blob_versions(root, ["--branches", "--tags"]).items()
    }
    blobs = gitio.cat_blobs(root, list(versions))
    out = []
    for blob, (rel, c) in versions.items():
        data = blobs.get(blob)
        if data is not None:
            out.append((rel, c, loads(data, source=f"{c[:12]}:{rel}{SUFFIX}")))
    return out


@dataclass
class _Object:
    size: int
    labels: list[str]


def objects_of(refs: Iterable[SnapshotRef]) -> dict[str, _Object]:
    objs: dict[str, _Object] = {}
    for ref in refs:
        for e in ref.pointer.segments():
            label = f"{ref.path}: {e.label}"
            o = objs.get(e.oid)
            if o is None:
                objs[e.oid] = _Object(e.size, [label])
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


def _run(
    direction: str,
    remote: Remote,
    store: ObjectStore,
    todo: dict[str, _Object],
    *,
    progress: Progress,
    jobs: int | None,
) -> tuple[int, int, list[Failure]]:
    """Move ``todo`` (largest first) on a pool; returns (objects, bytes, failures)."""
    move = remote.upload if direction == "push" else remote.download
    lock = threading.Lock()
    done = [0, 0]
    failures: list[Failure] = []
    stop = threading.Event()

    def one(oid: str) -> None:
        if stop.is_set():
            return
        obj = todo[oid]
        try:
            move(store, oid, obj.size, obj.labels[0], progress.advance)
        except (ObjectCorrupt, ObjectMissing) as exc:
            with lock:
                failures.append(
                    Failure(oid, obj.size, _reason(exc, direction), exc.message, list(obj.labels))
                )
            return
        except RemoteError:
            stop.set()  # the remote itself fails: do not hammer it with the rest
            raise
        with lock:
            done[0] += 1
            done[1] += obj.size
        progress.object_done()

    order = sorted(todo, key=lambda o: -todo[o].size)
    workers = max(1, min(jobs or remote.jobs, len(order) or 1))
    first_error: BaseException | None = None
    if workers == 1:
        for oid in order:
            try:
                one(oid)
            except RemoteError as exc:
                first_error = exc
                break
    else:
        with ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"gitsnap-{direction}"
        ) as pool:
            futures: list[Future[None]] = [pool.submit(one, oid) for oid in order]
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
    objs = objects_of(refs)
    on_remote = remote.present(objs)
    todo = {o: v for o, v in objs.items() if o not in on_remote}
    failures = [
        Failure(o, v.size, "missing-local", f"object {o[:12]}… is in neither the local store nor the remote",  # noqa: E501
                list(v.labels))
        for o, v in todo.items() if not store.has(o)
    ]  # fmt: skip
    for f in failures:
        del todo[f.oid]
    progress.start(len(todo), sum(v.size for v in todo.values()))
    try:
        moved_n, moved_b, more = _run("push", remote, store, todo, progress=progress, jobs=jobs)
    finally:
        progress.close()
    failures += more
    note_state = push_notes(root) if notes else "skipped"
    result = _result(
        "push", remote, refs, objs, skipped=on_remote, moved=(moved_n, moved_b),
        failures=failures, started=started, notes=note_state,
    )  # fmt: skip
    _raise_for(result)
    return result


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
    todo = {o: v for o, v in objs.items() if not store.has(o)}
    have = [o for o in objs if o not in todo]
    remote = open_remote() if todo else None
    moved_n = moved_b = 0
    failures: list[Failure] = []
    if remote is not None:
        progress.start(len(todo), sum(v.size for v in todo.values()))
        try:
            moved_n, moved_b, failures = _run(
                "fetch", remote, store, todo, progress=progress, jobs=jobs
            )
        finally:
            progress.close()
    note_state = fetch_notes(root) if notes else "skipped"
    result = _result(
        "fetch", remote, refs, objs, skipped=have, moved=(moved_n, moved_b),
        failures=failures, started=started, notes=note_state,
    )  # fmt: skip
    _raise_for(result)
    return result


def remote_status(remote: Remote, refs: list[SnapshotRef]) -> RemoteStatusResult:
    objs = objects_of(refs)
    on_remote = remote.present(objs)
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
            hint="push the damaged objects again from a machine that has them (git snap push), "
            "then re-run; objects that did arrive are kept",
        )
    elif "corrupt-local" in reasons:
        err = TransferCorrupt(
            result,
            f"{len(f)} object(s) were not pushed; the local copies are corrupt:\n{shown}{more}",
            hint="re-save the checkpoint if you still have it (git snap save PATH), "
            "or fetch a good copy (git snap fetch) and push again",
        )
    elif result.direction == "push":
        err = TransferMissing(
            result,
            f"{len(f)} object(s) cannot be pushed: they are in neither the local store "
            f"nor {where}:\n{shown}{more}",
            hint="fetch them from where they were saved, "
            "or re-save the checkpoint (git snap save PATH)",
        )
    else:
        err = TransferMissing(
            result,
            f"{len(f)} object(s) are missing from {where}:\n{shown}{more}",
            hint="push them from the machine where they were saved (git snap push), then re-run",
        )
    raise err


# ------------------------------------------------------------------ git notes


def _rev(root: Path, ref: str) -> str | None:
    proc = gitio.run(["rev-parse", "--verify", "--quiet", ref], root, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def _has_git_remote(root: Path, name: str) -> bool:
    return gitio.run(["remote", "get-url", name], root, check=False).returncode == 0


def _is_ancestor(root: Path, a: str, b: str) -> bool:
    return gitio.run(["merge-base", "--is-ancestor", a, b], root, check=False).returncode == 0


def push_notes(root: Path, remote: str = GIT_REMOTE) -> str:
    """Push ``refs/notes/gitsnap`` to the git remote; merge theirs first if it moved on."""
    if _rev(root, NOTES_REF) is None:
        return "none"
    if not _has_git_remote(root, remote):
        return "no-origin"
    # --no-verify: a notes ref carries no commits, and a pre-push hook calling
    # back into gitsnap must not recurse.
    args = ["push", "--porcelain", "--no-verify", remote, f"{NOTES_REF}:{NOTES_REF}"]
    proc = gitio.run(args, root, check=False)
    if proc.returncode != 0:
        state = fetch_notes(root, remote)
        if state.startswith("failed"):
            return state
        proc = gitio.run(args, root, check=False)
        if proc.returncode != 0:
            return "failed: " + _git_message(proc.stderr or proc.stdout)
    out = proc.stdout.decode(errors="replace")
    return "up-to-date" if any(line.startswith("=\t") for line in out.splitlines()) else "pushed"


def fetch_notes(root: Path, remote: str = GIT_REMOTE) -> str:  # noqa: PLR0911 - one state each
    """Fetch the git remote's ``refs/notes/gitsnap`` and combine it with ours.

    Fast-forward when one side contains the other; otherwise ``git notes
    merge`` with :data:`NOTES_MERGE_STRATEGY`, then :func:`_combine_notes`
    for commits both sides annotated.
    """
    if not _has_git_remote(root, remote):
        return "no-origin"
    listed = gitio.run(["ls-remote", remote, NOTES_REF], root, check=False)
    if listed.returncode != 0:
        return "failed: " + _git_message(listed.stderr)
    if not listed.stdout.strip():
        return "none"
    proc = gitio.run(
        ["fetch", "--quiet", "--no-tags", remote, f"+{NOTES_REF}:{NOTES_TRACKING}"],
        root,
        check=False,
    )
    if proc.returncode != 0:
        return "failed: " + _git_message(proc.stderr)
    theirs = _rev(root, NOTES_TRACKING)
    ours = _rev(root, NOTES_REF)
    if theirs is None:
        return "none"
    if ours is None:
        gitio.run(["update-ref", NOTES_REF, theirs], root)
        return "fetched"
    if ours == theirs or _is_ancestor(root, theirs, ours):
        return "up-to-date"
    if _is_ancestor(root, ours, theirs):
        gitio.run(["update-ref", NOTES_REF, theirs, ours], root)
        return "fetched"
    ours_tree, theirs_tree = _notes_tree(root, NOTES_REF), _notes_tree(root, NOTES_TRACKING)
    both = sorted(
        c for c in ours_tree.keys() & theirs_tree.keys() if ours_tree[c] != theirs_tree[c]
    )
    merge = ["notes", "--ref", NOTES_REF, "merge", "--quiet", "-s", NOTES_MERGE_STRATEGY]
    try:
        gitio.run([*merge, NOTES_TRACKING], root)
        _combine_notes(root, {c: (ours_tree[c], theirs_tree[c]) for c in both})
    except GitError as exc:
        return f"failed: {exc.message}"
    return "merged"


def _notes_tree(root: Path, ref: str) -> dict[str, str]:
    """annotated commit -> note blob, read from a notes ref's tree (any fan-out)."""
    out = gitio.run(["ls-tree", "-r", "-z", ref], root).stdout.decode()
    notes = {}
    for rec in out.split("\0"):
        if rec:
            meta, _, path = rec.partition("\t")
            notes[path.replace("/", "")] = meta.split()[2]
    return notes


def _combine_notes(root: Path, conflicts: dict[str, tuple[str, str]]) -> None:
    """Both sides annotated these commits: keep every key, the local value winning.

    ``git notes merge -s ours`` already kept the local note whole; where both
    notes are gitsnap metric mappings (:mod:`gitsnap.notes`), the other
    side's keys that the local note lacks are added back. A note that is not
    such a mapping stays as the merge left it.
    """
    if not conflicts:
        return
    from gitsnap import notes

    blobs = gitio.cat_blobs(root, [b for pair in conflicts.values() for b in pair])
    for commit, (ours_blob, theirs_blob) in conflicts.items():
        ours_raw, theirs_raw = blobs.get(ours_blob), blobs.get(theirs_blob)
        if ours_raw is None or theirs_raw is None:
            continue
        try:
            mine, other = notes.parse(ours_raw), notes.parse(theirs_raw)
        except GitsnapError:
            continue
        combined = notes.merge(other, mine.metrics, mine.params)
        combined = notes.Note(combined.metrics, combined.params, {**other.extra, **mine.extra})
        if combined != mine:
            notes.write(root, commit, combined)


def _git_message(raw: bytes) -> str:
    lines = [ln.strip() for ln in raw.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "git failed"
