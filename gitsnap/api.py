"""The library facade: every ``git snap`` command is one function here.

Functions return frozen dataclasses and never print or exit; the CLI renders
them. Paths are given as a user would type them (relative to ``cwd``).

Example::

    from gitsnap import api
    api.init()
    [res] = api.save(["model.safetensors"], message="baseline", metrics={"acc": 0.91})
    print(res.snapshot_id, res.bytes_written)
    api.checkout("HEAD~1")
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitsnap import __version__, gitio
from gitsnap.errors import DirtyCheckpoint, GitsnapError, PathError, PointerError, UsageError
from gitsnap.metrics import Scalar, parse_pairs, read_file
from gitsnap.pointer import SUFFIX, Entry, Pointer, dumps, loads
from gitsnap.workspace import Workspace

if TYPE_CHECKING:  # ---- remotes
    from gitsnap.remote import Remote
    from gitsnap.transfer import Progress, RemoteStatusResult, SnapshotRef, TransferResult

# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class InitResult:
    root: str
    dvc_initialized: bool
    cache_dir: str
    remote: str | None


@dataclass(frozen=True)
class SaveResult:
    path: str
    pointer: str
    snapshot_id: str
    parent: str | None
    changed: bool  # False: the checkpoint and record were already saved as-is
    tensors: int
    size: int
    objects_written: int
    bytes_written: int
    seconds: float


@dataclass(frozen=True)
class StatusEntry:
    path: str
    state: str  # "clean", "modified", "absent"
    missing_objects: int
    total_objects: int


@dataclass(frozen=True)
class StatusResult:
    entries: list[StatusEntry]

    @property
    def clean(self) -> bool:
        return all(e.state == "clean" and e.missing_objects == 0 for e in self.entries)


@dataclass(frozen=True)
class CheckoutEntry:
    path: str
    target: str
    action: str  # "restored", "unchanged"
    snapshot_id: str
    size: int


@dataclass(frozen=True)
class LogEntry:
    path: str
    commit: str | None  # None: the uncommitted pointer in the work tree
    commit_time: int | None
    subject: str
    snapshot_id: str
    parent: str | None
    created: str
    message: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    tensors: int
    size: int


@dataclass(frozen=True)
class ShowResult:
    path: str
    rev: str | None
    commit: str | None
    pointer: Pointer = field(repr=False)


# ------------------------------------------------------------------ init


def init(cwd: Path | None = None, remote: str | None = None) -> InitResult:
    """Set up gitsnap in a git repository: ``dvc init`` if needed, optional default remote."""
    ws = Workspace.discover(cwd)
    created = False
    if ws.dvc_dir is None:
        _dvc(["init", "-q"], ws.root)
        created = True
        ws = Workspace.discover(cwd)
    if remote:
        _dvc(["remote", "add", "-d", "-f", "storage", remote], ws.root)
    ws.store.root.mkdir(parents=True, exist_ok=True)
    return InitResult(str(ws.root), created, str(ws.cache_dir), remote)


def _dvc(args: list[str], cwd: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise GitsnapError(
            f"dvc {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}",
            hint="run the dvc command by hand to see the full error",
        )


# ------------------------------------------------------------------ save


def _tool_versions() -> dict[str, Any]:
    return {"gitsnap": __version__, "python": platform.python_version(), "torch": _torch_version()}


def _torch_version() -> str | None:
    """torch's installed version without importing it or scanning every dist-info (~0.1 s)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(torch.__version__)
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    site = Path(next(iter(spec.submodule_search_locations))).parent
    for dist in site.glob("torch-*.dist-info"):
        return dist.name[len("torch-") : -len(".dist-info")]
    return None


def _now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _collect(file: str | os.PathLike[str] | None, pairs: Sequence[str] | Mapping[str, Scalar] | None, cwd: Path) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    if file is not None:
        out.update(read_file(cwd / file))
    if isinstance(pairs, Mapping):
        out.update(pairs)
    elif pairs:
        out.update(parse_pairs(pairs))
    return dict(sorted(out.items()))


def save(
    paths: Sequence[str | os.PathLike[str]],
    *,
    message: str | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | Mapping[str, Scalar] | None = None,
    params_file: str | os.PathLike[str] | None = None,
    params: Sequence[str] | Mapping[str, Scalar] | None = None,
    cwd: Path | None = None,
    workers: int | None = None,
) -> list[SaveResult]:
    """Record a snapshot of each checkpoint: objects into the store, a ``.snap`` pointer beside it."""
    from gitsnap import snapshot

    if not paths:
        raise UsageError("nothing to save", hint="git snap save PATH")
    ws = Workspace.discover(cwd)
    store = ws.store
    cache = ws.stat_cache
    new_metrics = _collect(metrics_file, metrics, ws.cwd)
    new_params = _collect(params_file, params, ws.cwd)
    results = []
    for user_path in paths:
        started = time.perf_counter()
        rel = ws.relpath(user_path)
        abs_path = ws.root / rel
        if not abs_path.exists():
            raise PathError(f"{user_path}: no such file", hint="check the path; git snap status lists saved checkpoints")
        if abs_path.is_dir():
            raise PathError(f"{user_path}: is a directory", hint="give a checkpoint file (folders of shards are not supported yet)")
        if gitio.run(["ls-files", "--error-unmatch", "--", rel], ws.root, check=False).returncode == 0:
            raise PathError(
                f"{user_path}: is tracked by git itself; its weights would be stored twice",
                hint=f"stop tracking it first: git rm --cached {rel}",
            )
        previous = ws.read_pointer(rel)
        started_ns = time.time_ns()
        ing = snapshot.ingest(abs_path, store, previous=previous, workers=workers)
        if previous is not None and previous.id == ing.id:
            message_ = previous.message if message is None else message
            metrics_ = new_metrics or previous.metrics
            params_ = new_params or previous.params
            parent = previous.parent
            unchanged = (message_, metrics_, params_) == (previous.message, previous.metrics, previous.params)
        else:
            message_, metrics_, params_ = message or "", new_metrics, new_params
            parent = previous.id if previous is not None else None
            unchanged = False
        if unchanged and previous is not None:
            ptr = previous
        else:
            ptr = Pointer(
                id=ing.id,
                parent=parent,
                path=rel,
                format=ing.layout.format,
                size=ing.layout.size,
                tensors=ing.tensors,
                blobs=ing.blobs,
                created=_now(),
                message=message_,
                metrics=dict(metrics_),
                params=dict(params_),
                tool=_tool_versions(),
                metadata=dict(ing.layout.metadata),
                extra=dict(previous.extra) if previous is not None else {},
            )
            _write_atomic(ws.root / (rel + SUFFIX), dumps(ptr).encode())
        _ensure_ignored(ws, rel)
        cache.put(rel, abs_path.stat(), ing.id, started_ns)
        results.append(
            SaveResult(
                path=ws.display(rel),
                pointer=ws.display(rel + SUFFIX),
                snapshot_id=ptr.id,
                parent=ptr.parent,
                changed=not unchanged,
                tensors=len(ptr.tensors),
                size=ptr.size,
                objects_written=ing.objects_written,
                bytes_written=ing.bytes_written,
                seconds=time.perf_counter() - started,
            )
        )
    cache.save()
    return results


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _ensure_ignored(ws: Workspace, rel: str) -> None:
    """Keep the checkpoint itself out of git: ``/path`` in the top-level .gitignore."""
    if gitio.check_ignore(ws.root, rel):
        return
    gi = ws.root / ".gitignore"
    text = gi.read_text(encoding="utf-8") if gi.exists() else ""
    line = "/" + rel.replace(" ", "\\ ")
    if line in text.splitlines():
        return
    if text and not text.endswith("\n"):
        text += "\n"
    _write_atomic(gi, (text + line + "\n").encode())


# ------------------------------------------------------------------ status


def _current_id(ws: Workspace, rel: str, cache: Any) -> str | None:
    """Snapshot id of the working checkpoint (stat cache first), None if absent."""
    path = ws.root / rel
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    cached: str | None = cache.get(rel, st)
    if cached is not None:
        return cached
    from gitsnap import snapshot  # only when the cache misses: keeps a clean status light

    started_ns = time.time_ns()
    ing = snapshot.ingest(path, None, want_stats=False)
    cache.put(rel, st, ing.id, started_ns)
    return ing.id


def _select(all_paths: Sequence[str], wanted: Sequence[str]) -> list[str]:
    if not wanted:
        return list(all_paths)
    chosen = []
    for rel in all_paths:
        if any(w in (".", rel) or rel.startswith(w.rstrip("/") + "/") for w in wanted):
            chosen.append(rel)
    return chosen


def status(paths: Sequence[str | os.PathLike[str]] = (), cwd: Path | None = None) -> StatusResult:
    """Compare each working checkpoint with its pointer, and check the store has its objects."""
    ws = Workspace.discover(cwd)
    store = ws.store
    cache = ws.stat_cache
    wanted = [ws.relpath(p) for p in paths]
    entries = []
    for rel in _select(ws.pointer_paths(), wanted):
        ptr = ws.read_pointer(rel)
        if ptr is None:
            continue  # pointer deleted in the work tree
        current = _current_id(ws, rel, cache)
        state = "absent" if current is None else ("clean" if current == ptr.id else "modified")
        oids = ptr.oids()
        missing = sum(1 for oid in oids if not store.has(oid))
        entries.append(StatusEntry(ws.display(rel), state, missing, len(oids)))
    if wanted and not entries:
        raise PathError(
            f"no saved checkpoint matches {', '.join(str(p) for p in paths)}",
            hint="git snap save PATH records one",
        )
    cache.save()
    return StatusResult(entries)


# ------------------------------------------------------------------ checkout


def _pointers_at(ws: Workspace, rev: str | None, wanted: Sequence[str]) -> list[tuple[str, Pointer, bytes | None]]:
    """(path, pointer, raw pointer bytes when read from a commit) for the selected checkpoints."""
    out = []
    if rev is None:
        for rel in _select(ws.pointer_paths(), wanted):
            ptr = ws.read_pointer(rel)
            if ptr is not None:
                out.append((rel, ptr, None))
    else:
        commit = gitio.resolve_commit(ws.root, rev)
        rels = _select(ws.pointer_paths(commit), wanted)
        blobs = gitio.cat_blobs(ws.root, [f"{commit}:{rel}{SUFFIX}" for rel in rels])
        for rel in rels:
            raw = blobs[f"{commit}:{rel}{SUFFIX}"]
            if raw is not None:
                out.append((rel, loads(raw, source=f"{rev}:{rel}{SUFFIX}"), raw))
    if wanted and not out:
        where = f"at {rev}" if rev else "in the work tree"
        raise PathError(
            f"no snapshot of {', '.join(wanted)} {where}",
            hint="git snap log PATH lists the commits that have one",
        )
    return out


def _unsaved_changes(ws: Workspace, rel: str, path: Path, cache: Any) -> bool:
    """True when overwriting ``path`` would lose bytes the store does not hold."""
    from gitsnap import snapshot

    current = _current_id(ws, rel, cache)
    if current is None:
        return False
    working = ws.read_pointer(rel) if path == ws.root / rel else None
    if working is not None and working.id == current and not snapshot.missing_objects(working, ws.store):
        return False
    ing = snapshot.ingest(path, None, want_stats=False)
    return any(not ws.store.has(e.oid) for e in [*ing.tensors, *ing.blobs])


def checkout(
    rev: str | None = None,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    to: str | os.PathLike[str] | None = None,
    force: bool = False,
    cwd: Path | None = None,
    workers: int | None = None,
) -> list[CheckoutEntry]:
    """Restore checkpoints byte-exactly from the store.

    Without ``rev``: from the pointers in the work tree. With ``rev``: from the
    pointers at that commit, which are also written into the work tree (as
    ``git checkout REV -- PATH.snap`` would). With ``to``: write into that
    folder instead and leave the work tree alone.
    """
    from gitsnap import snapshot

    ws = Workspace.discover(cwd)
    store = ws.store
    cache = ws.stat_cache
    wanted = [ws.relpath(p) for p in paths]
    selected = _pointers_at(ws, rev, wanted)
    export_dir = (ws.cwd / to) if to is not None else None
    results = []
    for rel, ptr, raw in selected:
        if export_dir is not None:
            base = next((w for w in wanted if rel.startswith(w.rstrip("/") + "/")), None)
            sub = rel[len(base.rstrip("/")) + 1 :] if base and base != "." else (
                Path(rel).name if rel in wanted else rel
            )
            dest = export_dir / sub
        else:
            dest = ws.root / rel
        shown = ws.display(rel) if export_dir is None else str(dest)
        in_workspace = export_dir is None
        current = _current_id(ws, rel, cache) if in_workspace else None
        if in_workspace and current == ptr.id:
            action = "unchanged"
        else:
            if dest.exists() and not force:
                dirty = (
                    _unsaved_changes(ws, rel, dest, cache)
                    if in_workspace
                    else snapshot.ingest(dest, None, want_stats=False).id != ptr.id
                )
                if dirty:
                    raise DirtyCheckpoint(
                        f"{shown} has changes that are not saved; refusing to overwrite it"
                        if in_workspace
                        else f"{shown} exists and differs from the snapshot; refusing to overwrite it",
                        hint=f"git snap save {ws.display(rel)} to keep them, or pass --force to discard them"
                        if in_workspace
                        else "choose an empty folder, or pass --force to overwrite",
                    )
            started_ns = time.time_ns()
            if snapshot.missing_objects(ptr, store):
                _fetch_for_checkout(ws, rel, ptr, workers)  # ---- remotes: "fetching if needed"
            snapshot.restore(ptr, store, dest, workers=workers)
            if in_workspace:
                cache.put(rel, dest.stat(), ptr.id, started_ns)
            action = "restored"
        if in_workspace and raw is not None:
            pointer_file = ws.root / (rel + SUFFIX)
            if not pointer_file.exists() or pointer_file.read_bytes() != raw:
                _write_atomic(pointer_file, raw)
            _ensure_ignored(ws, rel)
        results.append(CheckoutEntry(ws.display(rel), shown, action, ptr.id, ptr.size))
    cache.save()
    return results


# ------------------------------------------------------------------ log / show


def _log_entry(rel: str, ptr: Pointer, commit: str | None, ctime: int | None, subject: str) -> LogEntry:
    return LogEntry(
        path=rel,
        commit=commit,
        commit_time=ctime,
        subject=subject,
        snapshot_id=ptr.id,
        parent=ptr.parent,
        created=ptr.created,
        message=ptr.message,
        metrics=dict(ptr.metrics),
        params=dict(ptr.params),
        tensors=len(ptr.tensors),
        size=ptr.size,
    )


def log(path: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> list[LogEntry]:
    """Snapshot history, newest first: the uncommitted pointer (if any) then each commit that changed it."""
    ws = Workspace.discover(cwd)
    if path is not None:
        rels = [ws.relpath(path)]
    else:
        rels = sorted(set(ws.pointer_paths()) | set(ws.pointer_paths("HEAD") if gitio.has_commits(ws.root) else []))
    entries: list[LogEntry] = []
    for rel in rels:
        history = gitio.log(ws.root, rel + SUFFIX)
        blobs = gitio.cat_blobs(ws.root, [f"{h.commit}:{rel}{SUFFIX}" for h in history])
        try:
            working_raw: bytes | None = (ws.root / (rel + SUFFIX)).read_bytes()
        except FileNotFoundError:
            working_raw = None
        head_raw = blobs.get(f"{history[0].commit}:{rel}{SUFFIX}") if history else None
        found: list[LogEntry] = []
        if working_raw is not None and working_raw != head_raw:
            found.append(_log_entry(rel, loads(working_raw, source=rel + SUFFIX), None, None, ""))
        for h in history:
            raw = blobs[f"{h.commit}:{rel}{SUFFIX}"]
            if raw is not None:
                ptr = loads(raw, source=f"{h.commit[:12]}:{rel}{SUFFIX}")
                found.append(_log_entry(rel, ptr, h.commit, h.time, h.subject))
        if path is not None and not found:
            raise PathError(f"{path}: no snapshots recorded", hint=f"git snap save {path}")
        entries.extend(found)
    if path is None:
        entries.sort(key=lambda e: (e.commit_time is not None, -(e.commit_time or 0)))
    return entries


def show(spec: str, cwd: Path | None = None) -> ShowResult:
    """One snapshot: ``PATH`` (work tree) or ``REV:PATH``."""
    ws = Workspace.discover(cwd)
    rev: str | None = None
    path = spec
    if ":" in spec:
        left, right = spec.split(":", 1)
        if left:
            rev, path = left, right
    rel = ws.relpath(path)
    if rev is None:
        ptr = ws.read_pointer(rel)
        if ptr is None:
            raise PathError(f"{path}: no pointer {rel}{SUFFIX} in the work tree", hint=f"git snap save {path}")
        return ShowResult(ws.display(rel), None, None, ptr)
    commit = gitio.resolve_commit(ws.root, rev)
    raw = gitio.show_blob(ws.root, commit, rel + SUFFIX)
    if raw is None:
        raise PathError(f"no snapshot of {rel} at {rev}", hint=f"git snap log {rel} lists the commits that have one")
    return ShowResult(ws.display(rel), rev, commit, loads(raw, source=f"{rev}:{rel}{SUFFIX}"))


def read_pointer_file(path: str | os.PathLike[str]) -> Pointer:
    """Parse one pointer file from disk (no repository needed)."""
    p = Path(path)
    try:
        return loads(p.read_bytes(), source=str(p))
    except FileNotFoundError:
        raise PathError(f"{p}: no such pointer file") from None


# ------------------------------------------------------------------ remotes (push / fetch / pull)


@dataclass(frozen=True)
class PullResult:
    fetch: TransferResult
    checkout: list[CheckoutEntry]


def _worktree_pointers(ws: Workspace) -> list[tuple[str, Pointer]]:
    out = []
    for rel in ws.pointer_paths():
        ptr = ws.read_pointer(rel)
        if ptr is not None:
            out.append((rel, ptr))
    return out


def _refs(ws: Workspace, revs: Sequence[str], all_refs: bool, paths: Sequence[str | os.PathLike[str]]) -> list[SnapshotRef]:
    from gitsnap import transfer

    refs = transfer.snapshots_at(ws.root, revs, all_refs=all_refs, worktree_pointers=lambda: _worktree_pointers(ws))
    if paths:
        wanted = [ws.relpath(p) for p in paths]
        keep = set(_select(sorted({r.path for r in refs}), wanted))
        refs = [r for r in refs if r.path in keep]
        if not refs:
            raise PathError(f"no snapshot of {', '.join(wanted)} to transfer", hint="git snap log PATH lists them")
    return refs


def _open_remote(ws: Workspace, remote: str | None, jobs: int | None) -> Remote:
    from gitsnap.remote import open_remote

    return open_remote(ws.require_dvc(), remote, jobs)


def push(
    revs: Sequence[str] = (),
    *,
    remote: str | None = None,
    all_refs: bool = False,
    paths: Sequence[str | os.PathLike[str]] = (),
    jobs: int | None = None,
    progress: Progress | None = None,
    notes: bool = True,
    cwd: Path | None = None,
) -> TransferResult:
    """Upload the objects the DVC remote lacks, for HEAD and the work tree (or ``revs`` / ``all_refs``).

    Also pushes ``refs/notes/gitsnap`` to the git remote ``origin``. Raises
    ObjectMissing / ObjectCorrupt after the transfer when some objects could
    not be pushed (``err.result`` holds the summary), RemoteError when the
    remote cannot be used.

    Example::

        res = api.push()                  # default DVC remote, HEAD + work tree
        print(res.objects_transferred, res.bytes_transferred, res.objects_skipped)
        api.push(["v1.0", "main"], remote="backup", jobs=16)
    """
    from gitsnap import transfer

    ws = Workspace.discover(cwd)
    refs = _refs(ws, revs, all_refs, paths)
    target = _open_remote(ws, remote, jobs)
    return transfer.push(ws.root, ws.store, target, refs, jobs=jobs, progress=progress, notes=notes)


def fetch(
    revs: Sequence[str] = (),
    *,
    remote: str | None = None,
    all_refs: bool = False,
    paths: Sequence[str | os.PathLike[str]] = (),
    jobs: int | None = None,
    progress: Progress | None = None,
    notes: bool = True,
    cwd: Path | None = None,
) -> TransferResult:
    """Download into the local store the objects it lacks (verified; the work tree is not touched).

    Also fetches ``refs/notes/gitsnap`` from ``origin`` and merges it with the
    local notes. A corrupt or missing remote object raises ObjectCorrupt /
    ObjectMissing naming the tensor, after every other object was fetched.

    Example::

        api.fetch(["main~3"])             # objects of main~3's snapshots, no checkout
    """
    from gitsnap import transfer

    ws = Workspace.discover(cwd)
    refs = _refs(ws, revs, all_refs, paths)
    return transfer.fetch(
        ws.root, ws.store, lambda: _open_remote(ws, remote, jobs), refs,
        jobs=jobs, progress=progress, notes=notes,
    )  # fmt: skip


def pull(
    rev: str | None = None,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    remote: str | None = None,
    all_refs: bool = False,
    jobs: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
    cwd: Path | None = None,
) -> PullResult:
    """``fetch`` then ``checkout``: after ``git clone``, ``api.pull()`` restores HEAD's weights byte-exactly.

    Example::

        result = api.pull()
        print(result.fetch.objects_transferred, [e.path for e in result.checkout])
    """
    fetched = fetch(
        [rev] if rev else [], remote=remote, all_refs=all_refs, paths=paths, jobs=jobs, progress=progress, cwd=cwd
    )
    restored = checkout(rev, paths, force=force, cwd=cwd)
    return PullResult(fetched, restored)


def remote_status(
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    remote: str | None = None,
    revs: Sequence[str] = (),
    cwd: Path | None = None,
) -> RemoteStatusResult:
    """Which snapshots (path, commit) of the work tree and HEAD (or ``revs``) are not fully on the remote.

    Example::

        for e in api.remote_status().entries:
            if e.missing_objects:
                print(e.path, e.commit, e.missing_objects)
    """
    from gitsnap import transfer

    ws = Workspace.discover(cwd)
    refs = _refs(ws, revs, False, paths)
    return transfer.remote_status(_open_remote(ws, remote, None), refs)


def _fetch_for_checkout(ws: Workspace, rel: str, ptr: Pointer, workers: int | None) -> None:
    """checkout found objects missing locally: fetch them if a remote is configured, else let restore explain."""
    from gitsnap import transfer
    from gitsnap.errors import RemoteError
    from gitsnap.remote import configured_remote

    try:
        configured_remote(ws.require_dvc())
    except RemoteError:
        return  # no usable remote: snapshot.restore raises ObjectMissing with its own hint
    ref = transfer.SnapshotRef(rel, None, ptr)
    transfer.fetch(ws.root, ws.store, lambda: _open_remote(ws, None, workers), [ref], notes=False)


__all__ = [
    "CheckoutEntry",
    "Entry",
    "InitResult",
    "LogEntry",
    "PointerError",
    "PullResult",
    "SaveResult",
    "ShowResult",
    "StatusEntry",
    "StatusResult",
    "checkout",
    "fetch",
    "init",
    "log",
    "pull",
    "push",
    "remote_status",
    "read_pointer_file",
    "save",
    "show",
    "status",
]
