"""A training run on a remote (issue 17): ten checkpoints with optimizer state, gitsnap vs DVC.

A small model (an MLP of ~1.2 M parameters with LayerNorms, on a regression
task this script makes: a fixed random teacher network labels random inputs)
is trained with AdamW; every ``--steps`` steps (default 50) the trainer writes
``checkpoint.pt`` with ``torch.save({"model": ..., "optimizer": ..., "step": ...})``
(the model's weights and AdamW's ``exp_avg`` / ``exp_avg_sq``: every tensor
changes between two checkpoints). Ten times. Each checkpoint is handed, the
same bytes in the same run, to

* gitsnap: ``git snap save`` + ``git commit`` + ``git snap push`` (the pointer's
  ``parent`` is the previous checkpoint, so push may store XOR deltas);
* DVC: ``dvc add`` + ``git commit`` + ``dvc push``;

each to its own local-folder DVC remote. Reported: the bytes each remote holds
after all ten, their ratio (gitsnap / DVC's ten full copies), and how the bytes
gitsnap stored split over its stored forms (raw, byte planes + zstd, XOR
delta), read from the remote's pack indexes; loose objects are raw.

    .venv/bin/python bench/training_run.py [--checkpoints 10] [--steps 50] [--lr 1e-3] [--json F]

Needs torch (the ``torch`` extra). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import util
from bench.util import fmt_bytes

CKPT = "checkpoint.pt"


def _trainer(lr: float, seed: int = 0) -> tuple[Any, Any, Any]:
    """(model, optimizer, one_step): an MLP learning a random teacher's outputs."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    width = 512

    def mlp() -> nn.Module:
        return nn.Sequential(
            nn.Linear(256, width), nn.LayerNorm(width), nn.GELU(),
            nn.Linear(width, width * 2), nn.LayerNorm(width * 2), nn.GELU(),
            nn.Linear(width * 2, width), nn.LayerNorm(width), nn.GELU(),
            nn.Linear(width, 64),
        )  # fmt: skip

    teacher, model = mlp().eval(), mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed + 1)

    def step() -> float:
        x = torch.randn(128, 256, generator=gen)
        with torch.no_grad():
            y = teacher(x)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return model, opt, step


def _write_checkpoint(path: Path, model: Any, opt: Any, step: int) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, tmp)
    tmp.replace(path)


def _stored_forms(remote: Path) -> Counter[str]:
    """Bytes on gitsnap's remote by stored form: pack members by their index, loose = raw."""
    from gitsnap import codec, pack

    area = remote / "gitsnap" / "blake3"
    forms: Counter[str] = Counter()
    in_packs = 0  # bytes of the pack and index files
    for idx in sorted((area / "packs").glob("pack-*.idx")):
        _, entries = pack.read_index(idx)
        members = 0
        for e in entries:
            forms[codec.CODEC_NAMES.get(e.codec, str(e.codec))] += e.length
            members += e.length
        size = idx.with_suffix(".pack").stat().st_size
        forms["pack framing + indexes"] += size - members + idx.stat().st_size
        in_packs += size + idx.stat().st_size
    forms["raw (loose)"] = util.tree_size(area) - in_packs
    return +forms


def _last_by_part(repo: Path, env: dict[str, str], remote: Path) -> dict[str, list[int]]:
    """The last checkpoint's raw and stored bytes by part: weights and each optimizer moment
    (stored = the length of each tensor's pack member, or its loose object's size)."""
    from gitsnap import pack

    area = remote / "gitsnap" / "blake3"
    member = {
        e.oid: e.length
        for idx in (area / "packs").glob("pack-*.idx")
        for e in pack.read_index(idx)[1]
    }
    ptr = json.loads(util.run(["git", "snap", "show", CKPT, "--json"], repo, env).stdout)
    ptr = ptr.get("pointer", ptr)
    parts: dict[str, list[int]] = {}
    for t in ptr["tensors"]:
        name = t.get("name") or ""
        part = next((m for m in ("exp_avg_sq", "exp_avg") if name.endswith(m)), None)
        part = part or ("optimizer, other" if name.startswith("optimizer") else "weights")
        loose = area / t["oid"][:2] / t["oid"][2:]
        stored = member.get(t["oid"]) or (loose.stat().st_size if loose.exists() else 0)
        row = parts.setdefault(part, [0, 0])
        row[0] += t["size"]
        row[1] += stored
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50, help="training steps between checkpoints")
    ap.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    ap.add_argument("--tmpdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gitsnap-bench-train-", dir=args.tmpdir) as d:
        tmp = Path(d)
        (tmp / "home").mkdir()
        env = util.child_env(tmp / "home")
        repos = {
            tool: util.git_repo(tmp / f"repo-{tool}", env, remote=tmp / f"remote-{tool}")
            for tool in ("gitsnap", "dvc")
        }
        util.run(["git", "snap", "init"], repos["gitsnap"], env)
        model, opt, step = _trainer(args.lr)
        src = tmp / CKPT
        times: dict[str, list[float]] = {"gitsnap": [], "dvc": []}
        sizes: list[int] = []
        loss = float("nan")
        for i in range(args.checkpoints):
            for _ in range(args.steps):
                loss = step()
            _write_checkpoint(src, model, opt, (i + 1) * args.steps)
            sizes.append(src.stat().st_size)
            for tool, repo in repos.items():
                util.place(src, repo / CKPT)
                if tool == "gitsnap":
                    cmds = [["git", "snap", "save", CKPT, "-m", f"step {(i + 1) * args.steps}"]]
                else:
                    cmds = [["dvc", "add", "-q", CKPT]]
                for c in cmds:
                    util.run(c, repo, env)
                util.commit_all(repo, env, f"checkpoint {i + 1}")
                push = ["git", "snap", "push"] if tool == "gitsnap" else ["dvc", "push", "-q"]
                times[tool].append(util.run(push, repo, env).wall)
            print(
                f"  checkpoint {i + 1}: {fmt_bytes(sizes[-1])}, loss {loss:.4f}, remotes "
                f"git snap {fmt_bytes(util.tree_size(tmp / 'remote-gitsnap'))} / "
                f"dvc {fmt_bytes(util.tree_size(tmp / 'remote-dvc'))}",
                file=sys.stderr,
            )
        ours = util.tree_size(tmp / "remote-gitsnap")
        theirs = util.tree_size(tmp / "remote-dvc")
        forms = _stored_forms(tmp / "remote-gitsnap")
        last = _last_by_part(repos["gitsnap"], env, tmp / "remote-gitsnap")
        logical = sum(sizes)
        result = {
            "checkpoints": args.checkpoints,
            "steps_between": args.steps,
            "lr": args.lr,
            "checkpoint_bytes": sizes[-1],
            "logical_bytes": logical,
            "gitsnap_remote_bytes": ours,
            "dvc_remote_bytes": theirs,
            "ratio_vs_dvc": round(ours / theirs, 3),
            "gitsnap_fraction_of_logical": round(ours / logical, 3),
            "forms": dict(forms),
            "shares": {k: round(v / ours, 3) for k, v in forms.items()},
            "last_checkpoint_by_part": last,
            "push_seconds_median": {t: round(util.median(v), 3) for t, v in times.items()},
            "load_average": os.getloadavg()[0],
        }
    print(
        f"{args.checkpoints} checkpoints of {fmt_bytes(sizes[-1])} ({args.steps} AdamW steps apart)"
    )
    print(
        f"  remote bytes: git snap {fmt_bytes(ours)}, dvc {fmt_bytes(theirs)}: "
        f"ratio {result['ratio_vs_dvc']:.3f}"
    )
    for k, v in forms.most_common():
        print(f"    {k:14s} {fmt_bytes(v):>10s}  {v / ours:6.1%}")
    print("  last checkpoint, stored / raw by part:")
    for part, (raw, stored) in last.items():
        print(f"    {part:14s} {fmt_bytes(raw):>9s} -> {fmt_bytes(stored):>9s} {stored / raw:.3f}")
    print(
        f"  push, median: git snap {result['push_seconds_median']['gitsnap']:.2f} s, "
        f"dvc {result['push_seconds_median']['dvc']:.2f} s"
    )
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
