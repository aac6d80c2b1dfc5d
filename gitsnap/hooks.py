"""What gitsnap's git hooks do (DESIGN D7): ``git snap hook NAME ARGS...``.

The shims that ``git snap install`` writes (:mod:`gitsnap.install`) run this
for four git hooks; ``.pre-commit-hooks.yaml`` runs the same checks under
their own names for the pre-commit framework:

==================  =========================  ======================================
git hook            pre-commit framework id    what it does
==================  =========================  ======================================
``pre-commit``      ``gitsnap-check``          ``check-pointers``: every staged pointer's
                                               objects are in the local store and the
                                               pointer matches its checkpoint
..                  ``gitsnap-no-raw-weights`` ``no-raw-weights``: no weight file
                                               (``.safetensors .pt .pth .bin .ckpt
                                               .gguf .onnx``), no gitsnap checkpoint and
                                               no file over ``gitsnap.maxFileSize``
                                               (default 10 MiB) is staged into git
``pre-push``        ``gitsnap-push``           ``push-weights``: upload every snapshot the
                                               pushed commits introduce to the DVC remote,
                                               and the metrics notes; abort if that fails
``post-checkout``,  ``gitsnap-checkout``       ``restore``: bring the checkpoints in line
``post-merge``                                 with the new HEAD's pointers from the local
                                               store; never overwrite unsaved work
==================  =========================  ======================================

Configuration (``git config``): ``gitsnap.maxFileSize`` (bytes, ``k``/``m``/``g``
suffixes, 0 turns the size rule off), ``gitsnap.autoFetch`` (post-checkout /
post-merge fetch missing objects from the remote), ``gitsnap.remote`` (the DVC
remote the hooks use; default: DVC's ``core.remote``). A file may be
committed despite the raw-weights rule with the git attribute
``gitsnap-allow-raw`` (``tests/fixtures/*.bin gitsnap-allow-raw`` in
``.gitattributes``).

Each git hook first runs a foreign hook that ``install`` moved aside to
``<hook>.legacy`` (with the same arguments and standard input, as pre-commit
chains one); if that one fails, a pre-commit or pre-push stops there.

Speed (DESIGN D10): ``restore`` with nothing to do reads the index's pointer
paths, the first lines of each pointer and the stat cache, and imports
nothing heavier than :mod:`gitsnap.gitio`; pointers are parsed, checkpoints
hashed and dvc imported only for what actually changed.

Every git this module starts runs without the ``GIT_DIR``/``GIT_INDEX_FILE``
family that git exports to hooks (:mod:`gitsnap.gitio`), except the reads of
the index being committed, which must see the index git names
(:func:`gitsnap.gitio.run_index`).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from gitsnap import gitio
from gitsnap.errors import GitsnapError, UsageError

if TYPE_CHECKING:
    from gitsnap.pointer import Pointer
    from gitsnap.statcache import StatCache
    from gitsnap.transfer import Progress, SnapshotRef, TransferResult

GIT_HOOKS = ("pre-commit", "pre-push", "post-checkout", "post-merge")
# The framework's entry points: they never chain a .legacy hook (the
# framework chains its own) and read the framework's PRE_COMMIT_* variables.
CHECKS = ("check-pointers", "no-raw-weights", "push-weights", "restore")
NAMES = GIT_HOOKS + CHECKS

RAW_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".gguf", ".onnx")
DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
ALLOW_ATTRIBUTE = "gitsnap-allow-raw"
SUFFIX = ".snap"  # = gitsnap.pointer.SUFFIX, without importing yaml on the fast path
NOTES_REF = "refs/notes/gitsnap"
LEGACY_ENV = "GITSNAP_HOOK_LEGACY"  # set while a chained .legacy hook runs

# A pointer's first line, and its top-level id line (keys are sorted and only
# top-level keys start a line with a letter): enough to tell "clean" from
# "changed" without parsing YAML.
_POINTER_HEAD = b"gitsnap:"
_ID_LINE = re.compile(rb"^id: ([0-9a-f]{64})[ \t]*\r?$", re.M)
_LFS_HEAD = b"version https://git-lfs"


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class Message:
    level: str  # "error", "warning" or "info"
    text: str
    hint: str = ""


@dataclass(frozen=True)
class HookResult:
    """What one hook run did. ``exit_code`` is what the hook returns to git."""

    hook: str
    exit_code: int
    messages: list[Message] = field(default_factory=list)
    legacy_exit: int | None = None  # the chained <hook>.legacy's exit code; None: none ran
    restored: list[str] = field(default_factory=list)  # restore: checkpoints rewritten
    kept: list[str] = field(
        default_factory=list
    )  # restore: left alone (unsaved changes, missing objects)
    transfer: TransferResult | None = None  # pre-push: the upload

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _Out:
    """Collects messages; ``failed`` once an error is added."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def error(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("error", text, hint))

    def warn(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("warning", text, hint))

    def info(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("info", text, hint))

    @property
    def failed(self) -> bool:
        return any(m.level == "error" for m in self.messages)


def reads_stdin(name: str) -> bool:
    """Whether the hook takes input on stdin (git's pre-push: one line per pushed ref)."""
    return name in ("pre-push", "push-weights")


# ------------------------------------------------------------------ entry point


@dataclass(frozen=True)
class _Repo:
    root: Path
    git_dir: Path
    hooks_dir: Path


def _discover(cwd: Path) -> _Repo | None:
    """One ``git rev-parse``; None outside a work tree (a bare repository: nothing to do)."""
    proc = gitio.run(
        ["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-path", "hooks"],
        cwd,
        check=False,
    )
    lines = proc.stdout.decode(errors="surrogateescape").splitlines()
    if proc.returncode != 0 or len(lines) < 3:
        return None
    return _Repo(Path(lines[0]), Path(lines[1]), cwd / lines[2])


def run(
    name: str,
    args: Sequence[str] = (),
    *,
    stdin: bytes = b"",
    cwd: Path | None = None,
    progress: Callable[[], Progress | None] | None = None,
) -> HookResult:
    """Run hook ``name`` (a git hook name or one of :data:`CHECKS`) as git would.

    ``stdin`` is what git wrote to the hook (pre-push's ref lines);
    ``progress`` makes a progress display for an upload, called only when
    there is one. Never prints; the CLI renders :attr:`HookResult.messages`.

    Example::

        result = hooks.run("pre-push", ["origin", url], stdin=b"refs/heads/main <sha> refs/heads/main <sha>\\n")
        if not result.ok:
            for m in result.messages:
                print(m.level, m.text, m.hint)
    """
    if name not in NAMES:
        raise UsageError(f"unknown hook {name!r}", hint=f"one of: {', '.join(NAMES)}")
    here = Path.cwd() if cwd is None else Path(cwd)
    repo = _discover(here)
    legacy = _run_legacy(here, repo, name, args, stdin) if name in GIT_HOOKS else None
    if repo is None:
        return HookResult(name, legacy or 0, legacy_exit=legacy)
    if legacy and name in ("pre-commit", "pre-push"):
        # The chained hook already stops the commit or push: do not upload for nothing.
        return HookResult(name, legacy, legacy_exit=legacy)
    result = _dispatch(repo, name, list(args), stdin, progress)
    # post-checkout / post-merge: git reports the chained hook's failure.
    return replace(result, legacy_exit=legacy, exit_code=legacy or result.exit_code)


def _dispatch(  # noqa: PLR0911 - one branch per hook
    repo: _Repo,
    name: str,
    args: list[str],
    stdin: bytes,
    progress: Callable[[], Progress | None] | None,
) -> HookResult:
    if name == "pre-commit":
        return check_commit(repo.root, pointers=True, raw=True, hook=name)
    if name in ("check-pointers", "no-raw-weights"):
        return check_commit(
            repo.root,
            args or None,
            pointers=name == "check-pointers",
            raw=name == "no-raw-weights",
            hook=name,
        )
    if name in ("pre-push", "push-weights"):
        remote_name, remote_url, updates = _push_input(name, args, stdin)
        return push_weights(
            repo.root, remote_name, remote_url, updates, progress=progress, hook=name
        )
    if name == "post-checkout":
        if len(args) >= 3 and args[2] != "1":
            return HookResult(name, 0)  # a file checkout (git checkout -- PATH): HEAD did not move
        previous = args[0] if args else None
        return restore(repo.root, repo.git_dir, previous, hook=name)
    if name == "post-merge":
        return restore(repo.root, repo.git_dir, "ORIG_HEAD", hook=name)
    # "restore", from the framework: post-checkout or post-merge
    if os.environ.get("PRE_COMMIT_CHECKOUT_TYPE", "1") != "1":
        return HookResult(name, 0)
    previous = os.environ.get("PRE_COMMIT_FROM_REF") or "ORIG_HEAD"
    return restore(repo.root, repo.git_dir, previous, hook=name)


def _run_legacy(
    cwd: Path, repo: _Repo | None, name: str, args: Sequence[str], stdin: bytes
) -> int | None:
    """Run ``<hooks dir>/<name>.legacy`` first, as git would have run it; its exit code, or None."""
    if os.environ.get(LEGACY_ENV):
        return None  # we are that legacy hook's child: never chain twice
    hooks_dir = repo.hooks_dir if repo is not None else _bare_hooks_dir(cwd)
    if hooks_dir is None:
        return None
    path = hooks_dir / (name + ".legacy")
    if not os.access(path, os.X_OK) or path.is_dir():
        return None
    from gitsnap.install import is_gitsnap_shim

    if is_gitsnap_shim(path, name):
        return None  # e.g. the pre-commit framework moved our shim there: it would call us again
    env = {**os.environ, LEGACY_ENV: "1"}
    return subprocess.run(
        [os.fspath(path), *args], input=stdin, cwd=cwd, env=env, check=False
    ).returncode


def _bare_hooks_dir(cwd: Path) -> Path | None:
    proc = gitio.run(["rev-parse", "--git-path", "hooks"], cwd, check=False)
    return cwd / proc.stdout.decode().strip() if proc.returncode == 0 else None


def _config(root: Path, key: str, kind: str | None = None) -> str | None:
    args = ["config", *([f"--type={kind}"] if kind else []), "--get", key]
    proc = gitio.run(args, root, check=False)
    if proc.returncode == 1:
        return None  # not set
    if proc.returncode != 0:
        raise GitsnapError(
            f"git config {key} is not a valid {kind or 'value'}: {proc.stderr.decode(errors='replace').strip()}",
            hint=f"fix it with: git config {key} VALUE (or git config --unset {key})",
        )
    return proc.stdout.decode().strip()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _peek_id(data: bytes) -> str | None:
    """The snapshot id of a pointer's bytes without parsing them; None if not a gitsnap pointer."""
    if not data.startswith(_POINTER_HEAD):
        return None
    m = _ID_LINE.search(data)
    return m.group(1).decode() if m else None


def _stat(path: Path) -> os.stat_result | None:
    """The stat-cache key of a checkpoint (a folder's is a fingerprint of its files); None if absent."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        from gitsnap.snapshot import stat_path

        return stat_path(path)
    return st


def _current_id(cache: StatCache, root: Path, rel: str, st: os.stat_result) -> tuple[str, Any]:
    """(snapshot id of the checkpoint on disk, the ingest result if it had to be read, else None)."""
    cached = cache.get(rel, st)
    if cached is not None:
        return cached, None
    from gitsnap import snapshot

    started_ns = time.time_ns()
    ing = snapshot.ingest(root / rel, None, want_stats=False)
    cache.put(rel, st, ing.id, started_ns)
    return ing.id, ing


# ------------------------------------------------------------------ pre-commit


@dataclass(frozen=True)
class _Staged:
    path: str
    mode: str
    blob: str


def _staged(root: Path, files: Sequence[str] | None) -> list[_Staged]:
    """The index entries about to be committed: what changed against HEAD, or the given files' entries."""
    if files is None:
        args = [
            "diff",
            "--cached",
            "--raw",
            "-z",
            "--no-abbrev",
            "--no-renames",
            "--no-ext-diff",
            "--diff-filter=AMT",
        ]
        tokens = gitio.run_index(args, root).stdout.decode(errors="surrogateescape").split("\0")
        out = []
        for meta, path in zip(tokens[::2], tokens[1::2], strict=False):
            fields = meta.lstrip(":").split()
            if len(fields) >= 4:
                out.append(_Staged(path, fields[1], fields[3]))
        return out
    if not files:
        return []
    args = ["--literal-pathspecs", "ls-files", "-s", "-z", "--", *files]
    out = []
    for rec in gitio.run_index(args, root).stdout.decode(errors="surrogateescape").split("\0"):
        if "\t" in rec:
            meta, path = rec.split("\t", 1)
            mode, blob, stage = meta.split()
            if stage == "0":
                out.append(_Staged(path, mode, blob))
    return out


def _blob_sizes(root: Path, blobs: Sequence[str]) -> dict[str, int]:
    if not blobs:
        return {}
    proc = gitio.run(
        ["cat-file", "--batch-check"], root, input="".join(b + "\n" for b in blobs).encode()
    )
    sizes = {}
    for line in proc.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob":
            sizes[parts[0]] = int(parts[2])
    return sizes


def _allowed(root: Path, paths: Sequence[str]) -> set[str]:
    """Paths with the ``gitsnap-allow-raw`` attribute set (read from the index's .gitattributes too)."""
    if not paths:
        return set()
    proc = gitio.run_index(
        ["check-attr", "--cached", "-z", "--stdin", ALLOW_ATTRIBUTE],
        root,
        input="\0".join(paths).encode() + b"\0",
    )
    tokens = proc.stdout.decode(errors="surrogateescape").split("\0")
    return {
        p
        for p, _, v in zip(tokens[::3], tokens[1::3], tokens[2::3], strict=False)
        if v in ("set", "true")
    }


def _max_file_size(root: Path) -> int:
    value = _config(root, "gitsnap.maxFileSize", "int")
    return DEFAULT_MAX_FILE_SIZE if value is None else int(value)


def check_commit(
    root: Path,
    files: Sequence[str] | None = None,
    *,
    pointers: bool = True,
    raw: bool = True,
    hook: str = "pre-commit",
) -> HookResult:
    """The pre-commit checks on the index being committed (``files``: only those index entries)."""
    out = _Out()
    staged = [s for s in _staged(root, files) if s.mode in ("100644", "100755")]
    if raw:
        _check_raw(root, staged, out)
    if pointers:
        staged_pointers = [s for s in staged if s.path.endswith(SUFFIX)]
        _check_pointers(root, staged_pointers, out)
        if files is None:
            _warn_unsaved(root, {s.path for s in staged_pointers}, out)
    if out.failed:
        out.info(
            "commit stopped; fix the above, or bypass this check once with: git commit --no-verify"
        )
        return HookResult(hook, 1, out.messages)
    return HookResult(hook, 0, out.messages)


def _check_raw(root: Path, staged: list[_Staged], out: _Out) -> None:
    candidates = [s for s in staged if not s.path.endswith(SUFFIX)]
    if not candidates:
        return
    limit = _max_file_size(root)
    sizes = _blob_sizes(root, sorted({s.blob for s in candidates}))
    owners = _tracked_checkpoints(root, [s.path for s in candidates])
    flagged: dict[str, tuple[str, str]] = {}
    lfs_check = []
    for s in candidates:
        size = sizes.get(s.blob, 0)
        owner = owners.get(s.path)
        suffix = PurePosixPath(s.path).suffix.lower()
        if owner is not None:
            flagged[s.path] = (
                f"{s.path} is a checkpoint that gitsnap tracks ({owner}{SUFFIX}); staged into git, "
                f"its weights would be stored twice",
                f"git rm --cached -r {owner}  (the pointer keeps it; git snap save {owner} records changes)",
            )
        elif suffix in RAW_WEIGHT_SUFFIXES:
            flagged[s.path] = (
                f"{s.path} is a raw weight file ({suffix}, {_size(size)}) staged into git itself",
                f"git rm --cached {s.path} && git snap save {s.path}  (git snap save writes a small pointer "
                f"to commit instead)",
            )
            if size < 1024:
                lfs_check.append(s)
        elif limit > 0 and size > limit:
            flagged[s.path] = (
                f"{s.path} is {_size(size)}, over gitsnap.maxFileSize ({_size(limit)})",
                f"git rm --cached {s.path} && git snap save {s.path}, or raise the limit: "
                f"git config gitsnap.maxFileSize 100m",
            )
    if not flagged:
        return
    # git-lfs pointers are not weights in git: their bytes live on the LFS server.
    blobs = gitio.cat_blobs(root, [s.blob for s in lfs_check])
    for s in lfs_check:
        data = blobs.get(s.blob)
        if data is not None and data.startswith(_LFS_HEAD):
            flagged.pop(s.path, None)
    allowed = _allowed(root, sorted(flagged))
    for path in sorted(flagged):
        if path not in allowed:
            text, hint = flagged[path]
            out.error(
                text,
                f"{hint}; or, if it belongs in git, set the attribute: echo '{path} {ALLOW_ATTRIBUTE}' >> .gitattributes",
            )


def _index_pointers(root: Path) -> dict[str, str]:
    """``*.snap`` path -> blob of every (unconflicted) entry of the index being committed."""
    proc = gitio.run_index(["ls-files", "-s", "-z", "--", f"*{SUFFIX}"], root)
    entries = {}
    for rec in proc.stdout.decode(errors="surrogateescape").split("\0"):
        if "\t" in rec:
            meta, path = rec.split("\t", 1)
            _, blob, stage = meta.split()
            if stage == "0":
                entries[path] = blob
    return entries


def _tracked_checkpoints(root: Path, paths: Sequence[str]) -> dict[str, str]:
    """path -> the checkpoint it is (or is inside of), for paths whose gitsnap pointer is in the index."""
    pointers = _index_pointers(root)
    if not pointers:
        return {}
    found: dict[str, str] = {}
    for path in paths:
        parts = path.split("/")
        for i in range(len(parts), 0, -1):  # the file itself, then the folders holding it
            candidate = "/".join(parts[:i])
            if candidate + SUFFIX in pointers:
                found[path] = candidate
                break
    if found:  # only gitsnap's pointers count (a Jest snapshot is a *.snap too)
        blobs = gitio.cat_blobs(root, {pointers[c + SUFFIX] for c in found.values()})
        found = {
            p: c
            for p, c in found.items()
            if (blobs.get(pointers[c + SUFFIX]) or b"").startswith(_POINTER_HEAD)
        }
    return found


def _check_pointers(root: Path, staged: list[_Staged], out: _Out) -> None:
    if not staged:
        return
    blobs = gitio.cat_blobs(root, [s.blob for s in staged])
    mine: list[tuple[_Staged, bytes]] = []
    for s in staged:
        data = blobs.get(s.blob)
        if data is not None and data.startswith(_POINTER_HEAD):
            mine.append((s, data))
    if not mine:
        return  # other tools' *.snap files (Jest snapshots, ...): not ours to judge
    from gitsnap.errors import PointerError
    from gitsnap.pointer import loads
    from gitsnap.statcache import StatCache
    from gitsnap.workspace import Workspace

    ws = Workspace.discover(root)
    if ws.dvc_dir is None:
        out.error(
            f"{len(mine)} staged pointer(s) ({', '.join(s.path for s, _ in mine[:3])}) but this repository "
            "is not set up for gitsnap, so their weights are nowhere",
            "git snap init, then git snap save each checkpoint",
        )
        return
    store = ws.store
    cache = StatCache(ws.git_dir)
    for s, data in mine:
        rel = s.path[: -len(SUFFIX)]
        try:
            ptr = loads(data, source=f"{s.path} (staged)")
        except PointerError as err:
            out.error(str(err), err.hint)
            continue
        oids = ptr.oids()
        missing = [oid for oid in oids if not store.has(oid)]
        if missing:
            out.error(
                f"{s.path}: {len(missing)} of {len(oids)} object(s) of snapshot {ptr.id[:12]} are not in "
                "the local store; the commit would point at weights nobody can restore",
                f"git snap fetch (if they were pushed from elsewhere), or git snap save {rel} "
                "(if you still have the checkpoint)",
            )
            continue
        st = _stat(root / rel)
        if st is None:
            continue  # no checkpoint here to compare with
        try:
            current, _ = _current_id(cache, root, rel, st)
        except GitsnapError as err:
            out.error(
                f"{rel}: cannot read the checkpoint to compare it with {s.path}: {err}", err.hint
            )
            continue
        if current == ptr.id:
            continue
        try:
            worktree_id = _peek_id((root / s.path).read_bytes())
        except OSError:
            worktree_id = None
        if worktree_id == current:
            out.error(
                f"{s.path} is staged at snapshot {ptr.id[:12]}, but the pointer in the work tree records "
                f"{current[:12]}, which is the checkpoint on disk",
                f"git add {s.path}",
            )
        else:
            out.error(
                f"{rel} changed since its pointer was saved: the checkpoint is {current[:12]}, the staged "
                f"pointer records {ptr.id[:12]}",
                f"git snap save {rel} && git add {s.path}",
            )
    cache.save()


def _warn_unsaved(root: Path, staged: set[str], out: _Out) -> None:
    """Warn (not fail) about checkpoints that changed while their pointer is left out of the commit.

    The commit is consistent -- it keeps recording the older snapshot, whose
    weights are stored -- but the user may have meant to save first.
    """
    entries = [(path, blob) for path, blob in _index_pointers(root).items() if path not in staged]
    if not entries:
        return
    from gitsnap.statcache import StatCache

    blobs = gitio.cat_blobs(root, [blob for _, blob in entries])
    cache: StatCache | None = None
    for path, blob in entries:
        recorded = _peek_id(blobs.get(blob) or b"")
        rel = path[: -len(SUFFIX)]
        st = _stat(root / rel)
        if recorded is None or st is None:
            continue
        cache = cache or StatCache(_git_dir(root))
        try:
            current, _ = _current_id(cache, root, rel, st)
        except GitsnapError:
            continue
        if current != recorded:
            out.warn(
                f"{rel} changed since its pointer was saved; this commit keeps snapshot {recorded[:12]}",
                f"if the new weights belong in it: git snap save {rel} && git add {path} && git commit --amend",
            )
    if cache is not None:
        cache.save()


def _git_dir(root: Path) -> Path:
    return Path(gitio.out(["rev-parse", "--absolute-git-dir"], root))


# ------------------------------------------------------------------ pre-push


@dataclass(frozen=True)
class RefUpdate:
    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def _zero(sha: str) -> bool:
    return not sha.strip("0")


def parse_push_lines(stdin: bytes) -> list[RefUpdate]:
    """git's pre-push input: ``<local ref> <local sha> <remote ref> <remote sha>`` per line."""
    updates = []
    for line in stdin.decode(errors="surrogateescape").splitlines():
        parts = line.rsplit(maxsplit=3)
        if len(parts) == 4:
            updates.append(RefUpdate(*parts))
    return updates


def _push_input(name: str, args: Sequence[str], stdin: bytes) -> tuple[str, str, list[RefUpdate]]:
    remote_name = args[0] if args else os.environ.get("PRE_COMMIT_REMOTE_NAME", "")
    remote_url = args[1] if len(args) > 1 else os.environ.get("PRE_COMMIT_REMOTE_URL", remote_name)
    updates = parse_push_lines(stdin)
    if not updates and name == "push-weights":
        # The pre-commit framework read stdin itself and passes one ref range on:
        # FROM_REF..TO_REF, or only the local branch when the remote has none of it.
        to_ref = os.environ.get("PRE_COMMIT_TO_REF") or os.environ.get("PRE_COMMIT_LOCAL_BRANCH")
        if to_ref:
            from_ref = os.environ.get("PRE_COMMIT_FROM_REF") or "0" * 40
            remote_ref = os.environ.get("PRE_COMMIT_REMOTE_BRANCH", "")
            updates = [
                RefUpdate(
                    os.environ.get("PRE_COMMIT_LOCAL_BRANCH", to_ref), to_ref, remote_ref, from_ref
                )
            ]
    return remote_name, remote_url, updates


def _commit_or_none(root: Path, rev: str) -> str | None:
    proc = gitio.run(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        root,
        check=False,
    )
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def pushed_snapshots(
    root: Path, remote_name: str, updates: Sequence[RefUpdate]
) -> list[SnapshotRef]:
    """Every snapshot (pointer version) in the pushed commits that the git remote does not have yet.

    The commits are ``git rev-list LOCAL --not --remotes=NAME REMOTE_SHA...``
    (git-lfs's range); a pointer version in any of them is in the diff of one
    of them against its first parent, or already in a commit the remote has.
    """
    tips, known = [], []
    for u in updates:
        if _zero(u.local_sha):
            continue  # a deletion pushes nothing
        tip = _commit_or_none(root, u.local_sha)
        if tip is None:
            continue  # a tag of a tree or blob: no snapshots
        tips.append(tip)
        if not _zero(u.remote_sha) and _commit_or_none(root, u.remote_sha):
            known.append(u.remote_sha)
    if not tips:
        return []
    rev_args = [*tips, "--not", *known]
    if remote_name:
        rev_args.append(f"--remotes={remote_name}")
    versions = gitio.snap_blob_versions(root, rev_args)
    blobs = gitio.cat_blobs(root, list(versions))
    found = []
    for blob, (path, commit) in versions.items():
        data = blobs.get(blob)
        if data is None or not data.startswith(_POINTER_HEAD):
            continue
        from gitsnap.pointer import loads
        from gitsnap.transfer import SnapshotRef

        rel = path[: -len(SUFFIX)]
        found.append(SnapshotRef(rel, commit, loads(data, source=f"{commit[:12]}:{path}")))
    return found


def push_weights(
    root: Path,
    remote_name: str,
    remote_url: str,
    updates: Sequence[RefUpdate],
    *,
    progress: Callable[[], Progress | None] | None = None,
    hook: str = "pre-push",
) -> HookResult:
    """Upload what the pushed commits' snapshots need to the DVC remote, then the notes; exit 1 if that fails."""
    out = _Out()
    try:
        refs = pushed_snapshots(root, remote_name, updates)
    except GitsnapError as err:
        out.error(f"cannot read the snapshots of the pushed commits: {err}", err.hint)
        return _push_stopped(hook, out)
    transfer_result = None
    if refs:
        transfer_result = _upload(root, refs, out, progress)
        if out.failed:
            return _push_stopped(hook, out)
    pushes_notes = any(u.remote_ref == NOTES_REF for u in updates)
    if updates and not pushes_notes and any(not _zero(u.local_sha) for u in updates):
        _push_notes(root, remote_name, out)
    return HookResult(hook, 0, out.messages, transfer=transfer_result)


def _upload(
    root: Path, refs: list[SnapshotRef], out: _Out, progress: Callable[[], Progress | None] | None
) -> TransferResult | None:
    from gitsnap import transfer
    from gitsnap.remote import open_remote
    from gitsnap.workspace import Workspace

    ws = Workspace.discover(root)
    paths = sorted({r.path for r in refs})
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    if ws.dvc_dir is None:
        out.error(
            f"the pushed commits hold snapshots of {shown}, but this repository has no DVC project "
            "to upload their weights to",
            "git snap init --remote URL, then git push again",
        )
        return None
    try:
        remote = open_remote(ws.dvc_dir, _config(root, "gitsnap.remote"), None)
        result = transfer.push(
            root, ws.store, remote, refs, progress=progress() if progress else None, notes=False
        )
    except GitsnapError as err:
        partial = getattr(err, "result", None)
        out.error(f"could not upload the weights of {shown} to the DVC remote: {err}", err.hint)
        return partial
    if result.objects_transferred:
        out.info(
            f"uploaded {result.objects_transferred} object(s) ({_size(result.bytes_transferred)}) of "
            f"{result.snapshots} snapshot(s) to DVC remote '{result.remote}'"
            + (f"; {result.objects_skipped} already there" if result.objects_skipped else "")
        )
    return result


def _push_notes(root: Path, remote_name: str, out: _Out) -> None:
    if (
        gitio.run(["rev-parse", "--verify", "--quiet", NOTES_REF], root, check=False).returncode
        != 0
    ):
        return  # no metrics notes here
    from gitsnap import transfer

    state = transfer.push_notes(root, remote_name)
    if state == "pushed":
        out.info(f"pushed the metrics notes ({NOTES_REF})")
    elif state == "no-origin":
        out.warn(
            f"the metrics notes ({NOTES_REF}) were not pushed: '{remote_name}' is not a named git remote",
            f"git push {remote_name} {NOTES_REF}",
        )
    elif state.startswith("failed"):
        # The weights are up; a notes ref the server refuses must not block every push.
        out.warn(
            f"the metrics notes ({NOTES_REF}) were not pushed: {state[len('failed: ') :]}",
            "git snap push",
        )


def _push_stopped(hook: str, out: _Out) -> HookResult:
    out.info(
        "push stopped, so that no commit on the git remote points at weights the weight remote lacks; "
        "fix the above and push again (git push --no-verify skips this check)"
    )
    return HookResult(hook, 1, out.messages)


# ------------------------------------------------------------------ post-checkout / post-merge


def restore(
    root: Path, git_dir: Path, previous: str | None = None, *, hook: str = "post-checkout"
) -> HookResult:
    """Make each checkpoint match its pointer in the work tree, from the local store.

    ``previous`` is the commit the work tree came from (post-checkout's first
    argument, ``ORIG_HEAD`` after a merge): a checkpoint that still holds its
    snapshot there, with every object stored, is saved and may be replaced.
    Anything else that differs from its pointer has unsaved changes and is
    kept, with a warning. Never fails the checkout: problems are warnings.
    """
    from gitsnap.statcache import StatCache

    cache = StatCache(git_dir)
    todo: list[tuple[str, bytes, os.stat_result | None]] = []
    for pointer_path in _index_pointers(root):
        rel = pointer_path[: -len(SUFFIX)]
        try:
            data = (root / pointer_path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue  # deleted in the work tree
        if not data.startswith(_POINTER_HEAD):
            continue
        snapshot_id = _peek_id(data)
        st = _stat(root / rel)
        if st is not None and snapshot_id is not None and cache.get(rel, st) == snapshot_id:
            continue
        todo.append((rel, data, st))
    if not todo:
        return HookResult(hook, 0)
    out = _Out()
    try:
        restored, kept = _restore(root, cache, todo, previous, out)
    except GitsnapError as err:
        out.warn(f"checkpoints were not restored: {err}", err.hint or "git snap checkout")
        restored, kept = [], [rel for rel, _, _ in todo]
    cache.save()
    return HookResult(hook, 0, out.messages, restored=restored, kept=kept)


def _restore(
    root: Path,
    cache: StatCache,
    todo: list[tuple[str, bytes, os.stat_result | None]],
    previous: str | None,
    out: _Out,
) -> tuple[list[str], list[str]]:
    from gitsnap import snapshot
    from gitsnap.errors import PointerError
    from gitsnap.pointer import loads
    from gitsnap.workspace import Workspace

    ws = Workspace.discover(root)
    if ws.dvc_dir is None:
        out.warn(
            "checkpoints were not restored: this repository is not set up for gitsnap",
            "git snap init",
        )
        return [], [rel for rel, _, _ in todo]
    store = ws.store
    before = _pointers_at(root, previous, [rel for rel, _, _ in todo])
    ready: list[tuple[str, Pointer]] = []
    absent: list[tuple[str, Pointer]] = []
    kept: list[str] = []
    for rel, data, st in todo:
        try:
            ptr = loads(data, source=rel + SUFFIX)
        except PointerError as err:
            out.warn(f"{rel} not restored: {err}", err.hint)
            kept.append(rel)
            continue
        if st is not None:
            current, ing = _current_id(cache, root, rel, st)
            if current == ptr.id:
                continue  # already right (the stat cache had not seen it yet)
            if not _saved(root, rel, current, ing, before.get(rel), store):
                out.warn(
                    f"kept {rel}: it has changes that are not saved, so it was not replaced by "
                    f"snapshot {ptr.id[:12]} of the new HEAD",
                    f"git snap save {rel} to keep them, or git snap checkout --force {rel} to discard them",
                )
                kept.append(rel)
                continue
        (absent if snapshot.missing_objects(ptr, store) else ready).append((rel, ptr))
    if absent:
        auto = _config(root, "gitsnap.autoFetch", "bool") == "true"
        if auto:
            _fetch(root, ws, absent, out)
        still = [(rel, p) for rel, p in absent if snapshot.missing_objects(p, store)]
        missing = {rel for rel, _ in still}
        ready += [(rel, p) for rel, p in absent if rel not in missing]
        if still:
            names = ", ".join(rel for rel, _ in still)
            out.warn(
                f"not restored (objects not in the local store): {names}",
                "git snap pull"
                + ("" if auto else "  (or git config gitsnap.autoFetch true to fetch on checkout)"),
            )
            kept += [rel for rel, _ in still]
    restored = []
    for rel, ptr in ready:
        started_ns = time.time_ns()
        try:
            snapshot.restore(ptr, store, root / rel)
        except GitsnapError as err:
            out.warn(f"{rel} not restored: {err}", err.hint)
            kept.append(rel)
            continue
        cache.put(rel, snapshot.stat_path(root / rel), ptr.id, started_ns)
        out.info(f"restored {rel} (snapshot {ptr.id[:12]}, {_size(ptr.size)})")
        restored.append(rel)
    return restored, kept


def _pointers_at(root: Path, rev: str | None, rels: Sequence[str]) -> dict[str, Pointer]:
    """The pointers of ``rels`` at ``rev`` (skipped when ``rev`` is unknown: a clone's all-zero "previous")."""
    if not rev or _zero(rev) or _commit_or_none(root, rev) is None:
        return {}
    from gitsnap.pointer import loads

    specs = {rel: f"{rev}:{rel}{SUFFIX}" for rel in rels}
    blobs = gitio.cat_blobs(root, specs.values())
    out = {}
    for rel, spec in specs.items():
        data = blobs.get(spec)
        if data is not None and data.startswith(_POINTER_HEAD):
            try:
                out[rel] = loads(data, source=spec)
            except GitsnapError:
                continue
    return out


def _saved(  # noqa: PLR0917
    root: Path, rel: str, current: str, ing: Any, before: Pointer | None, store: Any
) -> bool:
    """True when every byte of the checkpoint on disk is in the store (replacing it loses nothing)."""
    if before is not None and before.id == current:
        return all(store.has(oid) for oid in before.oids())
    if ing is None:
        from gitsnap import snapshot

        ing = snapshot.ingest(root / rel, None, want_stats=False)
    return all(store.has(e.oid) for e in [*ing.tensors, *ing.blobs] if not e.view)


def _fetch(root: Path, ws: Any, absent: list[tuple[str, Pointer]], out: _Out) -> None:
    from gitsnap import transfer
    from gitsnap.remote import open_remote

    refs = [transfer.SnapshotRef(rel, None, ptr) for rel, ptr in absent]
    name = _config(root, "gitsnap.remote")
    try:
        result = transfer.fetch(
            root, ws.store, lambda: open_remote(ws.dvc_dir, name, None), refs, notes=False
        )
    except GitsnapError as err:
        out.warn(f"gitsnap.autoFetch: could not fetch the missing objects: {err}", err.hint)
        return
    if result.objects_transferred:
        out.info(
            f"fetched {result.objects_transferred} object(s) ({_size(result.bytes_transferred)}) "
            f"from DVC remote '{result.remote}'"
        )


__all__ = [
    "CHECKS",
    "GIT_HOOKS",
    "NAMES",
    "RAW_WEIGHT_SUFFIXES",
    "HookResult",
    "Message",
    "RefUpdate",
    "check_commit",
    "parse_push_lines",
    "push_weights",
    "pushed_snapshots",
    "reads_stdin",
    "restore",
    "run",
]
