"""git snap fsck (issue 7, point 4): re-hash every object, report problems by snapshot and tensor.

Objects are damaged and deleted by hand in the real local store and on real
DVC remotes (a folder, and S3 on moto); exit codes follow DESIGN §3.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitsnap.pointer import Pointer, loads
from tests import helpers
from tests.helpers import git, make_checkpoint, run_snap

MODEL = "models/model.safetensors"
OBJECTS = "gitsnap/blake3"


def _save_commit(repo: Path, message: str, **kwargs: Any) -> tuple[str, Pointer]:
    make_checkpoint(repo / MODEL, **kwargs)
    run_snap("save", MODEL, cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    return commit, loads((repo / (MODEL + ".snap")).read_bytes())


def _oid(ptr: Pointer, tensor: str) -> str:
    return next(t.oid for t in ptr.tensors if t.name == tensor)


def _object(repo: Path, oid: str) -> Path:
    return repo / ".dvc" / "cache" / OBJECTS / oid[:2] / oid[2:]


def _damage(path: Path) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _fsck(repo: Path, *args: str) -> tuple[int, Any, str]:
    proc = run_snap("fsck", *args, "--json", cwd=repo, check=False)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.fixture
def two_versions(dvc_repo: Path) -> dict[str, Any]:
    c1, p1 = _save_commit(dvc_repo, "v1", seed=0)
    c2, p2 = _save_commit(dvc_repo, "v2", seed=0, modify=("head",))
    return {"repo": dvc_repo, "c1": c1, "p1": p1, "c2": c2, "p2": p2}


def test_clean_store_passes(two_versions: dict[str, Any]) -> None:
    repo = two_versions["repo"]
    code, res, _ = _fsck(repo)
    n = len(two_versions["p1"].oids() | two_versions["p2"].oids())
    assert code == 0 and res["ok"] is True and res["problems"] == []
    assert (
        res["objects_checked"] == n
        and res["scope"] == "work tree + HEAD"
        and res["target"] == "local"
    )
    assert run_snap("fsck", cwd=repo).stdout.endswith(": ok\n")


def test_corrupt_object_is_named_by_snapshot_and_tensor(two_versions: dict[str, Any]) -> None:
    repo, c1, c2 = two_versions["repo"], two_versions["c1"], two_versions["c2"]
    shared = _oid(two_versions["p1"], "embed.weight")  # in both versions
    _damage(_object(repo, shared))
    head_only = _oid(two_versions["p1"], "head.weight")  # v1's head: only the old commit has it
    _damage(_object(repo, head_only))

    code, res, _ = _fsck(repo)
    assert code == 1 and res["ok"] is False and res["corrupt"] == 2 and res["missing"] == 0
    problems = {p["oid"]: p for p in res["problems"]}
    assert {p["problem"] for p in problems.values()} == {"corrupt"}
    uses = {(u["snapshot"], u["segment"]) for u in problems[shared]["uses"]}
    assert uses == {
        (f"{MODEL}@{c1[:10]}", "tensor 'embed.weight'"),
        (f"{MODEL}@{c2[:10]}", "tensor 'embed.weight'"),
    }
    assert problems[head_only]["uses"] == [
        {
            "snapshot": f"{MODEL}@{c1[:10]}",
            "path": MODEL,
            "commit": c1,
            "segment": "tensor 'head.weight'",
        }
    ]
    proc = run_snap("fsck", cwd=repo, check=False)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert f"{MODEL}@{c1[:10]}" in lines
    assert f"\tcorrupt: tensor 'head.weight' (object {head_only[:12]}…)" in lines
    assert (
        "2 corrupt, 0 missing" in proc.stdout and "hint: delete the damaged objects" in proc.stdout
    )


def test_missing_objects_in_scope(two_versions: dict[str, Any]) -> None:
    repo, c1 = two_versions["repo"], two_versions["c1"]
    old_head = _oid(two_versions["p1"], "head.bias")  # only in v1 (commit c1)
    _object(repo, old_head).unlink()
    assert _fsck(repo)[0] == 0  # not needed by the work tree or HEAD: not a problem by default

    code, res, _ = _fsck(repo, "--all-commits")
    assert code == 1 and res["missing"] == 1 and res["scope"] == "all commits"
    [p] = res["problems"]
    assert p["problem"] == "missing" and p["oid"] == old_head
    assert [(u["snapshot"], u["segment"]) for u in p["uses"]] == [
        (f"{MODEL}@{c1[:10]}", "tensor 'head.bias'")
    ]
    assert _fsck(repo, c1)[0] == 1
    assert _fsck(repo, "HEAD")[0] == 0

    new_head = _oid(two_versions["p2"], "head.weight")
    _object(repo, new_head).unlink()
    code, res, _ = _fsck(repo)
    assert code == 1 and [p["oid"] for p in res["problems"]] == [new_head]
    text = run_snap("fsck", cwd=repo, check=False).stdout
    assert "missing: tensor 'head.weight'" in text and "git snap fetch downloads them" in text


def test_registry_reference_as_scope(two_versions: dict[str, Any]) -> None:
    repo, c1 = two_versions["repo"], two_versions["c1"]
    run_snap("tag", "model", "v1.0.0", c1, cwd=repo)
    _object(repo, _oid(two_versions["p1"], "head.bias")).unlink()
    code, res, _ = _fsck(repo, "model@v1.0.0")
    assert code == 1 and res["missing"] == 1 and res["scope"] == c1


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def remote_files(request: pytest.FixtureRequest, dvc_repo: Path) -> Any:
    """(write(key, data), delete(key)) on the default remote, keys relative to its root."""
    if request.param == "local":
        root = request.getfixturevalue("local_remote")

        def write(key: str, data: bytes) -> None:
            (root / key).chmod(stat.S_IRUSR | stat.S_IWUSR)
            (root / key).write_bytes(data)

        return write, lambda key: (root / key).unlink()
    url = request.getfixturevalue("s3_remote")
    client = helpers.s3_client(request.getfixturevalue("s3_server"))
    bucket, prefix = helpers.split_s3_url(url)
    return (
        lambda key, data: client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data),
        lambda key: client.delete_object(Bucket=bucket, Key=f"{prefix}/{key}"),
    )


def test_remote_fsck_streams_and_reports(two_versions: dict[str, Any], remote_files: Any) -> None:
    repo, c2, p2 = two_versions["repo"], two_versions["c2"], two_versions["p2"]
    write, delete = remote_files
    run_snap("push", "--all", cwd=repo)
    code, res, _ = _fsck(repo, "--remote")
    assert code == 0 and res["target"] == "remote" and res["remote"] == "storage"
    assert res["objects_checked"] == len(two_versions["p1"].oids() | p2.oids())

    bad, gone = _oid(p2, "head.weight"), _oid(p2, "norm.bias")
    write(f"{OBJECTS}/{bad[:2]}/{bad[2:]}", b"not the weights")
    delete(f"{OBJECTS}/{gone[:2]}/{gone[2:]}")
    code, res, _ = _fsck(repo, "--remote")
    assert code == 1 and (res["corrupt"], res["missing"]) == (1, 1)
    found = {p["problem"]: p for p in res["problems"]}
    assert found["corrupt"]["oid"] == bad and found["missing"]["oid"] == gone
    assert (f"{MODEL}@{c2[:10]}", "tensor 'norm.bias'") in {
        (u["snapshot"], u["segment"]) for u in found["missing"]["uses"]
    }
    assert _fsck(repo)[0] == 0  # the local store is fine
    text = run_snap("fsck", "--remote", cwd=repo, check=False).stdout
    assert "corrupt: tensor 'head.weight'" in text and "missing: tensor 'norm.bias'" in text


def test_progress_only_on_a_terminal(two_versions: dict[str, Any]) -> None:
    import pty

    repo = two_versions["repo"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [os.fspath(helpers.VENV_BIN / "git-snap"), "fsck", "-j", "3"],
        cwd=repo,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    n = len(two_versions["p1"].oids() | two_versions["p2"].oids())
    shown = b"".join(chunks).decode(errors="replace")
    assert "fsck [" in shown and f"{n}/{n} objects" in shown and "100.0%" in shown
    assert run_snap("fsck", cwd=repo).stderr == ""  # not a terminal: no progress


@pytest.mark.parametrize("kind", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_remote_fsck_on_a_missing_bucket_is_a_remote_error(
    two_versions: dict[str, Any], kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A bucket (or remote folder) that does not exist is the remote's error, exit 3.

    Not "every object missing" (exit 1), which would send the user re-pushing
    into a remote that cannot hold anything.
    """
    repo = two_versions["repo"]
    if kind == "local":
        helpers.add_dvc_remote(repo, "storage", os.fspath(tmp_path / "no-such-folder"))
        what = "the remote folder does not exist"
    else:
        endpoint = request.getfixturevalue("s3_server")
        helpers.add_dvc_remote(
            repo, "storage", "s3://gitsnap-no-such-bucket/prefix", endpointurl=endpoint
        )
        what = "the bucket does not exist"
    proc = run_snap("fsck", "--remote", cwd=repo, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "error: remote 'storage'" in proc.stderr and what in proc.stderr
    assert "hint: create it, or fix the url: dvc remote modify storage url URL" in proc.stderr
    assert "missing" not in proc.stdout
    # gc --remote must not treat it as an empty remote either
    proc = run_snap("gc", "--remote", "--all-commits", "--dry-run", cwd=repo, check=False)
    assert proc.returncode == 3 and what in proc.stderr
