"""Many small tensors (issue 17): push / pull of 20,000 x 16 KiB float32 tensors vs DVC.

A mixture-of-experts-like checkpoint: ``--count`` tensors of ``--elems``
float32 each (default 20,000 x 4,096 = 320 MiB) in one safetensors file.
Both tools get a fresh repository with a local-folder default DVC remote
(``dvc remote add -d storage <folder>``); each side saves (``git snap save``
/ ``dvc add``), commits, pushes, then a ``git clone`` of it pulls into an
empty cache. The same file, the same machine, the same run, alternating
which tool goes first; store and remote files are read once before each
timed command (warm page cache). Reported: wall times and their ratios,
files on each remote, the bytes each remote holds.

    .venv/bin/python bench/many_tensors.py                       # 20,000 x 16 KiB
    .venv/bin/python bench/many_tensors.py --count 5000 --repeats 3

Prints a table and one JSON line; docs/benchmarks.md quotes a run.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import util
from bench.util import fmt_bytes

CKPT = "model.safetensors"


def _checkpoint(path: Path, count: int, elems: int) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {
        f"experts.{i // 64:04d}.w{i % 64:02d}": rng.standard_normal(elems, dtype=np.float32)
        for i in range(count)
    }
    save_file(tensors, str(path))
    return path


def _files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def _warm(path: Path) -> None:
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        util.warm(f)


def one(tool: str, src: Path, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    remote = tmp / f"remote-{tool}"
    repo = util.git_repo(tmp / f"repo-{tool}", env, remote=remote)
    if tool == "gitsnap":
        util.run(["git", "snap", "init"], repo, env)
    util.place(src, repo / CKPT)
    save = ["git", "snap", "save", CKPT] if tool == "gitsnap" else ["dvc", "add", "-q", CKPT]
    util.warm(repo / CKPT)
    saved = util.run(save, repo, env)
    util.commit_all(repo, env, "snapshot")
    _warm(repo / ".dvc" / "cache")
    push = ["git", "snap", "push"] if tool == "gitsnap" else ["dvc", "push", "-q"]
    pushed = util.run(push, repo, env)
    clone = tmp / f"clone-{tool}"
    util.run(["git", "clone", "-q", str(repo), str(clone)], tmp, env)
    _warm(remote)
    pull = ["git", "snap", "pull"] if tool == "gitsnap" else ["dvc", "pull", "-q"]
    pulled = util.run(pull, clone, env)
    if not filecmp.cmp(clone / CKPT, src, shallow=False):
        raise util.CommandFailed(f"{tool} pull did not restore the checkpoint byte-exactly")
    out = {
        "save": saved.wall,
        "push": pushed.wall,
        "pull": pulled.wall,
        "pull_peak_rss": float(pulled.maxrss),
        "remote_files": float(_files(remote)),
        "remote_bytes": float(util.tree_size(remote)),
    }
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(clone, ignore_errors=True)
    shutil.rmtree(remote, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--elems", type=int, default=4096, help="float32 elements per tensor")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--tmpdir", type=Path, default=None)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gitsnap-bench-many-", dir=args.tmpdir) as d:
        tmp = Path(d)
        env = util.child_env(tmp / "home")
        (tmp / "home").mkdir()
        src = _checkpoint(tmp / CKPT, args.count, args.elems)
        size = src.stat().st_size
        runs: dict[str, list[dict[str, float]]] = {"gitsnap": [], "dvc": []}
        for i in range(args.repeats):
            for tool in ("gitsnap", "dvc") if i % 2 == 0 else ("dvc", "gitsnap"):
                runs[tool].append(one(tool, src, tmp / f"{tool}-{i}", env))
                r = runs[tool][-1]
                print(
                    f"  #{i} {tool}: save {r['save']:.2f} s, push {r['push']:.2f} s, "
                    f"pull {r['pull']:.2f} s, remote {int(r['remote_files'])} files "
                    f"{fmt_bytes(r['remote_bytes'])}",
                    file=sys.stderr,
                )

    def med(tool: str, key: str) -> float:
        return util.median([r[key] for r in runs[tool]])

    result = {
        "tensors": args.count,
        "tensor_bytes": args.elems * 4,
        "checkpoint_bytes": size,
        "repeats": args.repeats,
        **{f"{t}_{k}": med(t, k) for t in runs for k in runs[t][0]},
    }
    for k in ("save", "push", "pull"):
        result[f"{k}_ratio"] = round(med("gitsnap", k) / med("dvc", k), 3)
    result["remote_bytes_ratio"] = round(
        med("gitsnap", "remote_bytes") / med("dvc", "remote_bytes"), 3
    )
    print(
        f"{args.count} tensors x {fmt_bytes(args.elems * 4)} ({fmt_bytes(size)}), "
        f"median of {args.repeats}"
    )
    for k in ("save", "push", "pull"):
        print(
            f"  {k:5s} git snap {med('gitsnap', k):6.2f} s  dvc {med('dvc', k):6.2f} s  "
            f"ratio {result[f'{k}_ratio']:.2f}"
        )
    print(
        f"  remote  git snap {int(med('gitsnap', 'remote_files'))} files "
        f"{fmt_bytes(med('gitsnap', 'remote_bytes'))}  dvc {int(med('dvc', 'remote_files'))} "
        f"files {fmt_bytes(med('dvc', 'remote_bytes'))}"
    )
    print(f"  pull peak memory: git snap {fmt_bytes(med('gitsnap', 'pull_peak_rss'))}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
