"""``git snap hook NAME ARGS...``: find the repository, chain a ``.legacy`` hook, pick the hook;
what a hook run returns is :mod:`.result`.

Only the module of the hook that runs is imported (:mod:`.precommit`,
:mod:`.prepush` or :mod:`.checkout`, which answers post-checkout, post-merge,
post-commit and post-rewrite), so a hook with nothing to do costs one
``git rev-parse`` plus its own few reads (DESIGN D10).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio
from gitsnap.errors import UsageError
from gitsnap.hooks.result import GIT_HOOKS, NAMES, HookResult

if TYPE_CHECKING:
    from gitsnap.transfer import Progress

LEGACY_ENV = "GITSNAP_HOOK_LEGACY"  # set while a chained .legacy hook runs


def reads_stdin(name: str) -> bool:
    """Whether the hook takes input on stdin (pre-push: one line per pushed ref;
    post-rewrite: one ``OLD NEW`` line per rewritten commit, passed on to a chained hook)."""
    return name in ("pre-push", "push-weights", "post-rewrite")


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

        line = b"refs/heads/main <sha> refs/heads/main <sha>\\n"
        result = hooks.run("pre-push", ["origin", url], stdin=line)
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
    # post-checkout / post-merge / post-commit / post-rewrite: git reports the chained
    # hook's failure (it cannot undo what it did).
    return replace(result, legacy_exit=legacy, exit_code=legacy or result.exit_code)


def _dispatch(  # noqa: PLR0911 - one branch per hook
    repo: _Repo,
    name: str,
    args: list[str],
    stdin: bytes,
    progress: Callable[[], Progress | None] | None,
) -> HookResult:
    if name == "pre-commit":
        from gitsnap.hooks.precommit import check_commit

        return check_commit(repo.root, pointers=True, raw=True, hook=name, git_dir=repo.git_dir)
    if name in ("check-pointers", "no-raw-weights"):
        from gitsnap.hooks.precommit import check_commit

        return check_commit(
            repo.root,
            args or None,
            pointers=name == "check-pointers",
            raw=name == "no-raw-weights",
            hook=name,
            git_dir=repo.git_dir,
        )
    if name in ("pre-push", "push-weights"):
        from gitsnap.hooks.prepush import push_input, push_weights

        remote_name, remote_url, updates = push_input(name, args, stdin)
        return push_weights(
            repo.root, remote_name, remote_url, updates, progress=progress, hook=name
        )

    from gitsnap.hooks.checkout import restore

    if name == "post-checkout":
        if len(args) >= 3 and args[2] != "1":
            return HookResult(name, 0)  # a file checkout (git checkout -- PATH): HEAD did not move
        previous = args[0] if args else None
        return restore(repo.root, repo.git_dir, previous, hook=name)
    if name == "post-merge":
        return restore(repo.root, repo.git_dir, "ORIG_HEAD", hook=name)
    if name == "post-commit":
        if _rebasing(repo.git_dir):
            return HookResult(name, 0)  # one pick of a rebase: post-rewrite restores at the end
        # git cherry-pick, git revert, a merge or a conflict resolution concluded by
        # git commit: the work tree's pointers moved and its checkpoints did not.
        return restore(repo.root, repo.git_dir, "HEAD@{1}", hook=name)
    if name == "post-rewrite":
        # "rebase": the work tree came from the branch's old tip (ORIG_HEAD);
        # "amend": from the commit that was amended (the first OLD of stdin).
        olds = [line.split()[0] for line in stdin.decode(errors="replace").splitlines() if line]
        previous = olds[0] if args[:1] == ["amend"] and olds else "ORIG_HEAD"
        return restore(repo.root, repo.git_dir, previous, hook=name)
    # "restore", from the framework: post-checkout, post-merge, post-commit or post-rewrite
    if os.environ.get("PRE_COMMIT_CHECKOUT_TYPE", "1") != "1":
        return HookResult(name, 0)
    previous = os.environ.get("PRE_COMMIT_FROM_REF") or "ORIG_HEAD"
    return restore(repo.root, repo.git_dir, previous, hook=name)


def _rebasing(git_dir: Path) -> bool:
    """A rebase is under way in this work tree (git keeps its state in these folders)."""
    return (git_dir / "rebase-merge").is_dir() or (git_dir / "rebase-apply").is_dir()


def _run_legacy(
    cwd: Path, repo: _Repo | None, name: str, args: Sequence[str], stdin: bytes
) -> int | None:
    """Run ``<hooks dir>/<name>.legacy`` first, as git would have; its exit code, or None."""
    if os.environ.get(LEGACY_ENV):
        return None  # we are that legacy hook's child: never chain twice
    hooks_dir = repo.hooks_dir if repo is not None else _bare_hooks_dir(cwd)
    if hooks_dir is None:
        return None
    path = hooks_dir / (name + ".legacy")
    if not os.access(path, os.X_OK) or path.is_dir():
        return None
    from gitsnap.hooks.install import is_gitsnap_shim

    if is_gitsnap_shim(path, name):
        return None  # e.g. the pre-commit framework moved our shim there: it would call us again
    env = {**os.environ, LEGACY_ENV: "1"}
    return subprocess.run(
        [os.fspath(path), *args], input=stdin, cwd=cwd, env=env, check=False
    ).returncode


def _bare_hooks_dir(cwd: Path) -> Path | None:
    proc = gitio.run(["rev-parse", "--git-path", "hooks"], cwd, check=False)
    return cwd / proc.stdout.decode().strip() if proc.returncode == 0 else None
