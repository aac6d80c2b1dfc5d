"""Hook benchmarks (issue 2): what gitsnap's git hooks add to git when they have nothing to do.

One repository holds a clean 1 GiB checkpoint (``--size-gib``), saved and
committed, its stat cache warm, and the shims of ``git snap install``. The
same git commands run with the hooks and without them
(``git -c core.hooksPath=<empty folder>``), alternating:

- ``git commit`` of an unrelated text file, which runs the pre-commit hook
  (the raw-weights check on the staged file, the unsaved-checkpoint warning
  over the index's pointers);
- ``git checkout`` of a branch whose pointer is the same, which runs
  post-checkout (nothing to restore).

Target: each hook adds <= 0.3 s (the "added" rows: the median of the paired
differences, hook minus no hook). Each hook's imports are listed too; it must
import neither torch nor dvc (DESIGN D10).

Run alone::

    .venv/bin/python bench/hooks.py --only hooks --data-dir bench/data

(``bench/run.py`` loads this module as an extension: ``--only hooks`` works there too.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import util

CKPT = "model.safetensors"
NOTE = "notes.txt"
ADDED_LIMIT = 0.3  # seconds a hook may add to the git command that runs it


def _runner(ctx: object) -> Any:
    """The module that defined ``ctx`` (``bench.run``, or ``__main__`` if run.py is the script)."""
    return sys.modules[type(ctx).__module__]


def _repo(ctx: Any) -> tuple[Path, Path]:
    """A repository: clean committed 1 GiB checkpoint, hooks installed; and an empty hooks dir."""
    ck = ctx.checkpoint()
    repo: Path = ctx.repo("hooks", gitsnap=True)
    util.place(Path(ck.v1), repo / CKPT)  # mtime in the past: the stat cache may trust it
    ctx.run(["git", "snap", "save", CKPT], repo)
    (repo / NOTE).write_text("notes\n")
    util.commit_all(repo, ctx.env, "v1")
    ctx.run(["git", "branch", "other"], repo)
    ctx.run(["git", "snap", "install"], repo)
    status = ctx.run(["git", "snap", "status"], repo)  # fills the stat cache; must be clean
    if "clean" not in status.stdout:
        raise util.CommandFailed(f"git snap status is not clean:\n{status.stdout}{status.stderr}")
    no_hooks = ctx.scratch("hooks-none")
    return repo, no_hooks


def _git(no_hooks: Path | None, *args: str) -> list[str]:
    return ["git", *(["-c", f"core.hooksPath={no_hooks}"] if no_hooks else []), *args]


def _rows(
    ctx: Any, key: str, label: str, baseline: str, runs: dict[str, list[util.Proc]]
) -> list[object]:
    r = _runner(ctx)
    median = util.median
    added = [h.wall - b.wall for h, b in zip(runs["hook"], runs["none"], strict=True)]
    added_cpu = [h.cpu - b.cpu for h, b in zip(runs["hook"], runs["none"], strict=True)]
    r.log(
        f"  {key}: {median([p.wall for p in runs['hook']]):.3f} s with the hook, "
        f"{median([p.wall for p in runs['none']]):.3f} s without; "
        f"added {median(added):.3f} s wall, {median(added_cpu):.3f} s cpu"
    )
    return [
        r.timing(key, label, runs["hook"], baseline, runs["none"]),
        r.Measurement(f"{key}.added", "  added by the hook", "s", added,
                      target=r.Target("max", ADDED_LIMIT), info={"cpu_s": added_cpu}),
    ]  # fmt: skip


def hooks(ctx: Any) -> list[object]:
    repo, no_hooks = _repo(ctx)
    rows = [*_commit(ctx, repo, no_hooks), *_checkout(ctx, repo, no_hooks)]
    ctx.discard(repo, no_hooks)
    return rows


def _commit(ctx: Any, repo: Path, no_hooks: Path) -> list[object]:
    r = _runner(ctx)
    runs: dict[str, list[util.Proc]] = {"hook": [], "none": []}
    n = 0
    for k in range(ctx.fast_repeats):
        for side in ("hook", "none") if k % 2 == 0 else ("none", "hook"):
            n += 1
            with (repo / NOTE).open("a") as f:
                f.write(f"line {n}\n")
            ctx.run(["git", "add", NOTE], repo)
            argv = _git(no_hooks if side == "none" else None, "commit", "-q", "-m", f"note {n}")
            p = ctx.timed(argv, repo, settle=k % 5 == 0 and side == "hook")
            if p.returncode != 0:
                raise util.CommandFailed(f"git commit failed:\n{p.stdout}{p.stderr}")
            runs[side].append(p)
    # What the hook imports when it checks a staged text file (git's own call, minus git).
    with (repo / NOTE).open("a") as f:
        f.write("imports\n")
    ctx.run(["git", "add", NOTE], repo)
    imports = r._import_check(ctx, "hooks.commit.imports", "  pre-commit imports no torch / dvc",
                              ["-m", "gitsnap", "hook", "pre-commit"], repo)  # fmt: skip
    ctx.run(["git", "commit", "-q", "--no-verify", "-m", "imports"], repo)
    rows = _rows(ctx, "hooks.commit", "git commit of a text file, pre-commit hook (1 GiB "
                 "checkpoint clean)", "git commit, no hooks", runs)  # fmt: skip
    return [*rows, imports]


def _checkout(ctx: Any, repo: Path, no_hooks: Path) -> list[object]:
    r = _runner(ctx)
    runs: dict[str, list[util.Proc]] = {"hook": [], "none": []}
    branch = "main"
    for k in range(ctx.fast_repeats):
        for side in ("hook", "none") if k % 2 == 0 else ("none", "hook"):
            branch = "other" if branch == "main" else "main"
            argv = _git(no_hooks if side == "none" else None, "checkout", "-q", branch)
            p = ctx.timed(argv, repo, settle=k % 5 == 0 and side == "hook")
            if p.returncode != 0 or p.stderr.strip():
                raise util.CommandFailed(f"git checkout {branch}:\n{p.stdout}{p.stderr}")
            runs[side].append(p)
    head = ctx.run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    argv = ["-m", "gitsnap", "hook", "post-checkout", head, head, "1"]
    label = "  post-checkout imports no torch / dvc"
    imports = r._import_check(ctx, "hooks.checkout.imports", label, argv, repo)
    rows = _rows(ctx, "hooks.checkout", "git checkout of a branch, post-checkout hook "
                 "(nothing to restore)", "git checkout, no hooks", runs)  # fmt: skip
    return [*rows, imports]


SCENARIOS: list[tuple[str, str, Callable[..., list[object]]]] = [
    ("hooks", "11. git hooks with nothing to do: git commit / checkout, with vs without", hooks),
]


def register(scenario: Callable[..., Callable[[Callable[..., list[object]]], object]]) -> None:
    """Add these scenarios to a runner's registry (``bench.run.scenario``)."""
    for name, title, fn in SCENARIOS:
        scenario(name, title)(fn)


if __name__ == "__main__":
    from bench import run as runner

    sys.exit(runner.main())  # loads this module's scenarios through register()
