"""The only module that runs git.

Plain ``subprocess`` rather than GitPython: ``import git`` costs ~0.15 s here,
half of the budget of a clean ``git snap status``; each call below is one
short-lived git process (or one ``cat-file --batch`` for many blobs).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gitsnap.errors import GitError, NotAGitRepository
from gitsnap.pointer.limits import MAX_NOTE_BYTES, MAX_POINTER_BYTES
from gitsnap.pointer.peek import SUFFIX, is_pointer

# Variables git exports to hooks; a git we start must find its repository
# from cwd, not inherit the caller's (pre-commit does the same).
_GIT_ENV_DROP: tuple[str, ...] = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")
# Hooks: also the rest of what `git rev-parse --local-env-vars` lists as tied to
# one repository's location. The GIT_CONFIG* ones stay: they carry a user's
# `git -c key=value` (e.g. `git -c gitsnap.maxFileSize=50m commit`).
_GIT_ENV_DROP += (
    "GIT_IMPLICIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR", "GIT_GRAFT_FILE", "GIT_SHALLOW_FILE", "GIT_INTERNAL_SUPER_PREFIX",
)  # fmt: skip


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    return env


def run(
    args: Sequence[str],
    cwd: Path,
    *,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    return _spawn(args, cwd, input, check, _env())


def _spawn(
    args: Sequence[str], cwd: Path, input: bytes | None, check: bool, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, env=env, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH", hint="install git") from None
    if check and proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:2])} failed: {err}", hint="check the revision or path")
    return proc


def out(args: Sequence[str], cwd: Path) -> str:
    return run(args, cwd).stdout.decode().strip()


@dataclass(frozen=True)
class RepoPaths:
    root: Path  # the working tree's top level
    git_dir: Path  # this worktree's git dir


def discover(cwd: Path) -> RepoPaths:
    proc = run(["rev-parse", "--show-toplevel", "--absolute-git-dir"], cwd, check=False)
    if proc.returncode != 0:
        raise NotAGitRepository(f"not a git repository: {cwd}")
    lines = proc.stdout.decode().splitlines()
    if len(lines) < 2 or not lines[0]:
        raise NotAGitRepository(f"not inside a git working tree: {cwd}")
    return RepoPaths(Path(lines[0]), Path(lines[1]))


def resolve_commit(root: Path, rev: str) -> str:
    proc = run(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        root,
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(
            f"unknown revision: {rev}", hint="give a commit, branch or tag (see git log)"
        )
    return proc.stdout.decode().strip()


def has_commits(root: Path) -> bool:
    return run(["rev-parse", "--verify", "--quiet", "HEAD"], root, check=False).returncode == 0


# ---------------------------------------------------------------- pointer files

_SNIFF_BYTES = 512


def pointer_files(root: Path) -> list[str]:
    """Repo-relative paths of gitsnap's ``*.snap`` pointers in the work tree.

    Files git tracks or would add (``--others --exclude-standard``) that
    exist and start like a pointer; one that cannot be read as a file (a
    folder) is listed, for the caller to report. (At a revision:
    :meth:`gitsnap.workspace.Workspace.pointer_blobs`, which keeps the bytes.)
    """
    names = ls_files(root, f"*{SUFFIX}")
    found = []
    for name in names:
        try:
            with open(root / name, "rb") as f:
                head = f.read(_SNIFF_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            continue  # deleted in the work tree
        except OSError:
            found.append(name)
            continue
        if is_pointer(head):
            found.append(name)
    return found


def ls_files(root: Path, pattern: str, rev: str | None = None) -> list[str]:
    """Repo-relative paths matching a pathspec glob, in the work tree or at ``rev``."""
    if rev is None:
        args = ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", pattern]
        names = run(args, root).stdout.decode().split("\0")
        return sorted({n for n in names if n})
    # ls-tree takes path prefixes, not globs: list the tree and match here.
    import fnmatch

    names = (
        run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", rev], root)
        .stdout.decode()
        .split("\0")
    )
    return sorted({n for n in names if n and fnmatch.fnmatchcase(n, pattern)})


def cat_blobs(
    root: Path, specs: Iterable[str], *, max_bytes: int = MAX_POINTER_BYTES
) -> dict[str, bytes | None]:
    """Read many ``REV:path`` blobs with one ``git cat-file --batch``; None where absent.

    The blobs come from other people's commits: one longer than ``max_bytes``
    comes back cut to ``max_bytes + 1`` bytes (its reader then refuses it for
    its size), and the rest of it is read past, never held (DESIGN D9).
    """
    specs = list(specs)
    if not specs:
        return {}
    proc = _popen(["cat-file", "--batch"], root)
    assert proc.stdin is not None and proc.stdout is not None
    feeder = threading.Thread(
        target=_feed, args=(proc.stdin, "".join(s + "\n" for s in specs).encode()), daemon=True
    )
    feeder.start()
    result: dict[str, bytes | None] = {}
    try:
        for spec in specs:
            header = proc.stdout.readline(4096 + len(spec)).decode(errors="replace").rstrip("\n")
            if header.endswith((" missing", " ambiguous")):
                result[spec] = None
                continue
            _, kind, size_s = header.rsplit(" ", 2)
            size = int(size_s)
            kept = proc.stdout.read(min(size, max_bytes + 1))
            _skip(proc.stdout, size - len(kept) + 1)  # the rest, and the closing newline
            result[spec] = kept if kind == "blob" else None
    finally:
        feeder.join()
        _finish(proc, ["cat-file", "--batch"])
    return result


def _popen(args: Sequence[str], cwd: Path) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH", hint="install git") from None


def _feed(pipe: IO[bytes], data: bytes) -> None:
    # From a thread: git answers while it reads, and a full stdout pipe would
    # otherwise stop it reading the rest of our input.
    with contextlib.suppress(BrokenPipeError), pipe:
        pipe.write(data)


def _skip(stream: IO[bytes], n: int) -> None:
    while n > 0:
        chunk = stream.read(min(n, 1 << 20))
        if not chunk:
            return
        n -= len(chunk)


def _finish(proc: subprocess.Popen[bytes], args: Sequence[str]) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    _skip(proc.stdout, 1 << 62)  # whatever is left, so that git can exit
    err = proc.stderr.read(64 * 1024)
    if proc.wait() != 0:
        msg = err.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:2])} failed: {msg}", hint="check the revision or path")


def show_blob(root: Path, rev: str, path: str) -> bytes | None:
    return cat_blobs(root, [f"{rev}:{path}"])[f"{rev}:{path}"]


@dataclass(frozen=True)
class LogEntry:
    commit: str
    time: int
    subject: str
    parents: tuple[str, ...] = ()


def log(root: Path, path: str, rev: str = "HEAD") -> list[LogEntry]:
    """Commits touching ``path`` reachable from ``rev`` through any parent (following no renames).

    ``--full-history``: a merge does not hide the side it did not take
    (git's default history simplification follows only a parent the merge
    is identical to, so a branch's changes to ``path`` vanish once a merge
    kept the other side). ``--date-order``: newest commit first, but never a
    commit before one of its descendants, whatever the clocks said.
    """
    if not has_commits(root):
        return []
    args = ["log", "-z", "--format=%H%x1f%ct%x1f%P%x1f%s", "--full-history", "--date-order"]
    raw = out([*args, rev, "--", path], root)
    entries = []
    for rec in raw.split("\0"):
        fields = rec.strip("\n")
        if fields:
            sha, ts, parents, subject = fields.split("\x1f", 3)
            entries.append(LogEntry(sha, int(ts), subject, tuple(parents.split())))
    return entries


def check_ignore(root: Path, path: str) -> bool:
    return run(["check-ignore", "-q", "--no-index", "--", path], root, check=False).returncode == 0


# ---------------------------------------------------------------- notes and config (diff / metrics)


def notes_show(root: Path, ref: str, commit: str) -> bytes | None:
    """The note of ``commit`` under notes ref ``ref``, or None when it has none.

    ``commit`` must already be resolved: any failure then means "no note"
    (git says so in the user's language, so the message is not parsed).
    """
    proc = _popen(["notes", f"--ref={ref}", "show", commit], root)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.close()
    # A note comes from whoever can push notes: at most one byte past the limit is
    # kept (notes.parse then refuses it for its size), the rest is read past.
    data = proc.stdout.read(MAX_NOTE_BYTES + 1)
    _skip(proc.stdout, 1 << 62)
    proc.stderr.read()
    return data if proc.wait() == 0 else None


def notes_add(root: Path, ref: str, commit: str, data: bytes) -> None:
    """Attach ``data`` as the note of ``commit`` under ``ref``, replacing its note."""
    run(["notes", f"--ref={ref}", "add", "-f", "-F", "-", commit], root, input=data)


def config_get(root: Path, key: str, kind: str | None = None) -> str | None:
    """``git config --get KEY`` (typed by git when ``kind``); None when it is not set."""
    args = ["config", *([f"--type={kind}"] if kind else []), "--get", key]
    proc = run(args, root, check=False)
    if proc.returncode == 1:
        return None  # not set
    if proc.returncode != 0:
        problem = proc.stderr.decode(errors="replace").strip()
        raise GitError(
            f"git config {key} is not a valid {kind or 'value'}: {problem}",
            hint=f"fix it with: git config {key} VALUE (or git config --unset {key})",
        )
    return proc.stdout.decode().strip()


def config_set(root: Path, key: str, value: str) -> None:
    """``git config --local KEY VALUE`` (the repository's own config)."""
    run(["config", "--local", key, value], root)


# ---------------------------------------------------------------- registry and storage
# (tag / ls / gc / du / fsck)


@dataclass(frozen=True)
class AnnotatedTag:
    name: str  # without refs/tags/
    commit: str  # the commit it points at (peeled)
    time: int  # tagger date, unix seconds
    tagger: str  # "Name <email>"
    message: str


def annotated_tags(root: Path) -> list[AnnotatedTag]:
    """Annotated tags (lightweight ones are left out, as GTO does) whose target is a commit."""
    fmt = (
        "%(refname)%00%(objecttype)%00%(*objecttype)%00%(*objectname)%00"
        "%(taggerdate:unix)%00%(taggername) %(taggeremail)%00%(contents)%00"
    )
    args = ["for-each-ref", f"--format={fmt}", "refs/tags"]
    raw = run(args, root).stdout.decode(errors="replace")
    tags = []
    for record in raw.split("\0\n"):
        fields = record.split("\0")
        if len(fields) < 7:
            continue
        ref, kind, target_kind, target, when, tagger, message = fields[:7]
        if kind != "tag" or target_kind != "commit" or not ref.startswith("refs/tags/"):
            continue
        tags.append(
            AnnotatedTag(ref[len("refs/tags/") :], target, int(when or 0), tagger.strip(), message)
        )
    return tags


def create_annotated_tag(root: Path, name: str, commit: str, message: str) -> None:
    """``git tag -a NAME COMMIT`` with ``message`` kept verbatim (no comment stripping)."""
    run(
        ["tag", "-a", "--cleanup=whitespace", "-F", "-", "--end-of-options", name, commit],
        root,
        input=message.encode(),
    )


def push_refs(root: Path, remote: str, refs: Sequence[str]) -> None:
    run(["push", "--no-verify", remote, *refs], root)


def snap_blob_versions(root: Path, rev_args: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Every pointer blob in the trees of the commits ``rev_args`` select: blob -> (path, a commit).

    Only blobs that start like a gitsnap pointer (:func:`is_pointer`) are
    kept: another tool's ``*.snap`` file is not a snapshot.

    One ``git log --raw`` over first-parent diffs: a blob in a commit's tree
    was in its first parent's tree or shows in the diff against it, and
    ``--root`` shows a root commit as a diff against the empty tree. ``--sparse
    --full-history`` keep git from pruning commits by path (history
    simplification would skip side branches whose pointer changes were not
    merged).
    """
    if not has_commits(root):
        return {}
    args = [
        "log", "-z", *rev_args, "--format=%x01%H", "--raw", "--no-abbrev", "--root", "--no-renames",
        "--full-history", "--sparse", "--diff-merges=first-parent", "--", "*.snap",
    ]  # fmt: skip
    raw = run(args, root).stdout.decode(errors="surrogateescape")
    versions: dict[str, tuple[str, str]] = {}
    commit = ""
    tokens = raw.split("\0")
    i = 0
    while i < len(tokens):
        tok = tokens[i].lstrip("\n")
        i += 1
        if tok.startswith("\x01"):
            commit = tok[1:].strip()
        elif tok.startswith(":") and i < len(tokens):
            path = tokens[i]
            i += 1
            fields = tok.split()
            blob = fields[3] if len(fields) > 3 else ""
            if blob.strip("0") and path.endswith(SUFFIX):
                versions.setdefault(blob, (path, commit))
    blobs = cat_blobs(root, list(versions))
    return {b: v for b, v in versions.items() if is_pointer(blobs.get(b) or b"")}


def index_snap_blobs(root: Path) -> list[tuple[str, str]]:
    """(blob, path) of every ``*.snap`` entry in the index, all conflict stages."""
    out = []
    for rec in (
        run(["ls-files", "-s", "-z", "--", "*.snap"], root)
        .stdout.decode(errors="surrogateescape")
        .split("\0")
    ):
        if "\t" in rec:
            meta, path = rec.split("\t", 1)
            out.append((meta.split()[1], path))
    return out


def worktrees(root: Path) -> list[Path]:
    """The work trees of this repository that still exist (the main one first)."""
    out = []
    for line in (
        run(["worktree", "list", "--porcelain"], root)
        .stdout.decode(errors="surrogateescape")
        .splitlines()
    ):
        if line.startswith("worktree "):
            path = Path(line[len("worktree ") :])
            if path.is_dir():
                out.append(path)
    return out or [root]


def git_remotes(root: Path) -> list[str]:
    return [r for r in out(["remote"], root).splitlines() if r]


def ls_remote_heads(root: Path, remote: str) -> dict[str, str]:
    """ref -> commit of the branches and tags a git remote advertises (annotated tags peeled)."""
    proc = run(["ls-remote", "--heads", "--tags", remote], root, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        why = err[-1] if err else "git ls-remote failed"
        raise GitError(
            f"cannot list the refs of git remote '{remote}': {why}",
            hint="check the network, or git remote -v",
        )
    refs: dict[str, str] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        sha, _, ref = line.partition("\t")
        if ref.endswith("^{}"):
            refs[ref[:-3]] = sha  # the peeled commit wins over the tag object
        else:
            refs.setdefault(ref, sha)
    return refs


def missing_objects(root: Path, shas: Iterable[str]) -> set[str]:
    """The subset of ``shas`` that are not in the local object database."""
    shas = sorted(set(shas))
    if not shas:
        return set()
    proc = run(["cat-file", "--batch-check"], root, input="".join(s + "\n" for s in shas).encode())
    return {
        line.split()[0] for line in proc.stdout.decode().splitlines() if line.endswith(" missing")
    }


# ---------------------------------------------------------------- hooks: the index being committed


def run_index(
    args: Sequence[str], cwd: Path, *, input: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """:func:`run`, but keep the caller's ``GIT_INDEX_FILE``.

    Inside a pre-commit hook it names the index about to be committed:
    ``git commit -a`` and ``git commit PATH`` build a temporary one, and the
    staged state of the default index is then not what gets committed. git
    may give it relative to the hook's cwd (``.git/index``), so it is made
    absolute here.
    """
    env = _env()
    index = os.environ.get("GIT_INDEX_FILE")
    if index:
        env["GIT_INDEX_FILE"] = os.fspath(Path(index).absolute())
    return _spawn(args, cwd, input, check, env)


# ---------------------------------------------------------------- notes sync (push / fetch)


def rev_or_none(root: Path, ref: str) -> str | None:
    """The object ``ref`` names, or None when it names none."""
    proc = run(["rev-parse", "--verify", "--quiet", ref], root, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def has_remote(root: Path, name: str) -> bool:
    """True when ``name`` is a named git remote."""
    return run(["remote", "get-url", name], root, check=False).returncode == 0


def is_ancestor(root: Path, a: str, b: str) -> bool:
    return run(["merge-base", "--is-ancestor", a, b], root, check=False).returncode == 0


def push_ref(root: Path, remote: str, ref: str) -> subprocess.CompletedProcess[bytes]:
    """``git push --porcelain --no-verify REMOTE REF:REF``; the caller reads its outcome.

    ``--no-verify``: the ref pushed carries no commits, and a pre-push hook
    calling back into gitsnap must not recurse.
    """
    return run(["push", "--porcelain", "--no-verify", remote, f"{ref}:{ref}"], root, check=False)


def ls_remote(root: Path, remote: str, ref: str) -> subprocess.CompletedProcess[bytes]:
    return run(["ls-remote", remote, ref], root, check=False)


def fetch_ref(root: Path, remote: str, ref: str, into: str) -> subprocess.CompletedProcess[bytes]:
    """``git fetch REMOTE +REF:INTO`` (forced: INTO is a tracking ref of ours)."""
    return run(["fetch", "--quiet", "--no-tags", remote, f"+{ref}:{into}"], root, check=False)


def update_ref(root: Path, ref: str, new: str, old: str | None = None) -> None:
    run(["update-ref", ref, new, *([old] if old else [])], root)


def notes_merge(root: Path, ref: str, other: str, strategy: str) -> None:
    """``git notes --ref REF merge -s STRATEGY OTHER``; GitError when it fails."""
    run(["notes", "--ref", ref, "merge", "--quiet", "-s", strategy, other], root)


def notes_tree(root: Path, ref: str) -> dict[str, str]:
    """annotated commit -> note blob, read from a notes ref's tree (any fan-out)."""
    listing = run(["ls-tree", "-r", "-z", ref], root).stdout.decode()
    notes = {}
    for rec in listing.split("\0"):
        if rec:
            meta, _, path = rec.partition("\t")
            notes[path.replace("/", "")] = meta.split()[2]
    return notes


def last_line(raw: bytes) -> str:
    """git's last non-empty line of output: the reason a command failed."""
    lines = [ln.strip() for ln in raw.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "git failed"


def index_pointers(root: Path) -> dict[str, str]:
    """``*.snap`` path -> blob of every (unconflicted) entry of the index being committed."""
    proc = run_index(["ls-files", "-s", "-z", "--", f"*{SUFFIX}"], root)
    entries = {}
    for rec in proc.stdout.decode(errors="surrogateescape").split("\0"):
        if "\t" in rec:
            meta, path = rec.split("\t", 1)
            _, blob, stage = meta.split()
            if stage == "0":
                entries[path] = blob
    return entries
