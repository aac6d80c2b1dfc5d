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
import stat
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from gitsnap import __version__, gitio
from gitsnap.errors import DirtyCheckpoint, GitsnapError, PathError, PointerError, UsageError
from gitsnap.fsutil import exclude_temp_names, write_atomic
from gitsnap.metrics import Scalar, parse_pairs, read_file
from gitsnap.paths import SAVE_HINT, check_relpath, regular_or_absent, safe_target
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
    hooks: Any = None  # ---- hooks: install.InstallResult when init installed them, else None
    # Files init created or changed that belong in a commit (.git/ config and hooks do not).
    to_commit: list[str] = field(default_factory=list)


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
    dropped: tuple[str, ...] = ()  # what --force discarded (D19): said, never silent


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


def init(cwd: Path | None = None, remote: str | None = None, hooks: bool = False) -> InitResult:
    """Set up gitsnap in a git repository: ``dvc init`` if needed, optional default remote.

    ``hooks`` also installs the git hooks (as :func:`install`); without it
    nothing is written to the hooks folder.
    """
    ws = Workspace.discover(cwd)
    created = False
    to_commit: list[str] = []
    if ws.dvc_dir is None:
        _dvc(["init", "-q"], ws.root)
        created = True
        ws = Workspace.discover(cwd)
        to_commit += [".dvc", ".dvcignore"]  # config, .gitignore (of its cache and tmp)
    if remote:
        _dvc(["remote", "add", "-d", "-f", "storage", remote], ws.root)
        if not created:
            to_commit.append(".dvc/config")
    if _setup_diff_driver(ws):  # ---- review: readable `git diff` of pointers
        to_commit.append(".gitattributes")
    ws.store.root.mkdir(parents=True, exist_ok=True)
    exclude_temp_names(ws.git_dir)  # ---- D19: git add -A never stages a gitsnap temp file
    installed = install(cwd) if hooks else None  # ---- hooks
    here = [os.path.relpath(ws.root / p, ws.cwd) for p in to_commit]  # for `git add` from cwd
    return InitResult(str(ws.root), created, str(ws.cache_dir), remote, installed, here)


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
    moment = (
        datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _collect(
    file: str | os.PathLike[str] | None,
    pairs: Sequence[str] | Mapping[str, Scalar] | None,
    cwd: Path,
) -> dict[str, Scalar]:
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
    """Record a snapshot of each checkpoint.

    Its objects go into the store and a ``.snap`` pointer is written beside it.
    """
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
        abs_path = safe_target(ws.root, rel, str(user_path), hint=SAVE_HINT)  # ---- paths (D9)
        if not abs_path.exists():
            raise PathError(
                f"{user_path}: no such file",
                hint="check the path; git snap status lists saved checkpoints",
            )
        if (
            gitio.run(["ls-files", "--error-unmatch", "--", rel], ws.root, check=False).returncode
            == 0
        ):
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
            unchanged = (message_, metrics_, params_) == (
                previous.message,
                previous.metrics,
                previous.params,
            )
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
                files=ing.files,  # a folder checkpoint (sharded safetensors, ...)
            )
            write_atomic(ws.root / (rel + SUFFIX), dumps(ptr).encode())
        _ensure_ignored(ws, rel)
        cache.put(rel, ing.stat, ing.id, started_ns)  # the stat from before hashing (D19)
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


def _ensure_ignored(ws: Workspace, rel: str) -> None:
    """Keep the checkpoint itself out of git: ``/path`` in the top-level .gitignore."""
    if gitio.check_ignore(ws.root, rel):
        return
    gi = regular_or_absent(ws.root / ".gitignore", ".gitignore")  # never through a symlink
    text = gi.read_text(encoding="utf-8") if gi.exists() else ""
    line = "/" + rel.replace(" ", "\\ ")
    if line in text.splitlines():
        return
    if text and not text.endswith("\n"):
        text += "\n"
    write_atomic(gi, (text + line + "\n").encode())


# ------------------------------------------------------------------ status


def _current_id(ws: Workspace, rel: str, cache: Any) -> str | None:
    """Snapshot id of the working checkpoint (stat cache first), None if absent."""
    path = ws.root / rel
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):  # a folder checkpoint: stat all its files
        from gitsnap.snapshot import stat_path

        st = stat_path(path)
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


def _pointer_summary(ws: Workspace, rel: str, cache: Any) -> tuple[str, set[str]] | None:
    """(snapshot id, stored object ids) of a working pointer, without a YAML parse when
    the pointer file is unchanged since one (a 2,000-tensor parse costs ~0.5 s)."""
    from gitsnap.pointer import dumps, scan_oids

    path = ws.root / (rel + SUFFIX)
    try:
        st = path.stat()
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    key = "pointer:" + rel
    cached = cache.get(key, st)
    if cached is not None:
        return cached, scan_oids(raw)
    started_ns = time.time_ns()
    ptr = loads(raw, source=rel + SUFFIX)
    if dumps(ptr).encode() == raw:  # canonical: the line scan reads it exactly
        cache.put(key, st, ptr.id, started_ns)
    return ptr.id, ptr.oids()


def status(paths: Sequence[str | os.PathLike[str]] = (), cwd: Path | None = None) -> StatusResult:
    """Compare each working checkpoint with its pointer, and check the store has its objects."""
    ws = Workspace.discover(cwd)
    store = ws.store
    cache = ws.stat_cache
    wanted = [ws.relpath(p) for p in paths]
    entries = []
    for rel in _select(ws.pointer_paths(), wanted):
        check_relpath(rel, rel + SUFFIX)  # ---- paths: never stat or hash a .git (.git.snap)
        known = _pointer_summary(ws, rel, cache)
        if known is None:
            continue  # pointer deleted in the work tree
        pointer_id, oids = known
        current = _current_id(ws, rel, cache)
        state = "absent" if current is None else ("clean" if current == pointer_id else "modified")
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


def _pointers_at(
    ws: Workspace, rev: str | None, wanted: Sequence[str]
) -> list[tuple[str, Pointer, bytes | None]]:
    """(path, pointer, raw pointer bytes when read from a commit) for the selected checkpoints."""
    out: list[tuple[str, Pointer, bytes | None]] = []
    if rev is None:
        for rel in _select(ws.pointer_paths(), wanted):
            ptr = ws.read_pointer(rel)
            if ptr is not None:
                out.append((rel, ptr, None))
    else:
        model = _model_ref(ws, rev)  # ---- registry: NAME@v1.2.0 / NAME#prod restores that model
        commit = model.commit if model else gitio.resolve_commit(ws.root, rev)
        wanted = wanted or ([model.path] if model else [])
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
    if (
        working is not None
        and working.id == current
        and not snapshot.missing_objects(working, ws.store)
    ):
        return False
    ing = snapshot.ingest(path, None, want_stats=False)
    return any(not ws.store.has(e.oid) for e in [*ing.tensors, *ing.blobs] if not e.view)


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
        check_relpath(rel, f"{rel}{SUFFIX}")  # ---- paths: a pointer named .git.snap, ...
        if export_dir is not None:
            base = next((w for w in wanted if rel.startswith(w.rstrip("/") + "/")), None)
            sub = (
                rel[len(base.rstrip("/")) + 1 :]
                if base and base != "."
                else (Path(rel).name if rel in wanted else rel)
            )
            dest = export_dir / sub
        else:  # ---- paths: no .git, no symlink out of the work tree, not in the store
            dest = safe_target(ws.root, rel, f"{rel}{SUFFIX}", forbidden=[store.root.resolve()])
        shown = ws.display(rel) if export_dir is None else str(dest)
        in_workspace = export_dir is None
        dropped: list[str] = []
        if in_workspace and raw is not None:  # ---- D19: an uncommitted snapshot needs --force
            dropped = snapshot.guard_uncommitted(
                ws.root, rel, raw, ptr.id, force=force, shown=ws.display(rel)
            )
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
                if dirty and in_workspace:
                    raise DirtyCheckpoint(
                        f"{shown} has changes that are not saved; refusing to overwrite it",
                        hint=(
                            f"git snap save {ws.display(rel)} to keep them, "
                            "or pass --force to discard them"
                        ),
                    )
                if dirty:  # exporting (--to) into a folder that holds something else
                    raise DirtyCheckpoint(
                        f"{shown} exists and differs from the snapshot; refusing to overwrite it",
                        hint="choose an empty folder, or pass --force to overwrite",
                    )
            started_ns = time.time_ns()
            if snapshot.missing_objects(ptr, store):
                _fetch_for_checkout(ws, rel, ptr, workers)  # ---- remotes: "fetching if needed"
            removed = snapshot.restore(
                ptr, store, dest, workers=workers, force=force,
                root=ws.root if in_workspace else None,
            )  # fmt: skip
            dropped += [f"{shown}/{e} (not a file of any snapshot)" for e in removed]
            if in_workspace:
                cache.put(rel, snapshot.stat_path(dest), ptr.id, started_ns)
            action = "restored"
        if in_workspace and raw is not None:
            pointer_file = ws.root / (rel + SUFFIX)
            if not pointer_file.exists() or pointer_file.read_bytes() != raw:
                write_atomic(pointer_file, raw)
            _ensure_ignored(ws, rel)
        results.append(
            CheckoutEntry(ws.display(rel), shown, action, ptr.id, ptr.size, tuple(dropped))
        )
    cache.save()
    return results


# ------------------------------------------------------------------ log / show


def _log_entry(
    rel: str, ptr: Pointer, commit: str | None, ctime: int | None, subject: str
) -> LogEntry:
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
    """Snapshot history, newest first.

    The uncommitted pointer (if any) comes first, then each commit that changed it.
    """
    ws = Workspace.discover(cwd)
    if path is not None:
        rels = [ws.relpath(path)]
    else:
        rels = sorted(
            set(ws.pointer_paths())
            | set(ws.pointer_paths("HEAD") if gitio.has_commits(ws.root) else [])
        )
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
    # ---- registry: show NAME@v1.2.0 / NAME#prod (that model), or NAME#prod:PATH
    model = _model_ref(ws, rev or (None if (ws.cwd / spec).exists() else spec))
    if model is not None and rev is None:
        rev, path = spec, os.fspath(ws.root / model.path)
    rel = ws.relpath(path)
    if rev is None:
        ptr = ws.read_pointer(rel)
        if ptr is None:
            raise PathError(
                f"{path}: no pointer {rel}{SUFFIX} in the work tree", hint=f"git snap save {path}"
            )
        return ShowResult(ws.display(rel), None, None, ptr)
    commit = model.commit if model else gitio.resolve_commit(ws.root, rev)
    raw = gitio.show_blob(ws.root, commit, rel + SUFFIX)
    if raw is None:
        raise PathError(
            f"no snapshot of {rel} at {rev}",
            hint=f"git snap log {rel} lists the commits that have one",
        )
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


def _worktree_pointers(ws: Workspace) -> list[tuple[str, bytes]]:
    out = []
    for rel in ws.pointer_paths():
        try:
            out.append((rel, ws.abspath(rel + SUFFIX).read_bytes()))
        except FileNotFoundError:
            continue  # deleted in the work tree
        except IsADirectoryError:
            raise PointerError(f"{rel}{SUFFIX} is a directory, not a pointer") from None
    return out


def _refs(
    ws: Workspace, revs: Sequence[str], all_refs: bool, paths: Sequence[str | os.PathLike[str]]
) -> list[SnapshotRef]:
    from gitsnap import transfer

    revs = [_rev(ws, r) for r in revs]  # ---- registry: push NAME#prod
    refs = transfer.snapshots_at(
        ws.root, revs, all_refs=all_refs, worktree_pointers=lambda: _worktree_pointers(ws)
    )
    if paths:
        wanted = [ws.relpath(p) for p in paths]
        keep = set(_select(sorted({r.path for r in refs}), wanted))
        refs = [r for r in refs if r.path in keep]
        if not refs:
            raise PathError(
                f"no snapshot of {', '.join(wanted)} to transfer",
                hint="git snap log PATH lists them",
            )
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
    """Upload the objects the DVC remote lacks.

    Covers HEAD and the work tree (or ``revs`` / ``all_refs``). Also pushes
    ``refs/notes/gitsnap`` to the git remote ``origin``. Raises
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
    """``fetch`` then ``checkout``.

    After ``git clone``, ``api.pull()`` restores HEAD's weights byte-exactly.

    Example::

        result = api.pull()
        print(result.fetch.objects_transferred, [e.path for e in result.checkout])
    """
    fetched = fetch(
        [rev] if rev else [],
        remote=remote,
        all_refs=all_refs,
        paths=paths,
        jobs=jobs,
        progress=progress,
        cwd=cwd,
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
    """Which snapshots (path, commit) are not fully on the remote.

    Looks at the work tree and HEAD, or at ``revs``.

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
    """checkout found objects missing locally: fetch them if a remote is configured.

    Without one, do nothing and let restore explain.
    """
    from gitsnap import transfer
    from gitsnap.errors import RemoteError
    from gitsnap.remote import configured_remote

    try:
        configured_remote(ws.require_dvc())
    except RemoteError:
        return  # no usable remote: snapshot.restore raises ObjectMissing with its own hint
    ref = transfer.SnapshotRef(rel, None, ptr)
    transfer.fetch(ws.root, ws.store, lambda: _open_remote(ws, None, workers), [ref], notes=False)


# ------------------------------------------------------- diff, metrics notes, textconv (review)

if TYPE_CHECKING:
    from gitsnap.diff import DiffResult


@dataclass
class _DiffSide:
    """One side of ``diff``: a commit's pointers, or the work tree's."""

    label: str
    commit: str | None
    pointers: dict[str, Pointer]
    note: Any = None  # notes.Note of the commit, or None
    files: dict[str, Path] = field(
        default_factory=dict
    )  # work tree: checkpoints to read values from
    unsaved: set[str] = field(default_factory=set)
    notes_for: dict[str, Any] = field(default_factory=dict)  # rel -> Note that applies to it


def _pointer_blobs_at(ws: Workspace, commit: str, wanted: Sequence[str]) -> dict[str, bytes]:
    rels = _select(ws.pointer_paths(commit), wanted)
    blobs = gitio.cat_blobs(ws.root, [f"{commit}:{rel}{SUFFIX}" for rel in rels])
    return {rel: raw for rel in rels if (raw := blobs[f"{commit}:{rel}{SUFFIX}"]) is not None}


def _read_pointers_at(
    ws: Workspace,
    commit: str,
    rev: str,
    wanted: Sequence[str],
    shared: dict[str, Any] | None = None,
) -> dict[str, Pointer]:
    return {
        rel: loads(raw, source=f"{rev}:{rel}{SUFFIX}", shared=shared)
        for rel, raw in _pointer_blobs_at(ws, commit, wanted).items()
    }


class _Fetched(NamedTuple):
    """What git says about one side of a diff, before any pointer is parsed."""

    commit: str | None  # None: no commit yet (a new repository)
    blobs: dict[str, bytes]
    note: Any  # notes.Note, or None
    note_error: GitsnapError | None  # raised after the pointers are read, as it used to be


def _fetch_commit_side(ws: Workspace, rev: str, wanted: Sequence[str], implicit: bool) -> _Fetched:
    from gitsnap import notes

    if implicit and not gitio.has_commits(ws.root):
        return _Fetched(None, {}, None, None)  # a new repository: everything is added
    commit = gitio.resolve_commit(ws.root, _rev(ws, rev))  # ---- registry: NAME@v1.2.0 / NAME#prod
    blobs = _pointer_blobs_at(ws, commit, wanted)
    try:
        return _Fetched(commit, blobs, notes.read(ws.root, commit), None)
    except GitsnapError as exc:
        return _Fetched(commit, blobs, None, exc)


class _Background(threading.Thread):
    """``fn(*args)`` in a thread; :meth:`result` joins it and returns or raises its outcome."""

    def __init__(self, fn: Any, *args: Any) -> None:
        super().__init__(name="gitsnap-diff", daemon=True)
        self._call = (fn, args)
        self._out: Any = None
        self._exc: BaseException | None = None
        self.start()

    def run(self) -> None:
        fn, args = self._call
        try:
            self._out = fn(*args)
        except BaseException as exc:  # handed to the caller by result()
            self._exc = exc

    def result(self) -> Any:
        self.join()
        if self._exc is not None:
            raise self._exc
        return self._out


def _commit_side(
    ws: Workspace,
    rev: str,
    wanted: Sequence[str],
    *,
    implicit: bool,
    shared: dict[str, Any] | None = None,
    fetched: _Fetched | None = None,
) -> _DiffSide:
    got = fetched or _fetch_commit_side(ws, rev, wanted, implicit)
    if got.commit is None:
        return _DiffSide(rev, None, {})
    pointers = {
        rel: loads(raw, source=f"{rev}:{rel}{SUFFIX}", shared=shared)
        for rel, raw in got.blobs.items()
    }
    if got.note_error is not None:
        raise got.note_error
    side = _DiffSide(rev, got.commit, pointers, got.note)
    side.notes_for = dict.fromkeys(side.pointers, side.note) if side.note else {}
    return side


def _worktree_side(
    ws: Workspace,
    wanted: Sequence[str],
    head: _DiffSide | None,
    workers: int | None,
    shared: dict[str, Any] | None = None,
) -> _DiffSide:
    """The work tree's pointers; a checkpoint that differs from its pointer is ingested.

    Ingesting it stores nothing. The stat cache answers for an unchanged
    checkpoint without reading it.
    HEAD's note applies to a checkpoint whose snapshot is still HEAD's.
    """
    from gitsnap import notes, snapshot

    cache = ws.stat_cache
    side = _DiffSide("working tree", None, {})
    for rel in _select(ws.pointer_paths(), wanted):
        try:
            raw = ws.abspath(rel + SUFFIX).read_bytes()
        except FileNotFoundError:
            continue  # deleted in the work tree, still in the index
        ptr = loads(raw, source=f"{rel}{SUFFIX}", shared=shared)
        path = ws.root / rel
        try:
            st = snapshot.stat_path(path)  # a folder checkpoint: all its files
        except FileNotFoundError:
            side.pointers[rel] = ptr  # no checkpoint here: the pointer is the work tree's state
            continue
        if cache.get(rel, st) != ptr.id:
            started_ns = time.time_ns()
            ing = snapshot.ingest(path, None, previous=ptr, want_stats=True, workers=workers)
            cache.put(rel, st, ing.id, started_ns)
            if ing.id != ptr.id:
                ptr = Pointer(
                    id=ing.id, parent=ptr.id, path=rel, format=ing.layout.format,
                    size=ing.layout.size, tensors=ing.tensors, blobs=ing.blobs,
                    message=ptr.message, metrics=dict(ptr.metrics), params=dict(ptr.params),
                    metadata=dict(ing.layout.metadata), files=ing.files,
                )  # fmt: skip
                side.unsaved.add(rel)
        side.pointers[rel] = ptr
        side.files[rel] = path
    cache.save()
    if gitio.has_commits(ws.root):
        head_commit = gitio.resolve_commit(ws.root, "HEAD")
        if head is not None and head.commit == head_commit:
            head_note, head_ptrs = head.note, head.pointers
        else:
            head_note = notes.read(ws.root, head_commit)
            head_ptrs = _read_pointers_at(ws, head_commit, "HEAD", wanted) if head_note else {}
        if head_note:
            side.notes_for = {
                rel: head_note
                for rel, p in side.pointers.items()
                if rel in head_ptrs and head_ptrs[rel].id == p.id
            }
    return side


def _value_sources(
    ws: Workspace,
    before: _DiffSide,
    after: _DiffSide,
    changes: dict[str, list[Any]],
    workers: int | None,
) -> None:
    """Make sure every object a value diff reads from the store is here: fetch it, or say how."""
    from gitsnap.diff_values import value_dtypes_supported

    needed: dict[tuple[str, str | None], list[Entry]] = {}
    labels: dict[tuple[str, str | None], str] = {}
    for rel, items in changes.items():
        for c in items:
            if not value_dtypes_supported(c):
                continue
            for side, ts in ((before, c.before), (after, c.after)):
                if rel in side.files or ws.store.has(ts.oid):
                    continue
                key = (rel, side.commit)
                labels[key] = side.label
                needed.setdefault(key, []).append(
                    Entry(
                        offset=ts.offset,
                        size=ts.size,
                        oid=ts.oid,
                        name=c.name,
                        dtype=ts.dtype,
                        shape=ts.shape,
                        file=ts.file,
                    )
                )
    if not needed:
        return
    revs = sorted({labels[k] for k in needed})
    hint = f"git snap fetch {' '.join(r for r in revs if r != 'working tree') or ''}".strip()
    count = sum(len(v) for v in needed.values())
    try:
        from gitsnap import transfer
        from gitsnap.remote import configured_remote, open_remote

        configured_remote(ws.require_dvc())
    except (ImportError, GitsnapError):
        from gitsnap.errors import ObjectMissing

        raise ObjectMissing(
            f"{count} object(s) needed by --values are not in the local store "
            "and no remote is set up to fetch them",
            hint=f"{hint} (after configuring a DVC remote), or run without --values",
        ) from None
    refs = [
        transfer.SnapshotRef(
            rel,
            commit,
            Pointer(id="0" * 64, path=rel, format="", size=0, tensors=entries, blobs=[]),
        )
        for (rel, commit), entries in needed.items()
    ]
    transfer.fetch(
        ws.root, ws.store, lambda: open_remote(ws.require_dvc(), None, workers), refs, notes=False
    )


def diff(
    rev_a: str | None = None,
    rev_b: str | None = None,
    paths: Sequence[str | os.PathLike[str]] = (),
    *,
    values: bool = False,
    depth: int | None = None,
    fail_on: Sequence[str] = (),
    allow_missing: bool = False,
    cwd: Path | None = None,
    workers: int | None = None,
) -> DiffResult:
    """Compare snapshots tensor by tensor and metric by metric (a :class:`gitsnap.diff.DiffResult`).

    No revision: HEAD's pointers vs the work tree (a checkpoint changed since
    its pointer is read from disk, nothing is stored). One revision: it vs the
    work tree. Two: those commits. ``values`` also reads the objects of
    modified tensors (fetching them if needed); ``fail_on`` takes conditions
    such as ``"accuracy < -0.01"`` whose verdicts land in ``result.gate``.

    Example::

        result = api.diff("main", "HEAD", values=True, fail_on=["accuracy < -0.01"])
        for ck in result.checkpoints:
            print(ck.path, ck.summary.tensors_changed, [g.name for g in ck.groups[:3]])
        if result.failed:
            ...
    """
    from gitsnap import diff as d
    from gitsnap import metrics as m

    if rev_a is None and rev_b is not None:
        raise UsageError("a second revision needs a first one", hint="git snap diff REV_A REV_B")
    if depth is not None and depth < 1:
        raise UsageError(
            f"--depth must be at least 1, got {depth}",
            hint="leave it out for the automatic layer rule",
        )
    conditions = [m.Condition.parse(text) for text in fail_on]
    ws = Workspace.discover(cwd)
    wanted = [ws.relpath(p) for p in paths]
    # ---- registry: `diff clf@v1.0.0 clf#prod` (or one model ref vs the work tree)
    # compares that model only
    model_refs = [_model_ref(ws, r) for r in (rev_a, rev_b) if r is not None]
    if not wanted and model_refs and all(model_refs) and len({m.path for m in model_refs}) == 1:
        wanted = [model_refs[0].path]
    shared: dict[str, Any] = {}  # tensor lines both sides have are parsed once
    if rev_b is None:
        before = _commit_side(ws, rev_a or "HEAD", wanted, implicit=rev_a is None, shared=shared)
        after = _worktree_side(ws, wanted, before, workers, shared)
    else:
        # The after side's git processes run while the before side is parsed
        # (~25 ms of a 2,000-tensor diff); errors still come in the same order.
        later = _Background(_fetch_commit_side, ws, rev_b, wanted, False)
        try:
            before = _commit_side(ws, rev_a or "HEAD", wanted, implicit=False, shared=shared)
        finally:
            later.join()
        after = _commit_side(
            ws, rev_b, wanted, implicit=False, shared=shared, fetched=later.result()
        )
    rels = sorted(set(before.pointers) | set(after.pointers))
    if wanted and not rels:
        raise PathError(
            f"no snapshot of {', '.join(wanted)} in {before.label} or the {after.label}"
            if rev_b is None
            else f"no snapshot of {', '.join(wanted)} in {before.label} or {after.label}",
            hint="git snap log PATH lists the commits that have one",
        )
    changes = {
        rel: d.diff_tensors(
            before.pointers[rel].tensors if rel in before.pointers else [],
            after.pointers[rel].tensors if rel in after.pointers else [],
        )
        for rel in rels
    }
    if values:
        from gitsnap import diff_values as dv

        _value_sources(ws, before, after, changes, workers)
        store = dv.StoreSource(ws.store)
        for rel in rels:
            src_after: Any = store
            if rel in after.files:
                src_after = dv.FileSource(after.files[rel])
            try:
                changes[rel] = dv.compute_values(changes[rel], store, src_after, workers=workers)
            finally:
                if isinstance(src_after, dv.FileSource):
                    src_after.close()
    better = m.read_directions(ws.root, before.commit)
    out = []
    for rel in rels:
        pa, pb = before.pointers.get(rel), after.pointers.get(rel)
        na, nb = before.notes_for.get(rel), after.notes_for.get(rel)
        out.append(
            d.CheckpointDiff(
                path=ws.display(rel),
                status=d.checkpoint_status(pa, pb),
                before=d.SnapshotSide.of(pa) if pa else None,
                after=d.SnapshotSide.of(pb, rel in after.unsaved) if pb else None,
                tensors=changes[rel],
                groups=d.group_changes(changes[rel], depth),
                summary=d.summarize(changes[rel]),
                metrics=m.compare(
                    pa.metrics if pa else {},
                    na.metrics if na else {},
                    pb.metrics if pb else {},
                    nb.metrics if nb else {},
                    better,
                ),
                params=m.compare(
                    pa.params if pa else {},
                    na.params if na else {},
                    pb.params if pb else {},
                    nb.params if nb else {},
                ),
            )
        )
    gate = m.evaluate(
        conditions, [(c.path, [*c.metrics, *c.params]) for c in out], allow_missing=allow_missing
    )
    return d.DiffResult(
        before.label, after.label, before.commit, after.commit, values, depth, out, gate
    )


@dataclass(frozen=True)
class MetricsNoteResult:
    """The gitsnap note of one commit after ``metrics add`` (``added``: the names just written)."""

    rev: str
    commit: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    added: list[str]


def metrics_add(
    items: Sequence[str],
    *,
    rev: str = "HEAD",
    params: Sequence[str] = (),
    cwd: Path | None = None,
) -> MetricsNoteResult:
    """Attach metrics measured after the commit as a git note on ``rev`` (merged into its note).

    Each item is ``key=value`` or a JSON/YAML file; a file whose top level
    has ``metrics:`` / ``params:`` fills both. ``params`` are ``key=value``.

    Example::

        api.metrics_add(["eval/results.json"], rev="HEAD")
        api.metrics_add(["acc=0.914", "f1=0.88"])
    """
    from gitsnap import notes

    if not items and not params:
        raise UsageError("nothing to add", hint="git snap metrics add (FILE | key=value...)")
    ws = Workspace.discover(cwd)
    new_metrics: dict[str, Scalar] = {}
    new_params: dict[str, Scalar] = {}
    for item in items:
        if "=" in item and not (ws.cwd / item).exists():
            new_metrics.update(parse_pairs([item]))
            continue
        path = ws.cwd / item
        if not path.exists():
            raise PathError(
                f"{item}: no such file", hint="give a JSON/YAML file or key=value pairs"
            )
        parsed = notes.parse(path.read_bytes(), source=item)
        new_metrics.update(parsed.metrics)
        new_params.update(parsed.params)
    new_params.update(parse_pairs(params))
    commit = gitio.resolve_commit(ws.root, _rev(ws, rev))  # ---- registry: --rev NAME#prod
    note = notes.merge(notes.read(ws.root, commit), new_metrics, new_params)
    notes.write(ws.root, commit, note)
    return MetricsNoteResult(
        rev, commit, note.metrics, note.params, sorted({*new_metrics, *new_params})
    )


@dataclass(frozen=True)
class MetricsCheckpoint:
    """One checkpoint's metrics and params at a commit, after the note is merged in."""

    path: str
    snapshot_id: str
    metrics: list[Any]  # metrics.MetricChange with only the "after" side set: value + sources
    params: list[Any]


@dataclass(frozen=True)
class MetricsShowResult:
    rev: str
    commit: str
    note: dict[str, Any]  # {"metrics": {...}, "params": {...}} of the commit's note ({} if none)
    checkpoints: list[MetricsCheckpoint]


def metrics_show(rev: str = "HEAD", cwd: Path | None = None) -> MetricsShowResult:
    """The metrics and params of ``rev``: each checkpoint's pointer, merged with the commit's note.

    Example::

        for ck in api.metrics_show("HEAD").checkpoints:
            print(ck.path, {m.name: m.after for m in ck.metrics})
    """
    from gitsnap import metrics as m
    from gitsnap import notes

    ws = Workspace.discover(cwd)
    commit = gitio.resolve_commit(ws.root, _rev(ws, rev))  # ---- registry: NAME#prod
    note = notes.read(ws.root, commit) or notes.Note()
    out = []
    for rel, ptr in _read_pointers_at(ws, commit, rev, []).items():
        out.append(
            MetricsCheckpoint(
                ws.display(rel), ptr.id,
                m.compare({}, {}, ptr.metrics, note.metrics),
                m.compare({}, {}, ptr.params, note.params),
            )
        )  # fmt: skip
    return MetricsShowResult(rev, commit, {"metrics": note.metrics, "params": note.params}, out)


DIFF_DRIVER = "gitsnap"
DIFF_ATTRIBUTE = f"*{SUFFIX} diff={DIFF_DRIVER}"


def _setup_diff_driver(ws: Workspace) -> bool:
    """``git diff`` of a pointer shows ``git snap textconv``'s summary.

    A ``.gitattributes`` line (committed) and the driver in ``.git/config``;
    True when ``.gitattributes`` was written.
    """
    attrs = regular_or_absent(ws.root / ".gitattributes", ".gitattributes")
    text = attrs.read_text(encoding="utf-8") if attrs.exists() else ""
    gitio.config_set(ws.root, f"diff.{DIFF_DRIVER}.textconv", "git snap textconv")
    if DIFF_ATTRIBUTE in text.splitlines():
        return False
    sep = "\n" if text and not text.endswith("\n") else ""
    write_atomic(attrs, (text + sep + DIFF_ATTRIBUTE + "\n").encode())
    return True


def textconv(path: str | os.PathLike[str]) -> Pointer | bytes:
    """What ``git diff`` shows for a pointer file.

    The parsed pointer, or the raw bytes if it is not one: git hands textconv
    a temporary copy of each side; a side that is not a valid pointer (a
    merge conflict, a hand edit) is shown as it is rather than failing the
    whole ``git diff``.
    """
    data = Path(path).read_bytes()
    try:
        return loads(data, source=str(path))
    except GitsnapError:
        return data


# ------------------------------------------------ registry and storage (tag / ls / gc / du / fsck)


def _model_ref(ws: Workspace, rev: str | None) -> Any:
    """``NAME@v1.2.0`` / ``NAME@latest`` / ``NAME#prod`` as a registry.ModelRef.

    None for any other revision.
    """
    # Every reference has an @ or a #: plain revisions skip importing the registry.
    if rev is None or ("@" not in rev and "#" not in rev):
        return None
    from gitsnap import registry

    return registry.resolve(ws, rev) if registry.looks_like_ref(rev) else None


def _rev(ws: Workspace, rev: str) -> str:
    """A revision git understands: a registry reference becomes its commit."""
    ref = _model_ref(ws, rev)
    return ref.commit if ref is not None else rev


def tag(
    name: str,
    version: str | None = None,
    rev: str | None = None,
    *,
    stage: str | None = None,
    message: str | None = None,
    push: bool = False,
    cwd: Path | None = None,
) -> Any:
    """Register a version or assign a stage, as an annotated tag.

    A version is tagged ``NAME@vX.Y.Z``, a stage ``NAME#STAGE#N``. Returns a
    :class:`gitsnap.registry.TagResult`. ``rev`` defaults to HEAD and may
    itself be a registry reference.

    Example::

        api.tag("classifier", "v1.2.0")                  # classifier@v1.2.0 on HEAD
        api.tag("classifier", stage="prod", rev="classifier@v1.2.0")   # classifier#prod#2
    """
    from gitsnap import registry

    ws = Workspace.discover(cwd)
    if (version is None) == (stage is None):
        raise UsageError(
            "give a VERSION or --stage STAGE (one of them)",
            hint="git snap tag NAME v1.2.0 [REV]  or  git snap tag NAME --stage prod [REV]",
        )
    if version is not None:
        return registry.register(ws, name, version, rev, message=message, push=push)
    assert stage is not None
    return registry.assign(ws, name, stage, rev, message=message, push=push)


def ls(name: str | None = None, *, cwd: Path | None = None) -> list[Any]:
    """Every model (or ``name``) as a registry.ModelSummary.

    Each has its latest version, stages, key metrics and commit.

    Example::

        for m in api.ls():
            print(m.name, m.version, [(s.stage, s.version) for s in m.stages], m.metrics)
    """
    from gitsnap import registry

    return registry.summaries(Workspace.discover(cwd), name)


def ls_history(name: str, *, cwd: Path | None = None) -> Any:
    """Every registry event of one model, newest first (registry.ModelHistory)."""
    from gitsnap import registry

    return registry.history(Workspace.discover(cwd), name)


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
    cwd: Path | None = None,
) -> Any:
    """Delete objects no live snapshot needs (gc.GcResult).

    Locally, or (``remote``) on the DVC remote.

    Example::

        res = api.gc(dry_run=True)
        print(res.objects_deleted, res.bytes_deleted)
        api.gc(remote=True, all_commits=True, force=True)
    """
    from gitsnap import gc as g

    ws = Workspace.discover(cwd)
    seconds = (
        None if grace is None else grace if isinstance(grace, int) else g.parse_duration(grace)
    )
    if remote or remote_name:
        g.require_remote_scope(
            all_commits=all_commits, force=force, dry_run=dry_run
        )  # before opening it
        target = _open_remote(ws, remote_name, jobs)
        return g.gc_remote(
            ws, target, all_commits=True, force=force, dry_run=dry_run,
            grace=g.REMOTE_GRACE if seconds is None else seconds,
            check_git_remotes=check_git_remotes,
        )  # fmt: skip
    return g.gc_local(
        ws, dry_run=dry_run, grace=g.LOCAL_GRACE if seconds is None else seconds,
        projects=[Path(ws.cwd / p) for p in projects], force=force,
    )  # fmt: skip


def du(*, cwd: Path | None = None) -> Any:
    """Logical size, stored bytes and dedup ratio per model and in total (gc.DuResult).

    Example::

        res = api.du()
        print(res.total.logical_bytes, res.total.stored_bytes, res.total.dedup_ratio)
    """
    from gitsnap import gc as g

    return g.du(Workspace.discover(cwd))


def fsck(
    revs: Sequence[str] = (),
    *,
    remote: bool = False,
    remote_name: str | None = None,
    all_commits: bool = False,
    jobs: int | None = None,
    progress: Any = None,
    cwd: Path | None = None,
) -> Any:
    """Re-hash every local (or remote) object (gc.FsckResult).

    Reports corrupt or missing objects by snapshot and tensor.

    Example::

        res = api.fsck()
        for p in res.problems:
            print(p.problem, p.oid[:12], [(u.snapshot, u.segment) for u in p.uses])
    """
    from gitsnap import gc as g

    ws = Workspace.discover(cwd)
    target = _open_remote(ws, remote_name, jobs) if remote or remote_name else None
    return g.fsck(
        ws,
        remote=target,
        revs=[_rev(ws, r) for r in revs],
        all_commits=all_commits,
        jobs=jobs,
        progress=progress,
    )


# ------------------------------------------------------------------ hooks (install / uninstall)


def install(
    cwd: Path | None = None, hooks: Sequence[str] = (), *, force: bool = False
) -> Any:  # install.InstallResult
    """Write gitsnap's hook shims into the hooks folder.

    The shims are pre-commit, pre-push, post-checkout and post-merge.
    The folder is git's own (``git rev-parse --git-path hooks``, so
    ``core.hooksPath`` counts). A foreign hook already there is moved to
    ``<hook>.legacy`` and run first; an earlier gitsnap shim is upgraded;
    ``force`` also replaces a gitsnap shim with local edits.

    Example::

        result = api.install()
        print(result.hooks_dir, [(a.hook, a.action) for a in result.actions])
    """
    from gitsnap import install as _install

    return _install.install(Workspace.discover(cwd).root, hooks, force=force)


def uninstall(
    cwd: Path | None = None, hooks: Sequence[str] = (), *, force: bool = False
) -> Any:  # install.InstallResult
    """Remove gitsnap's hook shims (only those) and move any ``<hook>.legacy`` back in place.

    Example::

        for a in api.uninstall().actions:
            print(a.hook, a.action)   # "removed", "restored", "absent" or "skipped"
    """
    from gitsnap import install as _install

    return _install.uninstall(Workspace.discover(cwd).root, hooks, force=force)


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
    "diff",  # ---- review
    "du",
    "fetch",
    "fsck",
    "gc",
    "init",
    "install",  # ---- hooks
    "log",
    "ls",
    "ls_history",
    "metrics_add",
    "metrics_show",
    "pull",
    "push",
    "read_pointer_file",
    "remote_status",
    "save",
    "show",
    "status",
    "tag",  # ---- registry and storage
    "textconv",
    "uninstall",
]
