"""The demo (``make demo``, or ``python examples/demo.py [--keep]`` with ``gitsnap[torch]``).

In a temporary folder it creates a git repository with a local-folder DVC
remote, trains a small torch model, and runs the real ``git snap`` commands a
user would: save a baseline with metrics, fine-tune only the classifier head,
save again, look at status / log / show, check out the baseline and prove the
bytes match. Every command is printed before it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gitsnap import dvcconfig

BIN = Path(sys.executable).parent


def sh(*cmd: str, cwd: Path, show: bool = True) -> str:
    if show:
        print(f"\n$ {shlex.join(cmd)}", flush=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    out = (proc.stdout + proc.stderr).rstrip()
    if show and out:
        print(out, flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo step failed (exit {proc.returncode}): {shlex.join(cmd)}")
    return proc.stdout


def train(path: Path, *, head_only_from: Path | None = None, steps: int = 30) -> dict[str, float]:
    """Train a small MLP classifier on a synthetic task; return its metrics."""
    import torch
    from safetensors.torch import load_file, save_file
    from torch import nn

    torch.manual_seed(0)
    x = torch.randn(2048, 64)
    y = (x[:, :8].sum(dim=1) > 0).long() + (x[:, 8:16].sum(dim=1) > 0).long()
    noisy = torch.rand(len(y)) < 0.2  # label noise keeps accuracy honest
    y[noisy] = torch.randint(0, 3, (int(noisy.sum()),))
    model = nn.Sequential()
    encoder = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    model.add_module("encoder", encoder)
    model.add_module("head", nn.Linear(256, 3))
    if head_only_from is not None:
        model.load_state_dict(load_file(head_only_from))
        for p in encoder.parameters():
            p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        torch.autograd.backward(loss)
        opt.step()
    with torch.no_grad():
        logits = model(x)
        acc = (logits.argmax(dim=1) == y).float().mean().item()
        loss_v = nn.functional.cross_entropy(logits, y).item()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return {"accuracy": round(acc, 4), "loss": round(loss_v, 4)}


def main() -> None:
    keep = "--keep" in sys.argv
    base = Path(tempfile.mkdtemp(prefix="gitsnap-demo-"))
    repo, remote = base / "project", base / "remote"
    repo.mkdir()
    remote.mkdir()
    try:
        print(f"gitsnap demo in {repo} (local-folder remote: {remote})")
        sh("git", "init", "-q", "-b", "main", cwd=repo)
        sh("git", "config", "user.email", "demo@gitsnap.invalid", cwd=repo, show=False)
        sh("git", "config", "user.name", "gitsnap demo", cwd=repo, show=False)
        sh("git", "snap", "init", "--remote", str(remote), cwd=repo)
        sh("git", "add", "-A", cwd=repo, show=False)
        sh("git", "commit", "-qm", "set up gitsnap", cwd=repo, show=False)

        ckpt = repo / "models" / "model.safetensors"
        print("\n# train a small classifier (torch, CPU)")
        metrics = train(ckpt)
        (repo / "eval.json").write_text(json.dumps(metrics))
        sh(
            "git",
            "snap",
            "save",
            "models/model.safetensors",
            "-m",
            "baseline",
            "--metrics",
            "eval.json",
            "-P",
            "lr=3e-3",
            cwd=repo,
        )
        sh("git", "add", "models/model.safetensors.snap", ".gitignore", "eval.json", cwd=repo)
        sh("git", "commit", "-qm", "baseline model", cwd=repo)
        baseline_sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()

        print("\n# fine-tune only the classifier head (the encoder is frozen)")
        metrics = train(ckpt, head_only_from=ckpt, steps=30)
        (repo / "eval.json").write_text(json.dumps(metrics))
        sh("git", "snap", "status", cwd=repo)
        sh(
            "git",
            "snap",
            "save",
            "models/model.safetensors",
            "-m",
            "new head",
            "--metrics",
            "eval.json",
            cwd=repo,
        )
        sh("git", "commit", "-qam", "new head", cwd=repo)
        sh("git", "snap", "status", cwd=repo)
        sh("git", "snap", "log", "models/model.safetensors", cwd=repo)
        sh("git", "diff", "HEAD~1", "--stat", cwd=repo)
        print("\n# the review: what changed in the weights and the metrics")
        sh("git", "snap", "diff", "HEAD~1", "HEAD", cwd=repo)
        report = repo / "model-review.md"
        report.write_text(
            sh(
                "git",
                "snap",
                "diff",
                "HEAD~1",
                "HEAD",
                "--format",
                "markdown",
                cwd=repo,
                show=False,
            )
        )
        print(f"(the pull-request comment: {report}; --format html writes one page)")

        # Wherever DVC keeps its cache (a `dvc cache dir --global` is honoured).
        store = dvcconfig.cache_dir(repo / ".dvc") / "gitsnap" / "blake3"
        stored = sum(p.stat().st_size for p in store.glob("??/*"))
        size = ckpt.stat().st_size
        print(
            f"\n# two versions of a {size / 2**20:.2f} MiB checkpoint take "
            f"{stored / 2**20:.2f} MiB in the store "
            f"(a full copy per version would take {2 * size / 2**20:.2f} MiB)"
        )

        sh("git", "snap", "checkout", "HEAD~1", cwd=repo)
        restored_sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
        print(f"\nbaseline sha256  {baseline_sha}\nrestored sha256  {restored_sha}")
        if restored_sha != baseline_sha:
            raise SystemExit("demo failed: the restored checkpoint differs from the baseline")
        print("byte-identical: the baseline is back.")
        sh("git", "snap", "checkout", "HEAD", cwd=repo)
        print("\ndemo finished." + (f" The repository is kept at {repo}" if keep else ""))
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
