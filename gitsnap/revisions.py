"""Which snapshots at which revision: the one query every command and hook asks.

A revision is anything git understands (``HEAD~2``, ``main``, a commit id)
or a registry reference (``NAME@v1.2.0``, ``NAME@latest``, ``NAME#prod``),
which stands for the commit the registry tag names (and for that model's
checkpoint). The pointer blobs of one revision are read with **one**
``git ls-files`` and **one** ``git cat-file --batch``
(:meth:`gitsnap.workspace.Workspace.pointer_blobs`); a :class:`Parser` parses
each distinct pointer text once per command, however many revisions (or the
work tree) hold it.

Light on import, like :mod:`gitsnap.gitio`: the hooks use it, and the
pointer reader (YAML) and the registry are imported only when needed
(DESIGN D10).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio
from gitsnap.errors import GitsnapError, PointerError, StorageError, UsageError
from gitsnap.pointer.peek import HEAD as POINTER_HEAD
from gitsnap.pointer.peek import SUFFIX, pointer_bytes
from gitsnap.problems import ItemProblem, collecting

if TYPE_CHECKING:
    from gitsnap.pointer import Entry, Pointer
    from gitsnap.registry import ModelRef
    from gitsnap.workspace import Workspace


# ------------------------------------------------------------------ revisions


def model_ref(ws: Workspace, rev: str | None) -> ModelRef | None:
    """``NAME@v1.2.0`` / ``NAME@latest`` / ``NAME#prod`` as a registry reference; None otherwise.

    A plain revision has neither ``@`` nor ``#`` and never pays for reading tags.
    """
    if rev is None or ("@" not in rev and "#" not in rev):
        return None
    from gitsnap import registry

    return registry.resolve(ws, rev) if registry.looks_like_ref(rev) else None


def to_git(ws: Workspace, rev: str) -> str:
    """A revision git understands: a registry reference becomes its commit."""
    ref = model_ref(ws, rev)
    return ref.commit if ref is not None else rev


def commit_of(ws: Workspace, rev: str) -> str:
    """The commit id of ``rev`` (registry references included); GitError if there is none."""
    ref = model_ref(ws, rev)
    return ref.commit if ref is not None else gitio.resolve_commit(ws.root, rev)


@dataclass(frozen=True)
class Located:
    """A checkpoint the user named: ``REV:PATH`` (at a revision) or ``PATH`` (the work tree)."""

    rev: str | None  # None: the work tree
    path: str  # repository-relative checkpoint path

    def label(self, display: str) -> str:
        """How a view names this side: ``REV:PATH``, or ``PATH (working tree)``."""
        return f"{self.rev}:{display}" if self.rev is not None else f"{display} (working tree)"


def split_rev_path(word: str) -> tuple[str, str] | None:
    """git's ``REV:PATH`` split at the first colon: (REV, PATH), or None when there is none.

    As in git, a colon inside ``@{...}`` (``HEAD@{2026-01-05 10:00}``) belongs
    to the revision, and ``:/TEXT`` (the commit whose message matches) is a
    revision, not a path. REV is ``""`` for git's ``:PATH`` (the index).
    """
    if word.startswith(":/"):
        return None
    start = word.find("}", word.find("@{")) + 1 if "@{" in word else 0
    i = word.find(":", start)
    return None if i < 0 else (word[:i], word[i + 1 :])


def locate(ws: Workspace, word: str) -> Located:
    """The checkpoint ``word`` names: ``REV:PATH`` or a work-tree ``PATH``.

    As in git, the PATH of ``REV:PATH`` is relative to the repository's top
    unless it starts with ``./`` or ``../`` (then to the current directory); a
    work-tree PATH is relative to the current directory. A trailing
    ``.snap`` names the same checkpoint. A registry reference alone
    (``NAME@v1.2.0``, ``NAME#prod``) that names no file is that model's
    checkpoint at its commit.
    """
    parts = split_rev_path(word)
    if parts is None:
        model = None if (ws.cwd / word).exists() else model_ref(ws, word)
        return Located(word, model.path) if model is not None else Located(None, ws.relpath(word))
    rev, path = parts
    if not rev:
        raise UsageError(
            f"{word}: ':PATH' names git's index, which gitsnap does not read",
            hint="write REV:PATH for a commit's snapshot, or PATH alone for the work tree's",
        )
    if not path:
        raise UsageError(
            f"{word}: no checkpoint path after the revision",
            hint=f"{rev}:PATH, e.g. {rev}:ckpts/checkpoint-500",
        )
    relative = path in {".", ".."} or path.startswith(("./", "../"))
    return Located(rev, ws.relpath(path if relative else ws.root / path))


def is_zero(sha: str) -> bool:
    """git's all-zero object id: "no commit" (a new branch, a deletion, a fresh clone)."""
    return not sha.strip("0")


def commit_or_none(root: Path, rev: str) -> str | None:
    """The commit ``rev`` names, or None when it names none (unknown, a tree, the zero id)."""
    proc = gitio.run(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        root,
        check=False,
    )
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def select(all_paths: Iterable[str], wanted: Sequence[str], *, within: bool = False) -> list[str]:
    """The checkpoint paths a user's path arguments select (a folder selects what is below it).

    ``within``: a path inside a folder checkpoint (``ckpt/model.safetensors``) selects
    that checkpoint too (``diff`` then limits it to that file: :func:`inside`).
    """
    if not wanted:
        return list(all_paths)
    return [
        rel
        for rel in all_paths
        if any(
            w in (".", rel)
            or rel.startswith(w.rstrip("/") + "/")
            or (within and w.startswith(rel + "/"))
            for w in wanted
        )
    ]


def inside(rel: str, wanted: Sequence[str]) -> list[str] | None:
    """The paths inside checkpoint ``rel`` that ``wanted`` names (``["model.safetensors"]``),
    relative to it; None when a path selects the whole checkpoint (or none is given)."""
    if not wanted or select([rel], wanted):
        return None
    return sorted({w[len(rel) + 1 :] for w in wanted if w.startswith(rel + "/")})


# ------------------------------------------------------------------ pointer blobs


def blobs_at(
    ws: Workspace, commit: str, wanted: Sequence[str] = (), *, within: bool = False
) -> dict[str, bytes]:
    """Checkpoint path -> raw pointer of the selected checkpoints at ``commit`` (one cat-file)."""
    found = ws.pointer_blobs(commit)
    return {rel: found[rel] for rel in select(found, wanted, within=within)}


def blobs_and_files_at(
    ws: Workspace, commit: str, wanted: Sequence[str], files: Sequence[str], *, within: bool = False
) -> tuple[dict[str, bytes], dict[str, bytes | None]]:
    """:func:`blobs_at`, and the bytes of ``files`` at ``commit``, with the same cat-file."""
    found, extra = ws.pointer_blobs_with(commit, files)
    return {rel: found[rel] for rel in select(found, wanted, within=within)}, extra


def blob_at(ws: Workspace, commit: str, rel: str) -> bytes | None:
    """The raw pointer of checkpoint ``rel`` at ``commit``, or None when it has none there."""
    spec = f"{commit}:{rel}{SUFFIX}"
    return gitio.cat_blobs(ws.root, [spec]).get(spec)


def worktree_blobs(
    ws: Workspace, wanted: Sequence[str] = (), *, within: bool = False
) -> dict[str, bytes]:
    """Checkpoint path -> raw pointer of the selected checkpoints in the work tree.

    A pointer deleted in the work tree (still in the index) is left out; a
    pointer path that is a folder is a PointerError.
    """
    out: dict[str, bytes] = {}
    for rel in select(ws.pointer_paths(), wanted, within=within):
        try:
            out[rel] = pointer_bytes(ws.abspath(rel + SUFFIX))
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            raise PointerError(f"{rel}{SUFFIX} is a directory, not a pointer") from None
    return out


def read_blobs(root: Path, blobs: Sequence[str]) -> dict[str, bytes]:
    """Blob id -> bytes, all of them: a blob git cannot read is a StorageError.

    For gc and fsck, where a snapshot that cannot be known must stop the
    deletion rather than let its objects go.
    """
    data = gitio.cat_blobs(root, blobs)
    missing = [b for b in blobs if data.get(b) is None]
    if missing:
        raise StorageError(
            f"{len(missing)} pointer file(s) in the history cannot be read from git "
            f"(e.g. blob {missing[0][:12]})",
            hint="the clone is partial or damaged: git fetch (or git fsck) first; "
            "nothing was deleted, since their snapshots could not be known",
        )
    return {b: d for b, d in data.items() if d is not None}


@dataclass(frozen=True)
class Version:
    """One pointer version in the history: its blob, path and a commit whose tree holds it."""

    blob: str
    path: str  # checkpoint path
    commit: str
    raw: bytes


def versions(root: Path, rev_args: Sequence[str], *, strict: bool = False) -> list[Version]:
    """Every gitsnap pointer version in the commits ``rev_args`` select (one ``git log --raw``).

    ``strict``: a blob git cannot read raises StorageError instead of being skipped.
    """
    found = gitio.snap_blob_versions(root, list(rev_args))
    if strict:
        data: dict[str, bytes | None] = dict(read_blobs(root, list(found)))
    else:
        data = gitio.cat_blobs(root, list(found))
    return [
        Version(blob, path[: -len(SUFFIX)], commit, raw)
        for blob, (path, commit) in found.items()
        if (raw := data.get(blob)) is not None
    ]


# ------------------------------------------------------------------ parsing


class Parser:
    """Parses pointer texts, each distinct text once per command.

    ``shared`` is :func:`gitsnap.pointer.loads`'s: a tensor line both sides
    of a diff hold is parsed once.
    """

    def __init__(self) -> None:
        self._parsed: dict[bytes, Pointer] = {}
        self.shared: dict[str, Entry] = {}
        self.parses = 0  # distinct texts parsed: what a test counts

    def parse(self, raw: bytes, source: str) -> Pointer:
        ptr = self._parsed.get(raw)
        if ptr is None:
            from gitsnap.pointer import loads

            ptr = self._parsed[raw] = loads(raw, source=source, shared=self.shared)
            self.parses += 1
        return ptr

    def parse_all(
        self, blobs: dict[str, bytes], label: str, problems: list[ItemProblem] | None = None
    ) -> dict[str, Pointer]:
        """Path -> pointer; ``label`` names the revision in errors (``""``: the work tree).

        With ``problems``, a pointer that does not parse is left out and reported there.
        """
        prefix = f"{label}:" if label else ""
        if problems is None:
            return {rel: self.parse(raw, f"{prefix}{rel}{SUFFIX}") for rel, raw in blobs.items()}
        out: dict[str, Pointer] = {}
        for rel, raw in blobs.items():
            with collecting(problems, f"{prefix}{rel}"):
                out[rel] = self.parse(raw, f"{prefix}{rel}{SUFFIX}")
        return out


def pointers_at(
    ws: Workspace,
    commit: str,
    label: str,
    wanted: Sequence[str] = (),
    parser: Parser | None = None,
    *,
    within: bool = False,
) -> dict[str, Pointer]:
    """Checkpoint path -> parsed pointer at ``commit``.

    ``label`` is the revision as the user named it (in errors).
    """
    return (parser or Parser()).parse_all(blobs_at(ws, commit, wanted, within=within), label)


def pointers_at_rev(root: Path, rev: str | None, rels: Sequence[str]) -> dict[str, Pointer]:
    """The readable pointers of ``rels`` at ``rev``; none when ``rev`` names no commit.

    For the checkout hook's "was it saved there" question: an unknown
    ``rev`` (a fresh clone's zero id) or a broken pointer means "not known".
    """
    if not rev or is_zero(rev) or commit_or_none(root, rev) is None:
        return {}
    from gitsnap.pointer import loads

    specs = {rel: f"{rev}:{rel}{SUFFIX}" for rel in rels}
    blobs = gitio.cat_blobs(root, specs.values())
    out: dict[str, Pointer] = {}
    for rel, spec in specs.items():
        data = blobs.get(spec)
        if data is not None and data.startswith(POINTER_HEAD):
            try:
                out[rel] = loads(data, source=spec)
            except GitsnapError:
                continue
    return out


# ------------------------------------------------------------------ snapshots a command covers


@dataclass(frozen=True)
class SnapshotRef:
    path: str  # repository-relative checkpoint path
    commit: str | None  # None: the work tree's pointer
    pointer: Pointer


@dataclass
class Snapshots:
    """The snapshots push / fetch / pull / remote-status cover, de-duplicated by (path, id)."""

    refs: list[SnapshotRef] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, rel: str, commit: str | None, ptr: Pointer) -> None:
        if (rel, ptr.id) not in self._seen:
            self._seen.add((rel, ptr.id))
            self.refs.append(SnapshotRef(rel, commit, ptr))


def snapshots(
    ws: Workspace,
    revs: Sequence[str] = (),
    *,
    all_refs: bool = False,
    parser: Parser | None = None,
    problems: list[ItemProblem] | None = None,
) -> list[SnapshotRef]:
    """The snapshots of ``revs`` (default: HEAD and the work tree), plus every version reachable
    from a branch or tag with ``all_refs``. Registry references are accepted as revisions.

    A pointer text read twice (HEAD's and the work tree's, usually) is parsed once.
    With ``problems``, a pointer that does not parse is left out and reported there.
    """
    parser = parser or Parser()
    found = Snapshots()
    commits = [commit_of(ws, r) for r in revs]
    if not revs and gitio.has_commits(ws.root):
        commits = [gitio.resolve_commit(ws.root, "HEAD")]
    todo: list[tuple[str, str | None, bytes, str]] = []
    for commit in commits:
        for rel, raw in blobs_at(ws, commit).items():
            todo.append((rel, commit, raw, f"{commit[:12]}:{rel}"))
    if not revs:
        for rel, raw in worktree_blobs(ws).items():
            todo.append((rel, None, raw, rel))
    if all_refs:
        for v in versions(ws.root, ["--branches", "--tags"]):
            todo.append((v.path, v.commit, v.raw, f"{v.commit[:12]}:{v.path}"))
    for rel, at, raw, shown in todo:
        if problems is None:
            found.add(rel, at, parser.parse(raw, shown + SUFFIX))
            continue
        with collecting(problems, shown):
            found.add(rel, at, parser.parse(raw, shown + SUFFIX))
    return found.refs


def history_snapshots(
    root: Path, rev_args: Sequence[str], problems: list[ItemProblem] | None = None
) -> list[SnapshotRef]:
    """Every pointer version in the commits ``rev_args`` select, each with a commit holding it.

    With ``problems``, a pointer that does not parse is left out and reported there.
    """
    parser = Parser()
    out = []
    for v in versions(root, rev_args):
        shown = f"{v.commit[:12]}:{v.path}"
        if problems is None:
            out.append(SnapshotRef(v.path, v.commit, parser.parse(v.raw, shown + SUFFIX)))
            continue
        with collecting(problems, shown):
            out.append(SnapshotRef(v.path, v.commit, parser.parse(v.raw, shown + SUFFIX)))
    return out
