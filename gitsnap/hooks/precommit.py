"""The pre-commit checks (``check-pointers`` and ``no-raw-weights``) on the index being committed.

Reads go through :func:`gitsnap.gitio.run_index`, which keeps the
``GIT_INDEX_FILE`` git names: ``git commit -a`` and ``git commit PATH``
commit a temporary index, not the default one. A commit that stages no
pointer and no weight file costs a ``git diff --cached`` and, when it stages
anything, one size check and one listing of the index's pointers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gitsnap import gitio
from gitsnap.errors import GitsnapError
from gitsnap.hooks.result import HookResult, Out
from gitsnap.pointer.peek import SUFFIX, is_pointer, pointer_bytes
from gitsnap.working import (
    checkpoint_stat,
    current_id,
    holds_stored_snapshot,
    human_size,
    peek_id,
)

if TYPE_CHECKING:
    from gitsnap.pointer import Pointer
    from gitsnap.statcache import StatCache
    from gitsnap.store import ObjectStore

RAW_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".gguf", ".onnx")
DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
ALLOW_ATTRIBUTE = "gitsnap-allow-raw"
ALLOW_UNSAFE_ATTRIBUTE = "gitsnap-allow-unsafe-pickle"
_LFS_HEAD = b"version https://git-lfs"


@dataclass(frozen=True)
class _Staged:
    path: str
    mode: str
    blob: str


class _Index:
    """The index's pointer entries, listed once per hook run (both checks may need them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pointers: dict[str, str] | None = None

    @property
    def pointers(self) -> dict[str, str]:
        if self._pointers is None:
            self._pointers = gitio.index_pointers(self.root)
        return self._pointers


def check_commit(
    root: Path,
    files: Sequence[str] | None = None,
    *,
    pointers: bool = True,
    raw: bool = True,
    hook: str = "pre-commit",
    git_dir: Path | None = None,
) -> HookResult:
    """The pre-commit checks on the index being committed (``files``: only those index entries).

    ``git_dir`` saves a ``git rev-parse`` when the caller knows it.
    """
    out = Out()
    staged = [s for s in _staged(root, files) if s.mode in ("100644", "100755")]
    index = _Index(root)
    if raw:
        _check_raw(root, staged, index, out)
    if pointers:
        staged_pointers = [s for s in staged if s.path.endswith(SUFFIX)]
        _check_pointers(root, staged_pointers, out)
        if files is None:
            _warn_unsaved(root, git_dir, {s.path for s in staged_pointers}, index, out)
    if out.failed:
        out.info(
            "commit stopped; fix the above, or bypass this check once with: git commit --no-verify"
        )
        return HookResult(hook, 1, out.messages)
    return HookResult(hook, 0, out.messages)


def _staged(root: Path, files: Sequence[str] | None) -> list[_Staged]:
    """The index entries about to be committed: what changed against HEAD, or ``files``' entries."""
    if files is None:
        args = [
            "diff", "--cached", "--raw", "-z", "--no-abbrev", "--no-renames", "--no-ext-diff",
            "--diff-filter=AMT",
        ]  # fmt: skip
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


def _allowed(root: Path, paths: Sequence[str], attribute: str = ALLOW_ATTRIBUTE) -> set[str]:
    """Paths with ``attribute`` set (the index's .gitattributes count too)."""
    if not paths:
        return set()
    proc = gitio.run_index(
        ["check-attr", "--cached", "-z", "--stdin", attribute],
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
    value = gitio.config_get(root, "gitsnap.maxFileSize", "int")
    return DEFAULT_MAX_FILE_SIZE if value is None else int(value)


def _check_raw(root: Path, staged: list[_Staged], index: _Index, out: Out) -> None:
    candidates = [s for s in staged if not s.path.endswith(SUFFIX)]
    if not candidates:
        return
    limit = _max_file_size(root)
    sizes = _blob_sizes(root, sorted({s.blob for s in candidates}))
    owners = _tracked_checkpoints(root, [s.path for s in candidates], index)
    flagged: dict[str, tuple[str, str]] = {}
    lfs_check = []
    for s in candidates:
        size = sizes.get(s.blob, 0)
        owner = owners.get(s.path)
        suffix = PurePosixPath(s.path).suffix.lower()
        if owner is not None:
            flagged[s.path] = (
                f"{s.path} is a checkpoint that gitsnap tracks ({owner}{SUFFIX}); staged into "
                "git, its weights would be stored twice",
                f"git rm --cached -r {owner}  (the pointer keeps it; "
                f"git snap save {owner} records changes)",
            )
        elif suffix in RAW_WEIGHT_SUFFIXES:
            flagged[s.path] = (
                f"{s.path} is a raw weight file ({suffix}, {human_size(size)}) "
                "staged into git itself",
                f"git rm --cached {s.path} && git snap save {s.path}  "
                "(git snap save writes a small pointer to commit instead)",
            )
            if size < 1024:
                lfs_check.append(s)
        elif limit > 0 and size > limit:
            flagged[s.path] = (
                f"{s.path} is {human_size(size)}, over gitsnap.maxFileSize ({human_size(limit)})",
                f"git rm --cached {s.path} && git snap save {s.path}, or raise the limit: "
                "git config gitsnap.maxFileSize 100m",
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
                f"{hint}; or, if it belongs in git, set the attribute: "
                f"echo '{path} {ALLOW_ATTRIBUTE}' >> .gitattributes",
            )


def _tracked_checkpoints(root: Path, paths: Sequence[str], index: _Index) -> dict[str, str]:
    """path -> the checkpoint it is (or is inside of), for paths whose pointer is in the index."""
    pointers = index.pointers
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
            p: c for p, c in found.items() if is_pointer(blobs.get(pointers[c + SUFFIX]) or b"")
        }
    return found


def _check_pointers(root: Path, staged: list[_Staged], out: Out) -> None:
    if not staged:
        return
    blobs = gitio.cat_blobs(root, [s.blob for s in staged])
    mine: list[tuple[_Staged, bytes]] = []
    for s in staged:
        data = blobs.get(s.blob)
        if data is not None and is_pointer(data):
            mine.append((s, data))
    if not mine:
        return  # other tools' *.snap files (Jest snapshots, ...): not ours to judge
    from gitsnap.errors import PointerError
    from gitsnap.pointer import loads
    from gitsnap.statcache import StatCache
    from gitsnap.workspace import Workspace

    ws = Workspace.discover(root)
    if ws.dvc_dir is None:
        names = ", ".join(s.path for s, _ in mine[:3])
        out.error(
            f"{len(mine)} staged pointer(s) ({names}) but this repository is not set up for "
            "gitsnap, so their weights are nowhere",
            "git snap init, then git snap save each checkpoint",
        )
        return
    store = ws.store
    cache = StatCache(ws.git_dir)
    unsafe: dict[str, list[tuple[str, list[str]]]] = {}
    for s, data in mine:
        rel = s.path[: -len(SUFFIX)]
        try:
            ptr = loads(data, source=f"{s.path} (staged)")
        except PointerError as err:
            out.error(str(err), err.hint)
            continue
        if b"\npickle:" in data:  # only pointers of pickled checkpoints record globals
            found = _unsafe_files(ptr)
            if found:
                unsafe[rel] = found
        oids = ptr.oids()
        missing = [oid for oid in oids if not store.has(oid)]
        if missing:
            out.error(
                f"{s.path}: {len(missing)} of {len(oids)} object(s) of snapshot {ptr.id[:12]} "
                "are not in the local store; the commit would point at weights nobody can restore",
                "git snap fetch (if they were pushed from elsewhere), "
                f"or git snap save {rel} if the checkpoint on disk is that snapshot",
            )
            continue
        st = checkpoint_stat(root / rel)
        if st is None:
            continue  # no checkpoint here to compare with
        try:
            current, ing = current_id(cache, root, rel, st)
        except GitsnapError as err:
            out.error(
                f"{rel}: cannot read the checkpoint to compare it with {s.path}: {err}", err.hint
            )
            continue
        if current == ptr.id:
            continue
        try:
            worktree_id = peek_id(pointer_bytes(root / s.path))
        except OSError:
            worktree_id = None
        if worktree_id == current:
            out.error(
                f"{s.path} is staged at snapshot {ptr.id[:12]}, but the pointer in the work tree "
                f"records {current[:12]}, which is the checkpoint on disk",
                f"git add {s.path}",
            )
        elif holds_stored_snapshot(cache, root, rel, current, store, ing=ing):
            # git moved the pointer (checkout --theirs, checkout REV -- PATH.snap, reset):
            # the commit is sound; only the checkpoint lags, and saving it would undo the move.
            out.warn(
                f"{rel} on disk is snapshot {current[:12]}, not the {ptr.id[:12]} that "
                f"{s.path} records (both stored); the commit records {ptr.id[:12]}",
                f"git snap checkout {rel} restores its weights (the post-commit hook does "
                "when installed)",
            )
        else:
            out.error(
                f"{rel} changed since its pointer was saved: the checkpoint is {current[:12]}, "
                f"the staged pointer records {ptr.id[:12]}",
                f"git snap save {rel} && git add {s.path} to commit the checkpoint on disk, "
                f"or git snap checkout --force {rel} to discard its changes and commit "
                f"{ptr.id[:12]}",
            )
    cache.save()
    _check_unsafe(root, unsafe, out)


def _unsafe_files(ptr: Pointer) -> list[tuple[str, list[str]]]:
    from gitsnap import pickle_policy

    found = []
    for path, rec in ptr.pickle_files():
        names = pickle_policy.unsafe_names(rec)
        if names:
            found.append((path, names))
    return found


def _check_unsafe(root: Path, unsafe: dict[str, list[tuple[str, list[str]]]], out: Out) -> None:
    """Refuse pointers of checkpoints whose pickle runs code, unless the path is allowed.

    Allowed: the ``gitsnap-allow-unsafe-pickle`` attribute on the checkpoint or
    its pointer (``.gitattributes``), or a glob of ``allow_unsafe_pickle`` in
    ``.gitsnap.yaml`` matching the checkpoint path.
    """
    if not unsafe:
        return
    from gitsnap import pickle_policy

    asked = sorted({p for rel in unsafe for p in (rel, rel + SUFFIX)})
    by_attribute = _allowed(root, asked, ALLOW_UNSAFE_ATTRIBUTE)
    globs = pickle_policy.allowed_globs(root)
    for rel in sorted(unsafe):
        if rel in by_attribute or rel + SUFFIX in by_attribute:
            continue
        if any(pickle_policy.glob_matches(g, rel) for g in globs):
            continue
        for path, names in unsafe[rel]:
            err = pickle_policy.refusal(
                path,
                names,
                "inspect it; if you trust it, allow it: "
                f"echo '{rel} {ALLOW_UNSAFE_ATTRIBUTE}' >> .gitattributes "
                f"(or list it under allow_unsafe_pickle: in .gitsnap.yaml)",
            )
            out.error(err.message, err.hint)


def _warn_unsaved(
    root: Path, git_dir: Path | None, staged: set[str], index: _Index, out: Out
) -> None:
    """Warn (not fail) about checkpoints that changed while their pointer is left out of the commit.

    The commit is consistent -- it keeps recording the older snapshot, whose
    weights are stored -- but the user may have meant to save first.
    """
    entries = [(path, blob) for path, blob in index.pointers.items() if path not in staged]
    if not entries:
        return
    from gitsnap.statcache import StatCache

    blobs = gitio.cat_blobs(root, [blob for _, blob in entries])
    cache: StatCache | None = None
    store: ObjectStore | None = None
    for path, blob in entries:
        recorded = peek_id(blobs.get(blob) or b"")
        rel = path[: -len(SUFFIX)]
        st = checkpoint_stat(root / rel)
        if recorded is None or st is None:
            continue
        if cache is None:
            if git_dir is None:
                git_dir = Path(gitio.out(["rev-parse", "--absolute-git-dir"], root))
            cache = StatCache(git_dir)
        try:
            current, ing = current_id(cache, root, rel, st)
        except GitsnapError:
            continue
        if current == recorded:
            continue
        if store is None:
            from gitsnap.workspace import Workspace

            store = Workspace.discover(root).store
        if holds_stored_snapshot(cache, root, rel, current, store, ing=ing):
            out.warn(
                f"{rel} on disk is snapshot {current[:12]}, not the {recorded[:12]} its pointer "
                "records (both stored); this commit keeps the pointer",
                f"git snap checkout {rel} restores the pointer's weights",
            )
        else:
            out.warn(
                f"{rel} changed since its pointer was saved; this commit keeps snapshot "
                f"{recorded[:12]}",
                f"if the new weights belong in it: git snap save {rel} && git add {path} "
                "&& git commit --amend",
            )
    if cache is not None:
        cache.save()
