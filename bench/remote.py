"""Remote benchmarks (issue 4): ``git snap push`` / ``pull`` vs ``dvc push`` / ``pull``.

Both tools use a local-folder DVC remote created the same way
(``util.git_repo(..., remote=...)``: ``dvc remote add -d storage <folder>``),
on the same checkpoint as the other scenarios (``Context.checkpoint``: v1, and
v2 with ~10% of the tensor bytes changed), in the same run, alternating which
tool goes first.

- ``push``: first push of v1 (target <= 1.0 x dvc push); push of v2 after
  v1 is on the remote (target <= 0.3 x dvc push of that version) and the bytes
  it sends (target <= 12% of the checkpoint).
- ``pull``: ``git clone`` then a clean pull of v1 into an empty cache
  (target <= 1.0 x dvc pull). Both tools end with the checkpoint in the work
  tree and its objects in their cache.

Every store/cache file and remote file a timed command reads is read once
before it (warm page cache), as ``Context.timed`` does for checkpoints.

Run alone::

    .venv/bin/python bench/remote.py --only push,pull --data-dir bench/data

(the same options as bench/run.py; its scenarios are there too).
``bench/run.py`` loads this module as an extension (``register(scenario)``),
so ``make bench`` and ``bench/run.py --only push,pull`` run these as well.
"""

from __future__ import annotations

import filecmp
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import util
from bench.util import MiB, fmt_bytes

CKPT = "model.safetensors"


def _warm_tree(path: Path) -> None:
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        util.warm(f)


def _order(i: int) -> tuple[str, str]:
    return ("gitsnap", "dvc") if i % 2 == 0 else ("dvc", "gitsnap")


def _save(ctx: object, tool: str, repo: Path) -> None:
    argv = ["git", "snap", "save", CKPT] if tool == "gitsnap" else ["dvc", "add", "-q", CKPT]
    ctx.run(argv, repo)  # type: ignore[attr-defined]
    util.commit_all(repo, ctx.env, "snapshot")  # type: ignore[attr-defined]


def _cache(tool: str, repo: Path) -> Path:
    cache = repo / ".dvc" / "cache"
    return cache / "gitsnap" if tool == "gitsnap" else cache / "files"


def _push(ctx: object, tool: str, repo: Path, remote: Path) -> tuple[util.Proc, int]:
    """One timed push; returns it and the bytes it added to the remote."""
    before = util.tree_size(remote)
    _warm_tree(_cache(tool, repo))
    argv = ["git", "snap", "push", "--json"] if tool == "gitsnap" else ["dvc", "push", "-q"]
    p = ctx.timed(argv, repo, writes=util.tree_size(_cache(tool, repo)) + 256 * MiB)  # type: ignore[attr-defined]
    added = util.tree_size(remote) - before
    if tool == "gitsnap":
        reported = json.loads(p.stdout)["bytes_transferred"]
        # Storage v2 encodes what it packs (objects up to 64 MiB): the remote may grow
        # by less than the raw bytes sent, never by more than them plus pack overhead.
        if added > reported + reported // 100 + MiB:
            raise util.CommandFailed(
                f"git snap push reported {reported} bytes, the remote grew by {added}"
            )
    return p, added


def _runner(ctx: object) -> Any:
    """The module that defined ``ctx`` (``bench.run``, or ``__main__`` when run.py is the script).

    Taking Measurement / timing from there, not from ``import bench.run``,
    keeps one copy of run.py in the process.
    """
    return sys.modules[type(ctx).__module__]


def push(ctx: object) -> list[object]:
    r = _runner(ctx)
    Measurement, Target, _describe, log, timing = (
        r.Measurement,
        r.Target,
        r._describe,
        r.log,
        r.timing,
    )

    ck = ctx.checkpoint()  # type: ignore[attr-defined]
    assert ck.v2 is not None
    first: dict[str, list[util.Proc]] = {"gitsnap": [], "dvc": []}
    second: dict[str, list[util.Proc]] = {"gitsnap": [], "dvc": []}
    sent: dict[str, list[float]] = {"gitsnap": [], "dvc": []}
    for i in range(ctx.repeats):  # type: ignore[attr-defined]
        for tool in _order(i):
            remote = ctx.scratch(f"push-remote-{tool}-{i}")  # type: ignore[attr-defined]
            repo = ctx.repo(f"push-{tool}-{i}", gitsnap=tool == "gitsnap", remote=remote)  # type: ignore[attr-defined]
            path = util.place(Path(ck.v1), repo / CKPT)
            _save(ctx, tool, repo)
            p1, b1 = _push(ctx, tool, repo, remote)
            util.place(Path(ck.v2), path)
            _save(ctx, tool, repo)
            p2, b2 = _push(ctx, tool, repo, remote)
            first[tool].append(p1)
            second[tool].append(p2)
            sent[tool].append(float(b2))
            log(
                f"  push #{i} {tool}: first {p1.wall:.2f} s ({fmt_bytes(b1)}), "
                f"second {p2.wall:.2f} s ({fmt_bytes(b2)})"
            )
            ctx.discard(repo, remote)  # type: ignore[attr-defined]
    return [
        timing("push.first", f"first push to a local remote ({_describe(ck)})",
               first["gitsnap"], "dvc push", first["dvc"], Target("ratio", 1.0)),
        timing("push.second", f"push after {ck.changed_fraction:.1%} of tensor bytes changed",
               second["gitsnap"], "dvc push", second["dvc"], Target("ratio", 0.3)),
        Measurement("push.second.bytes", "  bytes that push sent", "B", sent["gitsnap"],
                    "dvc push", sent["dvc"], Target("max", 0.12 * ck.size)),
    ]  # fmt: skip


def pull(ctx: object) -> list[object]:
    from bench.run import Target, _describe, log, timing

    ck = ctx.checkpoint()  # type: ignore[attr-defined]
    runs: dict[str, list[util.Proc]] = {"gitsnap": [], "dvc": []}
    for i in range(ctx.repeats):  # type: ignore[attr-defined]
        for tool in _order(i):
            remote = ctx.scratch(f"pull-remote-{tool}-{i}")  # type: ignore[attr-defined]
            repo = ctx.repo(f"pull-src-{tool}-{i}", gitsnap=tool == "gitsnap", remote=remote)  # type: ignore[attr-defined]
            util.place(Path(ck.v1), repo / CKPT)
            _save(ctx, tool, repo)
            ctx.run(["git", "snap", "push"] if tool == "gitsnap" else ["dvc", "push", "-q"], repo)  # type: ignore[attr-defined]
            clone = ctx.scratch(f"pull-{tool}-{i}") / "clone"  # type: ignore[attr-defined]
            ctx.run(["git", "clone", "-q", str(repo), str(clone)], repo.parent)  # type: ignore[attr-defined]
            ctx.discard(repo)  # type: ignore[attr-defined]
            _warm_tree(remote)
            argv = ["git", "snap", "pull"] if tool == "gitsnap" else ["dvc", "pull", "-q"]
            p = ctx.timed(argv, clone, writes=ctx.write_budget(ck.size))  # type: ignore[attr-defined]
            if not filecmp.cmp(clone / CKPT, ck.v1, shallow=False):
                raise util.CommandFailed(f"{tool} pull did not restore the checkpoint byte-exactly")
            runs[tool].append(p)
            log(
                f"  pull #{i} {tool}: {p.wall:.2f} s (cpu {p.cpu:.2f} s), "
                f"peak {fmt_bytes(p.maxrss)}"
            )
            ctx.discard(clone.parent, remote)  # type: ignore[attr-defined]
    return [
        timing("pull.clean", f"clean pull from a local remote ({_describe(ck)})",
               runs["gitsnap"], "dvc pull", runs["dvc"], Target("ratio", 1.0)),
    ]  # fmt: skip


SCENARIOS: list[tuple[str, str, Callable[..., list[object]]]] = [
    ("push", "7. push to a local-folder remote: git snap push vs dvc push", push),
    ("pull", "8. clean pull from a local-folder remote: git snap pull vs dvc pull", pull),
]


def register(scenario: Callable[..., Callable[[Callable[..., list[object]]], object]]) -> None:
    """Add these scenarios to a runner's registry (``bench.run.scenario``)."""
    for name, title, fn in SCENARIOS:
        scenario(name, title)(fn)


if __name__ == "__main__":
    from bench import run as runner

    sys.exit(runner.main())  # loads this module's scenarios through register()
