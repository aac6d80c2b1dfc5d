"""The fixtures themselves: each one really does what its docstring says."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import helpers


def _md5_path(data: bytes) -> str:
    """Where dvc 3 stores a file's bytes, relative to a cache or remote root."""
    digest = hashlib.md5(data).hexdigest()
    return f"files/md5/{digest[:2]}/{digest[2:]}"


def _dvc_add_and_push(repo: Path, data: bytes) -> str:
    (repo / "data.bin").write_bytes(data)
    helpers.dvc("add", "-q", "data.bin", cwd=repo)
    helpers.git("add", "data.bin.dvc", ".gitignore", cwd=repo)
    helpers.git("commit", "-q", "-m", "data", cwd=repo)
    helpers.dvc("push", "-q", cwd=repo)
    return _md5_path(data)


# --------------------------------------------------------------------------
# isolation


def test_isolated_home_environment(isolated_home: Path) -> None:
    assert Path(os.environ["HOME"]) == isolated_home
    assert Path.home() == isolated_home
    assert os.environ["GIT_CONFIG_NOSYSTEM"] == "1"
    assert not any(Path(os.environ["GIT_TEMPLATE_DIR"]).iterdir())
    assert os.environ["DVC_NO_ANALYTICS"] == "1"
    for name in ("DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "DVC_SITE_CACHE_DIR"):
        assert Path(os.environ[name]).is_relative_to(isolated_home.parent), name
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "SOURCE_DATE_EPOCH", "DVC_NOSCM"):
        assert name not in os.environ, name
    assert os.environ["PATH"].split(os.pathsep)[0] == os.fspath(helpers.VENV_BIN)


def test_git_sees_only_the_test_config(isolated_home: Path) -> None:
    listing = helpers.git("config", "--list", "--show-origin", cwd=isolated_home).stdout
    origins = {line.split("\t", 1)[0] for line in listing.splitlines()}
    assert origins == {f"file:{isolated_home / '.gitconfig'}"}
    assert "user.email=tests@gitsnap.invalid" in listing
    assert "init.defaultbranch=main" in listing
    assert "safe.directory=*" in listing


def test_dvc_reads_the_isolated_global_config(isolated_home: Path) -> None:
    out = helpers.dvc("config", "--global", "--list", cwd=isolated_home).stdout
    assert "core.analytics=false" in out.splitlines()


def test_git_snap_resolves_to_this_venv() -> None:
    found = shutil.which("git-snap")
    assert found is not None
    assert Path(found).parent == Path(sys.executable).parent


def test_run_reports_output_of_a_failing_command(git_repo: Path) -> None:
    with pytest.raises(helpers.CommandFailed, match=r"(?s)exited 128.*--- stderr ---\nfatal: "):
        helpers.git("rev-parse", "--verify", "HEAD")
    proc = helpers.git("rev-parse", "--verify", "HEAD", check=False)
    assert proc.returncode == 128
    assert isinstance(proc.stderr, str)


# --------------------------------------------------------------------------
# repositories


def test_git_repo_is_an_empty_repo_on_main(git_repo: Path) -> None:
    assert Path.cwd() == git_repo
    assert helpers.git("rev-parse", "--show-toplevel").stdout.strip() == os.fspath(git_repo)
    assert helpers.git("symbolic-ref", "HEAD").stdout.strip() == "refs/heads/main"
    assert helpers.git("rev-parse", "--verify", "HEAD", check=False).returncode != 0
    # The empty template dir means no sample hooks.
    hooks = git_repo / ".git" / "hooks"
    assert not hooks.exists() or not any(hooks.iterdir())


def test_git_repo_can_commit_with_the_test_identity(git_repo: Path) -> None:
    helpers.git("commit", "-q", "--allow-empty", "-m", "first")
    author = helpers.git("log", "-1", "--format=%an <%ae>").stdout.strip()
    assert author == "gitsnap tests <tests@gitsnap.invalid>"


def test_dvc_repo_is_initialised_and_committed(dvc_repo: Path) -> None:
    assert (dvc_repo / ".dvc" / "config").is_file()
    assert helpers.git("log", "--format=%s").stdout.splitlines() == ["init"]
    assert helpers.git("status", "--porcelain").stdout == ""
    tracked = helpers.git("ls-files").stdout.split()
    assert ".dvc/config" in tracked
    assert ".dvcignore" in tracked


def test_bare_origin_receives_a_push(git_repo: Path, bare_origin: Path) -> None:
    helpers.git("commit", "-q", "--allow-empty", "-m", "first")
    helpers.git("push", "-q", "origin", "main")
    head = helpers.git("rev-parse", "HEAD").stdout.strip()
    pushed = helpers.git("rev-parse", "refs/heads/main", cwd=bare_origin).stdout.strip()
    assert pushed == head
    assert helpers.git("rev-parse", "--is-bare-repository", cwd=bare_origin).stdout.strip() == (
        "true"
    )


# --------------------------------------------------------------------------
# remotes


def test_local_remote_receives_a_dvc_push(dvc_repo: Path, local_remote: Path) -> None:
    assert helpers.dvc("remote", "default").stdout.strip() == "storage"
    assert helpers.git("status", "--porcelain").stdout == ""
    data = b"local remote payload\n" * 10
    rel = _dvc_add_and_push(dvc_repo, data)
    assert (local_remote / rel).read_bytes() == data
    assert (dvc_repo / ".dvc" / "cache" / rel).read_bytes() == data


@pytest.mark.s3
def test_s3_server_is_a_running_child_process(
    moto_server: helpers.MotoServer, s3_server: str
) -> None:
    import psutil

    assert s3_server == moto_server.endpoint
    assert s3_server.startswith("http://127.0.0.1:")
    assert moto_server.process.poll() is None
    assert psutil.Process(moto_server.process.pid).ppid() == os.getpid()
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    helpers.wait_for_http(f"{s3_server}/moto-api/", timeout=5)


@pytest.mark.s3
def test_s3_remote_receives_a_dvc_push(dvc_repo: Path, s3_remote: str, s3_server: str) -> None:
    assert s3_remote.startswith("s3://gitsnap-test-")
    assert s3_remote.endswith("/prefix")
    assert helpers.list_s3_keys(s3_server, s3_remote) == []
    data = b"s3 remote payload\n" * 10
    rel = _dvc_add_and_push(dvc_repo, data)
    assert helpers.list_s3_keys(s3_server, s3_remote) == [rel]
    bucket, prefix = helpers.split_s3_url(s3_remote)
    body = helpers.s3_client(s3_server).get_object(Bucket=bucket, Key=f"{prefix}/{rel}")["Body"]
    assert body.read() == data


@pytest.mark.s3
def test_s3_remote_gets_a_fresh_bucket_each_time(s3_remote: str, s3_server: str) -> None:
    # A previous test pushed to its own bucket; this one starts empty.
    assert helpers.list_s3_keys(s3_server, s3_remote) == []


@pytest.mark.s3
def test_stop_process_ends_a_moto_server(tmp_path: Path) -> None:
    """The session teardown path, on a server of our own."""
    import psutil

    with (tmp_path / "moto.log").open("wb") as log:
        proc, endpoint = helpers.start_moto_server(log)
        try:
            helpers.wait_for_http(endpoint, timeout=5)
        finally:
            returncode = helpers.stop_process(proc)
    assert returncode is not None
    assert not psutil.pid_exists(proc.pid)
    with pytest.raises(TimeoutError):
        helpers.wait_for_http(endpoint, timeout=0.5)


# --------------------------------------------------------------------------
# checkpoints


def _load(path: Path) -> dict[str, Any]:
    import safetensors.torch

    return dict(safetensors.torch.load_file(path))


def test_make_checkpoint_is_deterministic(
    tmp_path: Path, make_checkpoint: Callable[..., Path]
) -> None:
    a = make_checkpoint(tmp_path / "a.safetensors", seed=3)
    b = make_checkpoint(tmp_path / "b.safetensors", seed=3)
    c = make_checkpoint(tmp_path / "c.safetensors", seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    tensors = _load(a)
    assert {"embed.weight", "norm.weight", "head.weight", "head.bias"} <= tensors.keys()
    assert any(name.startswith("blocks.1.") for name in tensors)
    # Every tensor depends on the seed (LayerNorms included).
    other = _load(c)
    import torch

    assert all(not torch.equal(tensors[k], other[k]) for k in tensors)


def test_make_checkpoint_modify_changes_only_the_prefix(
    tmp_path: Path, make_checkpoint: Callable[..., Path]
) -> None:
    import torch

    for dtype in ("float32", "bf16", "f16"):
        base = _load(make_checkpoint(tmp_path / f"base-{dtype}.safetensors", dtype=dtype))
        tuned = _load(
            make_checkpoint(tmp_path / f"tuned-{dtype}.safetensors", dtype=dtype, modify=("head",))
        )
        assert base.keys() == tuned.keys()
        changed = {k for k in base if not torch.equal(base[k], tuned[k])}
        assert changed == {"head.weight", "head.bias"}, dtype


def test_make_checkpoint_dtype_and_size(
    tmp_path: Path, make_checkpoint: Callable[..., Path]
) -> None:
    import torch

    bf16 = _load(make_checkpoint(tmp_path / "bf16.safetensors", dtype="bf16"))
    assert {t.dtype for t in bf16.values()} == {torch.bfloat16}
    f16 = _load(make_checkpoint(tmp_path / "f16.safetensors", dtype=torch.float16))
    assert {t.dtype for t in f16.values()} == {torch.float16}
    small = make_checkpoint(tmp_path / "small.safetensors").stat().st_size
    big = make_checkpoint(tmp_path / "big.safetensors", hidden=128).stat().st_size
    assert 50_000 < small < 500_000
    assert big > 10 * small
    with pytest.raises(ValueError, match="unknown dtype"):
        make_checkpoint(tmp_path / "bad.safetensors", dtype="int3")


def test_make_checkpoint_leaves_the_global_rng_alone(
    tmp_path: Path, make_checkpoint: Callable[..., Path]
) -> None:
    import torch

    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    make_checkpoint(tmp_path / "m.safetensors", seed=9, modify=("head",))
    assert torch.equal(torch.rand(4), expected)


def test_write_safetensors_numpy_torch_and_metadata(tmp_path: Path) -> None:
    import numpy as np
    import safetensors
    import torch

    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(4, np.int64)}
    path = helpers.write_safetensors(tmp_path / "sub" / "np.safetensors", arrays, {"k": "v"})
    with safetensors.safe_open(path, framework="np") as f:
        assert f.metadata() == {"k": "v"}
        np.testing.assert_array_equal(f.get_tensor("a"), arrays["a"])
        np.testing.assert_array_equal(f.get_tensor("b"), arrays["b"])

    bf16 = torch.arange(3, dtype=torch.bfloat16)
    mixed = {"n": np.ones((2, 2), np.float16), "t": bf16}
    path = helpers.write_safetensors(tmp_path / "mixed.safetensors", mixed)
    loaded = _load(path)
    assert torch.equal(loaded["n"], torch.ones(2, 2, dtype=torch.float16))
    assert torch.equal(loaded["t"], bf16)


def test_stop_process_kills_what_ignores_sigterm() -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    with proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        assert helpers.stop_process(proc, timeout=0.5) == -signal.SIGKILL
