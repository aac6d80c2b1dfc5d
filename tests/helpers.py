"""Plain helpers shared by the test suite: processes, servers, checkpoints.

Everything here runs the real thing (git, dvc, ``git snap``, moto's S3 server,
torch); the fixtures in ``conftest.py`` are thin wrappers around these
functions. This module must not import gitsnap, and it imports torch, numpy,
safetensors and boto3 only inside the functions that need them so that tests
which never build a model do not pay torch's start-up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

# The virtualenv's bin dir: `git snap` resolves `git-snap` from PATH, and the
# isolation fixture puts this directory first.
VENV_BIN = Path(sys.executable).parent

TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never fall back to the EC2 metadata service (slow timeouts off EC2).
    "AWS_EC2_METADATA_DISABLED": "true",
}

GITCONFIG = """\
[user]
\tname = gitsnap tests
\temail = tests@gitsnap.invalid
[init]
\tdefaultBranch = main
[safe]
\tdirectory = *
[commit]
\tgpgsign = false
[tag]
\tgpgsign = false
"""


class RunSnap(Protocol):
    """The ``run_snap`` fixture: :func:`run_snap`."""

    def __call__(
        self,
        *args: str | os.PathLike[str],
        cwd: str | os.PathLike[str] | None = ...,
        check: bool = ...,
        input: str | None = ...,
        env: Mapping[str, str] | None = ...,
        timeout: float = ...,
    ) -> subprocess.CompletedProcess[str]: ...


class MakeCheckpoint(Protocol):
    """The ``make_checkpoint`` fixture: :func:`make_checkpoint`."""

    def __call__(
        self,
        path: str | os.PathLike[str],
        *,
        seed: int = ...,
        modify: Iterable[str] = ...,
        modify_seed: int = ...,
        dtype: str | torch.dtype = ...,
        hidden: int = ...,
        layers: int = ...,
        metadata: Mapping[str, str] | None = ...,
    ) -> Path: ...


class CommandFailed(AssertionError):
    """A checked command exited non-zero; the message carries its output."""


# --------------------------------------------------------------------------
# processes


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and capture text output.

    ``env`` entries are added to (not substituted for) the current
    environment. With ``check`` a non-zero exit raises :class:`CommandFailed`
    whose message includes stdout and stderr, which pytest then shows --
    ``CalledProcessError`` would hide them.
    """
    full_env = None if env is None else {**os.environ, **env}
    proc = subprocess.run(
        [os.fspath(c) for c in cmd],
        cwd=cwd,
        input=input,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"command {proc.args!r} exited {proc.returncode} in {cwd or Path.cwd()}\n"
            f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
        )
    return proc


def git(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``git``."""
    return run(["git", *args], cwd=cwd, check=check)


def dvc(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``dvc`` CLI of this interpreter (``python -m dvc``)."""
    return run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=check)


def run_snap(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as ``git snap ARGS...``.

    git finds ``git-snap`` on PATH, exactly as for a user. Note that git
    itself turns ``git snap --help`` into ``git help snap`` (a man page); use
    ``-h`` to reach the CLI's own help.
    """
    return run(["git", "snap", *args], cwd=cwd, check=check, input=input, env=env, timeout=timeout)


def write_gitconfig(home: Path) -> Path:
    """Write the test identity and defaults to ``home/.gitconfig``."""
    path = home / ".gitconfig"
    path.write_text(GITCONFIG, encoding="utf-8")
    return path


def init_git_repo(path: Path) -> Path:
    """``git init`` at ``path`` (no commit); the branch is ``main``."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", path)
    return path


def commit_all(repo: Path, message: str) -> str:
    """``git add -A && git commit -m MESSAGE`` in ``repo``; the new commit's id."""
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def stored_raw_bytes(repo: Path) -> int:
    """The raw bytes of every object in a repository's local store, loose or packed."""
    from gitsnap.store import ObjectStore

    store = ObjectStore(repo / ".dvc" / "cache" / "gitsnap" / "blake3")
    loose = sum(store.path(oid).stat().st_size for oid in store.iter_oids())
    return loose + sum(e.raw_size for e in store.packs().entries())


def init_dvc_repo(path: Path) -> Path:
    """``dvc init`` inside an existing git work tree and commit it as ``init``."""
    dvc("init", "-q", cwd=path)
    git("commit", "-q", "-m", "init", cwd=path)
    return path


def add_dvc_remote(repo: Path, name: str, url: str, **options: str) -> None:
    """``dvc remote add -d NAME URL`` + ``dvc remote modify`` per option; commit it."""
    dvc("remote", "add", "-d", name, url, cwd=repo)
    for key, value in options.items():
        dvc("remote", "modify", name, key, value, cwd=repo)
    git("add", ".dvc/config", cwd=repo)
    git("commit", "-q", "-m", f"dvc remote {name}", cwd=repo)


# --------------------------------------------------------------------------
# S3 (moto server)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller retries on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(
    url: str, *, timeout: float = 30, proc: subprocess.Popen[Any] | None = None
) -> None:
    """Return once ``url`` answers HTTP (any status); fail if ``proc`` dies first."""
    deadline = time.monotonic() + timeout
    # Loopback only: never let a proxy from the environment get in the way.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with opener.open(url, timeout=2):
                return
        except urllib.error.HTTPError as answer:
            answer.close()
            return  # an error status is still an answer
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.1)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> int:
    """SIGTERM ``proc``, SIGKILL it if it is still alive after ``timeout``; reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


@dataclass(frozen=True)
class MotoServer:
    """A running moto S3 API server: its process, endpoint URL and log file."""

    process: subprocess.Popen[bytes]
    endpoint: str
    log: Path


def start_moto_server(
    log: IO[bytes], *, host: str = "127.0.0.1", attempts: int = 3
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m moto.server`` on a free loopback port.

    Returns the process and its endpoint URL once it answers HTTP. The
    server logs every request, so its output goes to ``log`` (a file), never
    to a pipe nobody reads. A lost race for the port is retried.
    """
    last_error: Exception | None = None
    for _ in range(attempts):
        port = free_port(host)
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        endpoint = f"http://{host}:{port}"
        try:
            wait_for_http(f"{endpoint}/moto-api/", proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            stop_process(proc)
            last_error = exc
            continue
        return proc, endpoint
    raise RuntimeError(f"could not start the moto S3 server: {last_error}")


def switch_moto_auth_on(endpoint: str) -> None:
    """From now on the moto server at ``endpoint`` checks keys: none is valid."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    opener.open(req, timeout=10).read()


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for the test server (credentials from the test env)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=TEST_AWS_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")


def list_s3_keys(endpoint: str, url: str) -> list[str]:
    """All object keys under an ``s3://bucket/prefix`` URL, relative to the prefix, sorted."""
    bucket, prefix = split_s3_url(url)
    start = f"{prefix}/" if prefix else ""
    keys: list[str] = []
    paginator = s3_client(endpoint).get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=start):
        keys.extend(obj["Key"][len(start) :] for obj in page.get("Contents", []))
    return sorted(keys)


# --------------------------------------------------------------------------
# checkpoints

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "f32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "f16": "float16",
}


def _torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        result: torch.dtype = getattr(torch, _DTYPES[dtype.lower()])
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None
    return result


def make_state_dict(
    *,
    seed: int = 0,
    modify: Iterable[str] = (),
    modify_seed: int = 1,
    dtype: str | torch.dtype = "float32",
    hidden: int = 32,
    layers: int = 2,
    vocab: int = 128,
    classes: int = 10,
) -> dict[str, torch.Tensor]:
    """The state dict of a tiny, seeded transformer-ish classifier.

    Tensor names: ``embed.weight``, ``blocks.{i}.norm.{weight,bias}``,
    ``blocks.{i}.fc1.{weight,bias}``, ``blocks.{i}.fc2.{weight,bias}``,
    ``norm.{weight,bias}``, ``head.{weight,bias}``.

    The same ``seed`` always gives the same tensors. ``modify`` lists name
    prefixes (e.g. ``("head",)``) whose tensors get noise seeded by
    ``modify_seed`` while every other tensor stays bit-identical: a
    "fine-tuned head" version of the same base. The noise is large enough to
    change every perturbed tensor even in bf16/f16. ``hidden`` (width) and
    ``layers`` scale the size: about ``(vocab + 8 * hidden * layers) * hidden``
    parameters.
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(hidden)
            self.fc1 = nn.Linear(hidden, 4 * hidden)
            self.fc2 = nn.Linear(4 * hidden, hidden)

    class TinyModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.norm = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, classes)

    # fork_rng keeps the caller's global RNG untouched; devices=[] avoids
    # touching (or warning about) accelerators.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyModel()
        # LayerNorm starts at exactly ones/zeros; give it seeded values too so
        # that every tensor depends on the seed.
        for name, param in model.named_parameters():
            if ".norm." in f".{name}":
                with torch.no_grad():
                    param.add_(0.1 * torch.randn_like(param))
    state = {name: t.detach().clone() for name, t in model.state_dict().items()}

    prefixes = tuple(modify)
    if prefixes:
        gen = torch.Generator().manual_seed(modify_seed)
        for name in sorted(state):
            if name.startswith(prefixes):
                noise = torch.randn(state[name].shape, generator=gen)
                state[name] = state[name] + 0.05 * noise
    target = _torch_dtype(dtype)
    return {name: t.to(target).contiguous() for name, t in state.items()}


def make_checkpoint(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    modify: Iterable[str] = (),
    modify_seed: int = 1,
    dtype: str | torch.dtype = "float32",
    hidden: int = 32,
    layers: int = 2,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write :func:`make_state_dict`'s model to ``path`` as safetensors; return the path.

    ``make_checkpoint(p1, seed=0)`` then ``make_checkpoint(p2, seed=0,
    modify=("head",))`` gives a base and a head-only fine-tune of it.
    """
    state = make_state_dict(
        seed=seed,
        modify=modify,
        modify_seed=modify_seed,
        dtype=dtype,
        hidden=hidden,
        layers=layers,
    )
    return write_safetensors(path, state, metadata=metadata)


def write_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write numpy arrays and/or torch tensors to a safetensors file; return the path.

    All-numpy input is written with ``safetensors.numpy`` (torch is not
    imported); any torch tensor in the mapping switches to
    ``safetensors.torch`` with the numpy arrays converted.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = None if metadata is None else dict(metadata)
    if any(type(v).__module__.startswith("torch") for v in tensors.values()):
        import numpy as np
        import safetensors.torch
        import torch

        converted = {
            k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v)
            for k, v in tensors.items()
        }
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in converted.items()}, out, metadata=meta
        )
    else:
        import numpy as np
        import safetensors.numpy

        safetensors.numpy.save_file(
            {k: np.ascontiguousarray(v) for k, v in tensors.items()}, out, metadata=meta
        )
    return out


# ---------------------------------------------------------------- docs/python-api.md's examples

PYTHON_API_DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def doc_example(framework: str) -> str:
    """The ```py block of docs/python-api.md that uses ``gitsnap.integrations.FRAMEWORK``,
    followed by a line printing its callback's results (``snap.results``) as JSON."""
    import re

    blocks = re.findall(r"```py\n(.*?)```", PYTHON_API_DOC.read_text(encoding="utf-8"), re.S)
    [block] = [b for b in blocks if f"from gitsnap.integrations.{framework} import" in b]
    report = (
        "import json\n"
        'print(json.dumps([{"path": r.path, "snapshot": r.snapshot_id} for r in snap.results]))\n'
    )
    return block + report


# The real trainers run offline: nothing is fetched from a hub.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",
}


def train_doc_example(framework: str, repo: Path) -> list[dict[str, str]]:
    """Run :func:`doc_example` (a real training run) in ``repo``, offline, with this
    checkout's gitsnap first on the path; its callback's results."""
    import json
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", doc_example(framework)],
        cwd=repo,
        env={**os.environ, **OFFLINE, "PYTHONPATH": str(PYTHON_API_DOC.parents[1])},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    results: list[dict[str, str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


# ---------------------------------------------------------------- the JS consumers of our output

JS = Path(__file__).parent / "js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require_js(*modules: str, chromium: bool = False) -> None:
    """Fail (never skip) unless node, the pinned ``tests/js`` packages ``modules`` and, with
    ``chromium``, Debian's Chromium are installed: ``bash .ci/run`` installs them all."""
    import pytest

    missing = []
    if chromium and not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs npm)")
    missing += [
        f"{m} (npm ci --prefix {JS})" for m in modules if not (JS / "node_modules" / m).exists()
    ]
    if missing:
        pytest.fail("missing: " + "; ".join(missing) + ". bash .ci/run installs them.")
