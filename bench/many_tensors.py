"""Many small tensors (issue 17): push / pull of 20,000 x 16 KiB float32 tensors vs DVC.

A mixture-of-experts-like checkpoint: ``--count`` tensors of ``--elems``
float32 each (default 20,000 x 4,096 = 320 MiB) in one safetensors file.
Both tools get a fresh repository with a local-folder default DVC remote
(``dvc remote add -d storage <folder>``); each side saves (``git snap save``
/ ``dvc add``), commits, pushes, then a ``git clone`` of it pulls into an
empty cache. The same file, the same machine, the same run, alternating
which tool goes first; store and remote files are read once before each
timed command (warm page cache). Reported: wall times and their ratios,
files on each remote, the bytes each remote holds. ``--fine-tune`` then saves
the next version, every weight off by ~2e-4 of itself (push2: its push; pull2:
a fresh clone pulling it), as a training run's checkpoints are.

    .venv/bin/python bench/many_tensors.py                       # 20,000 x 16 KiB
    .venv/bin/python bench/many_tensors.py --count 5000 --repeats 3
    .venv/bin/python bench/many_tensors.py --remote s3           # on moto's S3 server
    .venv/bin/python bench/many_tensors.py --fine-tune           # + a dense fine-tune

``--remote s3`` starts moto's S3 API server (``python -m moto.server``) on a
free loopback port, gives each sample a bucket of its own, and configures
both tools with the same ``endpointurl``. Requests are counted from the
server's own access log (one line per HTTP request it answered), by method:
PUT (uploads and multipart parts), POST (multipart create / complete), GET
(ranged reads), LIST (``list-type=2``), HEAD, DELETE.

Prints a table and one JSON line; docs/benchmarks.md quotes a run.
"""

from __future__ import annotations

import argparse
import collections
import filecmp
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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


def _fine_tune(src: Path, dest: Path) -> Path:
    """The next version of ``src``: every weight off by ~2e-4 of itself (a dense update)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(1)
    tensors = load_file(str(src))
    save_file(
        {
            k: (
                v * (1 + rng.standard_normal(v.shape).astype(np.float32) * np.float32(2e-4))
            ).astype(np.float32)
            for k, v in tensors.items()
        },
        str(dest),
    )
    return dest


def _files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def _warm(path: Path) -> None:
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        util.warm(f)


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_REQUEST = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/')


@dataclass
class S3:
    """moto's S3 API server in a subprocess; every request it answers is a log line."""

    proc: subprocess.Popen[bytes]
    endpoint: str
    log: Path
    log_file: IO[bytes]
    buckets: int = 0

    @classmethod
    def start(cls, tmp: Path) -> S3:
        log = tmp / "moto.log"
        out = log.open("wb")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **S3_ENV},
        )  # fmt: skip
        endpoint = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise util.CommandFailed(f"moto server exited ({proc.returncode}); see {log}")
            try:
                opener.open(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise util.CommandFailed("moto server did not answer in 30 s") from None
                time.sleep(0.1)
        return cls(proc, endpoint, log, out)

    def bucket(self) -> str:
        import boto3

        self.buckets += 1
        name = f"bench-{self.buckets}"
        client = boto3.client("s3", endpoint_url=self.endpoint, **_boto_args())
        client.create_bucket(Bucket=name)
        return name

    def mark(self) -> int:
        time.sleep(0.2)  # let the server flush its log
        return self.log.stat().st_size

    def requests(self, since: int, bucket: str) -> dict[str, int]:
        """Requests on ``bucket`` logged since ``since``, by kind."""
        time.sleep(0.2)
        with self.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        out: collections.Counter[str] = collections.Counter()
        for m in _REQUEST.finditer(text):
            method, path = m[1], m[2]
            if not path.startswith(f"/{bucket}"):
                continue
            out["LIST" if method == "GET" and "list-type=2" in path else method] += 1
        return dict(out)

    def size(self, bucket: str) -> tuple[int, int]:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, **_boto_args())
        files = total = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                files += 1
                total += obj["Size"]
        return files, total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


def _boto_args() -> dict[str, Any]:
    return {
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
    }


def one(  # noqa: PLR0917 - the tool, its inputs, where, how, on what remote
    tool: str,
    src: Path,
    tmp: Path,
    env: dict[str, str],
    s3: S3 | None = None,
    tuned: Path | None = None,
) -> dict[str, float]:
    remote = tmp / f"remote-{tool}"
    bucket = ""
    if s3 is None:
        repo = util.git_repo(tmp / f"repo-{tool}", env, remote=remote)
    else:
        bucket = s3.bucket()
        repo = util.git_repo(tmp / f"repo-{tool}", env)
        util.run(["dvc", "remote", "add", "-d", "storage", f"s3://{bucket}"], repo, env)
        util.run(["dvc", "remote", "modify", "storage", "endpointurl", s3.endpoint], repo, env)
    if tool == "gitsnap":
        util.run(["git", "snap", "init"], repo, env)
    util.place(src, repo / CKPT)
    save = ["git", "snap", "save", CKPT] if tool == "gitsnap" else ["dvc", "add", "-q", CKPT]
    util.warm(repo / CKPT)
    saved = util.run(save, repo, env)
    util.commit_all(repo, env, "snapshot")
    _warm(repo / ".dvc" / "cache")
    push = ["git", "snap", "push"] if tool == "gitsnap" else ["dvc", "push", "-q"]
    mark = s3.mark() if s3 is not None else 0
    pushed = util.run(push, repo, env)
    push_requests = s3.requests(mark, bucket) if s3 is not None else {}
    clone = tmp / f"clone-{tool}"
    util.run(["git", "clone", "-q", str(repo), str(clone)], tmp, env)
    if s3 is None:
        _warm(remote)
    pull = ["git", "snap", "pull"] if tool == "gitsnap" else ["dvc", "pull", "-q"]
    mark = s3.mark() if s3 is not None else 0
    pulled = util.run(pull, clone, env)
    pull_requests = s3.requests(mark, bucket) if s3 is not None else {}
    if not filecmp.cmp(clone / CKPT, src, shallow=False):
        raise util.CommandFailed(f"{tool} pull did not restore the checkpoint byte-exactly")
    out = {
        "save": saved.wall,
        "push": pushed.wall,
        "pull": pulled.wall,
        "pull_peak_rss": float(pulled.maxrss),
    }
    if tuned is not None:  # the next version: every weight changed, pushed, pulled fresh
        util.place(tuned, repo / CKPT)
        util.warm(repo / CKPT)
        util.run(save, repo, env)
        util.commit_all(repo, env, "fine-tune")
        _warm(repo / ".dvc" / "cache")
        out["push2"] = util.run(push, repo, env).wall
        clone2 = tmp / f"clone2-{tool}"
        util.run(["git", "clone", "-q", str(repo), str(clone2)], tmp, env)
        if s3 is None:
            _warm(remote)
        out["pull2"] = util.run(pull, clone2, env).wall
        if not filecmp.cmp(clone2 / CKPT, tuned, shallow=False):
            raise util.CommandFailed(f"{tool} pull did not restore the fine-tune byte-exactly")
        shutil.rmtree(clone2, ignore_errors=True)
    if s3 is None:
        out["remote_files"] = float(_files(remote))
        out["remote_bytes"] = float(util.tree_size(remote))
    else:
        files, nbytes = s3.size(bucket)
        out["remote_files"], out["remote_bytes"] = float(files), float(nbytes)
        for kind in ("PUT", "POST", "GET", "LIST", "HEAD", "DELETE"):
            out[f"push_{kind}"] = float(push_requests.get(kind, 0))
            out[f"pull_{kind}"] = float(pull_requests.get(kind, 0))
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
    ap.add_argument("--remote", choices=("local", "s3"), default="local")
    ap.add_argument(
        "--fine-tune",
        action="store_true",
        help="then a dense fine-tune of it (every weight changed): push, and pull fresh",
    )
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gitsnap-bench-many-", dir=args.tmpdir) as d:
        tmp = Path(d)
        env = util.child_env(tmp / "home")
        (tmp / "home").mkdir()
        s3 = S3.start(tmp) if args.remote == "s3" else None
        if s3 is not None:
            env.update(S3_ENV)
        src = _checkpoint(tmp / CKPT, args.count, args.elems)
        tuned = _fine_tune(src, tmp / "tuned.safetensors") if args.fine_tune else None
        size = src.stat().st_size
        runs: dict[str, list[dict[str, float]]] = {"gitsnap": [], "dvc": []}
        try:
            for i in range(args.repeats):
                for tool in ("gitsnap", "dvc") if i % 2 == 0 else ("dvc", "gitsnap"):
                    runs[tool].append(one(tool, src, tmp / f"{tool}-{i}", env, s3, tuned))
                    r = runs[tool][-1]
                    print(
                        f"  #{i} {tool}: save {r['save']:.2f} s, push {r['push']:.2f} s, "
                        f"pull {r['pull']:.2f} s, "
                        + (
                            f"fine-tune push {r['push2']:.2f} s, pull {r['pull2']:.2f} s, "
                            if "push2" in r
                            else ""
                        )
                        + f"remote {int(r['remote_files'])} files "
                        f"{fmt_bytes(r['remote_bytes'])}, load {os.getloadavg()[0]:.2f}",
                        file=sys.stderr,
                    )
        finally:
            if s3 is not None:
                s3.stop()  # the server dies with the run, even a failed one

    def med(tool: str, key: str) -> float:
        return util.median([r[key] for r in runs[tool]])

    result = {
        "remote": args.remote,
        "tensors": args.count,
        "tensor_bytes": args.elems * 4,
        "checkpoint_bytes": size,
        "repeats": args.repeats,
        **{f"{t}_{k}": med(t, k) for t in runs for k in runs[t][0]},
    }
    steps = ("save", "push", "pull") + (("push2", "pull2") if args.fine_tune else ())
    for k in steps:
        result[f"{k}_ratio"] = round(med("gitsnap", k) / med("dvc", k), 3)
    result["remote_bytes_ratio"] = round(
        med("gitsnap", "remote_bytes") / med("dvc", "remote_bytes"), 3
    )
    print(
        f"{args.count} tensors x {fmt_bytes(args.elems * 4)} ({fmt_bytes(size)}), "
        f"median of {args.repeats}"
    )
    for k in steps:
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
    if s3 is not None:
        for step in ("push", "pull"):
            for t in runs:
                kinds = ("PUT", "POST", "GET", "LIST", "HEAD", "DELETE")
                counts = ", ".join(f"{k} {int(med(t, f'{step}_{k}'))}" for k in kinds)
                print(f"  {step} requests {t:7s}: {counts}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
