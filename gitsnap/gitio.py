"""The only module that runs git.

Plain ``subprocess`` rather than GitPython: ``import git`` costs ~0.15 s here,
half of the budget of a clean ``git snap status``; each call below is one
short-lived git process (or one ``cat-file --batch`` for many blobs).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitsnap.errors import GitError, NotAGitRepository

# Variables git exports to hooks; a git we start must find its repository
# from cwd, not inherit the caller's (pre-commit does the same).
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")


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
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, env=_env(), check=False
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
    proc = run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], root, check=False)
    if proc.returncode != 0:
        raise GitError(f"unknown revision: {rev}", hint="give a commit, branch or tag (see git log)")
    return proc.stdout.decode().strip()


def has_commits(root: Path) -> bool:
    return run(["rev-parse", "--verify", "--quiet", "HEAD"], root, check=False).returncode == 0


def ls_files(root: Path, pattern: str, rev: str | None = None) -> list[str]:
    """Repo-relative paths matching a pathspec glob, in the work tree or at ``rev``."""
    if rev is None:
        args = ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", pattern]
        names = run(args, root).stdout.decode().split("\0")
        return sorted({n for n in names if n})
    # ls-tree takes path prefixes, not globs: list the tree and match here.
    import fnmatch

    names = run(["ls-tree", "-r", "-z", "--name-only", "--full-tree", rev], root).stdout.decode().split("\0")
    return sorted({n for n in names if n and fnmatch.fnmatchcase(n, pattern)})


def cat_blobs(root: Path, specs: Iterable[str]) -> dict[str, bytes | None]:
    """Read many ``REV:path`` blobs with one ``git cat-file --batch``; None where absent."""
    specs = list(specs)
    if not specs:
        return {}
    proc = run(["cat-file", "--batch"], root, input="".join(s + "\n" for s in specs).encode())
    data, pos, result = proc.stdout, 0, {}
    for spec in specs:
        nl = data.index(b"\n", pos)
        header = data[pos:nl].decode()
        pos = nl + 1
        if header.endswith(" missing") or header.endswith(" ambiguous"):
            result[spec] = None
            continue
        _, kind, size_s = header.rsplit(" ", 2)
        size = int(size_s)
        result[spec] = data[pos : pos + size] if kind == "blob" else None
        pos += size + 1
    return result


def show_blob(root: Path, rev: str, path: str) -> bytes | None:
    return cat_blobs(root, [f"{rev}:{path}"])[f"{rev}:{path}"]


@dataclass(frozen=True)
class LogEntry:
    commit: str
    time: int
    subject: str


def log(root: Path, path: str, rev: str = "HEAD") -> list[LogEntry]:
    """Commits touching ``path``, newest first (following no renames)."""
    if not has_commits(root):
        return []
    raw = out(["log", "-z", "--format=%H%x1f%ct%x1f%s", rev, "--", path], root)
    entries = []
    for rec in raw.split("\0"):
        rec = rec.strip("\n")
        if rec:
            sha, ts, subject = rec.split("\x1f", 2)
            entries.append(LogEntry(sha, int(ts), subject))
    return entries


def check_ignore(root: Path, path: str) -> bool:
    return run(["check-ignore", "-q", "--no-index", "--", path], root, check=False).returncode == 0
