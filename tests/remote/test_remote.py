"""push / fetch / pull / status --remote against real DVC remotes (issue 4).

Every scenario runs twice: against a local-folder remote and against an S3
remote on moto's S3 API server (marked ``s3``), both configured with the real
``dvc remote add`` / ``dvc remote modify``. Commands run as ``git snap ...``
subprocesses; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import helpers
import pytest
import yaml

from gitsnap.store import ObjectStore

OBJECTS = "gitsnap/blake3"


# --------------------------------------------------------------------------
# remotes under test


@dataclass
class RemoteUnderTest:
    """One DVC remote, seen from outside gitsnap: list, read, damage its files."""

    kind: str
    url: str
    keys: Callable[[], list[str]]  # every file, relative to the remote's root
    read: Callable[[str], bytes]
    write: Callable[[str, bytes], None]
    delete: Callable[[str], None]

    def oids(self) -> set[str]:
        out = set()
        for key in self.keys():
            parts = key.split("/")
            if key.startswith(OBJECTS + "/") and len(parts) == 4 and len(parts[2]) == 2:
                out.add(parts[2] + parts[3])
        return out

    def key(self, oid: str) -> str:
        return f"{OBJECTS}/{oid[:2]}/{oid[2:]}"


def _local_remote(root: Path) -> RemoteUnderTest:
    def keys() -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def write(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.chmod(stat.S_IWUSR | stat.S_IRUSR)
        path.write_bytes(data)

    return RemoteUnderTest(
        "local",
        os.fspath(root),
        keys,
        lambda key: (root / key).read_bytes(),
        write,
        lambda key: (root / key).unlink(),
    )


def _s3_remote(endpoint: str, url: str) -> RemoteUnderTest:
    bucket, prefix = helpers.split_s3_url(url)
    client = helpers.s3_client(endpoint)

    def full(key: str) -> str:
        return f"{prefix}/{key}" if prefix else key

    return RemoteUnderTest(
        "s3",
        url,
        lambda: helpers.list_s3_keys(endpoint, url),
        lambda key: client.get_object(Bucket=bucket, Key=full(key))["Body"].read(),
        lambda key, data: client.put_object(Bucket=bucket, Key=full(key), Body=data),
        lambda key: client.delete_object(Bucket=bucket, Key=full(key)),
    )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def remote(request: pytest.FixtureRequest, dvc_repo: Path) -> RemoteUnderTest:
    """The default DVC remote ``storage`` of ``dvc_repo``: a folder, then S3 (moto)."""
    if request.param == "local":
        return _local_remote(request.getfixturevalue("local_remote"))
    url = request.getfixturevalue("s3_remote")
    return _s3_remote(request.getfixturevalue("s3_server"), url)


# --------------------------------------------------------------------------
# helpers


def _tensors(n: int, elems: int, seed: int, changed: tuple[int, ...] = ()) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {f"layer.{i:03d}.weight": rng.standard_normal(elems, dtype=np.float32) for i in range(n)}
    for i in changed:
        out[f"layer.{i:03d}.weight"] = out[f"layer.{i:03d}.weight"] + np.float32(1.0)
    return out


def _checkpoint(
    path: Path, n: int = 12, elems: int = 4096, seed: int = 0, changed: tuple[int, ...] = ()
) -> Path:
    return helpers.write_safetensors(path, _tensors(n, elems, seed, changed))


def _save_commit(repo: Path, rel: str, message: str) -> None:
    helpers.run_snap("save", rel, "-m", message, cwd=repo)
    helpers.git("add", "-A", cwd=repo)
    helpers.git("commit", "-q", "-m", message, cwd=repo)


def _pointer(repo: Path, rel: str, rev: str | None = None) -> dict[str, Any]:
    if rev is None:
        out = helpers.run_snap("show", rel, "--json", cwd=repo).stdout
    else:
        out = helpers.run_snap("show", f"{rev}:{rel}", "--json", cwd=repo).stdout
    data: dict[str, Any] = json.loads(out)
    return data.get("pointer", data)  # type: ignore[no-any-return]


def _oids(ptr: dict[str, Any]) -> dict[str, str]:
    """oid -> label (tensor name, or the blob's role)."""
    return {
        e["oid"]: e.get("name") or e.get("role") or "blob" for e in [*ptr["tensors"], *ptr["blobs"]]
    }


def _snap_json(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    proc = helpers.run_snap(*args, "--json", cwd=cwd, check=check, env=env)
    data = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, data, proc.stderr


def _store(repo: Path) -> Path:
    return repo / ".dvc" / "cache" / "gitsnap" / "blake3"


def _store_oids(repo: Path) -> set[str]:
    root = _store(repo)
    if not root.exists():
        return set()
    return {d.name + f.name for d in root.iterdir() if len(d.name) == 2 for f in d.iterdir()}


def _clone(repo: Path, dest: Path) -> Path:
    helpers.git("clone", "-q", repo, dest)
    return dest


def _damage(path: Path) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _all_objects_intact(remote: RemoteUnderTest) -> None:
    for oid in remote.oids():
        assert blake3.blake3(remote.read(remote.key(oid))).hexdigest() == oid, (
            f"partial/corrupt {oid}"
        )


# --------------------------------------------------------------------------
# the scenario: push, dedup, clone, pull, fetch


def test_push_then_pull_in_a_clone_is_byte_identical(
    remote: RemoteUnderTest, dvc_repo: Path, tmp_path: Path
) -> None:
    repo = dvc_repo
    ckpt = _checkpoint(repo / "models" / "model.safetensors")
    v1_bytes = ckpt.read_bytes()
    _save_commit(repo, "models/model.safetensors", "v1")
    v1 = _oids(_pointer(repo, "models/model.safetensors"))

    code, res, _ = _snap_json("push", cwd=repo)
    assert code == 0
    assert res["direction"] == "push" and res["remote"] == "storage"
    assert res["objects_transferred"] == len(v1) == res["objects"]
    assert res["objects_skipped"] == 0 and res["objects_failed"] == 0 and res["failed"] == []
    assert res["bytes_transferred"] == len(v1_bytes)
    # D3: objects live under <remote>/gitsnap/blake3/ab/cdef..., nothing else was written
    assert remote.oids() == set(v1)
    assert all(k.startswith(OBJECTS + "/") for k in remote.keys())  # noqa: SIM118 - a method
    _all_objects_intact(remote)

    # a second push finds everything there and moves nothing
    code, res, _ = _snap_json("push", cwd=repo)
    assert (res["objects_transferred"], res["objects_skipped"]) == (0, len(v1))

    # v2: two tensors changed (same shapes, so the same header) -> only those two travel
    _checkpoint(ckpt, changed=(3, 7))
    _save_commit(repo, "models/model.safetensors", "v2")
    v2 = _oids(_pointer(repo, "models/model.safetensors"))
    new = set(v2) - set(v1)
    assert {v2[o] for o in new} == {"layer.003.weight", "layer.007.weight"}
    code, res, _ = _snap_json("push", cwd=repo)
    assert res["objects_transferred"] == len(new)
    assert res["objects_skipped"] == len(v2) - len(new)
    assert remote.oids() == set(v1) | set(v2)
    v2_bytes = ckpt.read_bytes()

    # another machine: clone, pull -> byte-identical HEAD
    clone = _clone(repo, tmp_path / "clone")
    assert not (clone / "models" / "model.safetensors").exists()
    code, res, _ = _snap_json("pull", cwd=clone)
    assert code == 0
    assert res["fetch"]["objects_transferred"] == len(v2)
    assert [e["action"] for e in res["checkout"]] == ["restored"]
    assert (clone / "models" / "model.safetensors").read_bytes() == v2_bytes

    # fetch of an older commit: objects only, the work tree is not touched
    code, res, _ = _snap_json("fetch", "HEAD~1", cwd=clone)
    assert res["objects_transferred"] == len(set(v1) - set(v2))
    assert (clone / "models" / "model.safetensors").read_bytes() == v2_bytes
    assert set(v1) <= _store_oids(clone)

    # and pull REV checks it out, with nothing left to download
    code, res, _ = _snap_json("pull", "HEAD~1", cwd=clone)
    assert res["fetch"]["objects_transferred"] == 0
    assert (clone / "models" / "model.safetensors").read_bytes() == v1_bytes


def test_checkout_fetches_missing_objects_from_the_default_remote(
    remote: RemoteUnderTest, dvc_repo: Path, tmp_path: Path
) -> None:
    ckpt = _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    clone = _clone(dvc_repo, tmp_path / "clone")
    out = helpers.run_snap("checkout", cwd=clone).stdout
    assert "restored model.safetensors" in out
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()


def test_status_remote_lists_snapshots_not_on_the_remote(
    remote: RemoteUnderTest, dvc_repo: Path
) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    head = helpers.git("rev-parse", "HEAD", cwd=dvc_repo).stdout.strip()
    total = len(_oids(_pointer(dvc_repo, "model.safetensors")))

    code, res, _ = _snap_json("status", "--remote", cwd=dvc_repo)
    assert code == 0 and res["clean"] is False and res["remote"] == "storage"
    [entry] = res["entries"]
    assert (entry["path"], entry["commit"]) == ("model.safetensors", head)
    assert entry["missing_objects"] == entry["total_objects"] == total
    text = helpers.run_snap("status", "--remote", cwd=dvc_repo).stdout
    assert "model.safetensors" in text and head[:10] in text and "git snap push" in text

    helpers.run_snap("push", cwd=dvc_repo)
    code, res, _ = _snap_json("status", "-r", "storage", cwd=dvc_repo)
    assert res["clean"] is True
    assert "has every object" in helpers.run_snap("status", "--remote", cwd=dvc_repo).stdout

    # an uncommitted save: the work tree's snapshot is reported, with only its new objects
    _checkpoint(dvc_repo / "model.safetensors", changed=(1,))
    helpers.run_snap("save", "model.safetensors", cwd=dvc_repo)
    code, res, _ = _snap_json("status", "--remote", cwd=dvc_repo)
    missing = [e for e in res["entries"] if e["missing_objects"]]
    assert [(e["commit"], e["missing_objects"]) for e in missing] == [
        (None, 1)
    ]  # the changed tensor


def test_push_all_and_explicit_revisions(remote: RemoteUnderTest, dvc_repo: Path) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "base")
    base = set(_oids(_pointer(dvc_repo, "model.safetensors")))
    helpers.git("checkout", "-q", "-b", "exp", cwd=dvc_repo)
    _checkpoint(dvc_repo / "model.safetensors", changed=(0,))
    _save_commit(dvc_repo, "model.safetensors", "exp")
    exp = set(_oids(_pointer(dvc_repo, "model.safetensors")))
    helpers.git("checkout", "-q", "exp~1", cwd=dvc_repo)
    helpers.git("tag", "old", cwd=dvc_repo)
    helpers.git("checkout", "-q", "main", cwd=dvc_repo)
    helpers.run_snap("checkout", "--force", cwd=dvc_repo)

    helpers.run_snap("push", cwd=dvc_repo)  # HEAD (main) and the work tree: base only
    assert remote.oids() == base
    _, res, _ = _snap_json("push", "exp", cwd=dvc_repo)
    assert res["objects_transferred"] == len(exp - base)
    assert remote.oids() == base | exp

    # --all walks every branch and tag; it finds nothing left to send
    _, res, _ = _snap_json("push", "--all", cwd=dvc_repo)
    assert res["objects"] == len(base | exp) and res["objects_transferred"] == 0


def test_dvc_gc_on_the_remote_keeps_gitsnap_objects(
    remote: RemoteUnderTest, dvc_repo: Path, tmp_path: Path
) -> None:
    """D3: our objects sit beside files/md5, where `dvc gc --cloud` does not look."""
    ckpt = _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    (dvc_repo / "data.txt").write_text("dvc-tracked\n")
    helpers.dvc("add", "-q", "data.txt", cwd=dvc_repo)
    helpers.git("add", "-A", cwd=dvc_repo)
    helpers.git("commit", "-q", "-m", "data", cwd=dvc_repo)
    helpers.dvc("push", "-q", cwd=dvc_repo)
    helpers.run_snap("push", cwd=dvc_repo)
    before = remote.oids()
    helpers.dvc("gc", "-w", "-c", "-f", cwd=dvc_repo)
    helpers.dvc("gc", "-w", "-c", "-f", "--all-commits", cwd=dvc_repo)
    assert remote.oids() == before
    clone = _clone(dvc_repo, tmp_path / "clone")
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()


# --------------------------------------------------------------------------
# integrity


def test_corrupt_remote_object_is_named_not_stored_and_fails(
    remote: RemoteUnderTest, dvc_repo: Path, tmp_path: Path
) -> None:
    import numpy as np

    # one tensor above the 8 MiB streaming threshold: both download paths are covered
    tensors = _tensors(8, 4096, seed=0)
    tensors["big.weight"] = np.random.default_rng(9).standard_normal(3 << 20, dtype=np.float32)
    helpers.write_safetensors(dvc_repo / "model.safetensors", tensors)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    oids = _oids(_pointer(dvc_repo, "model.safetensors"))
    # the big tensor loose and raw on the remote, as gitsnap v1 stored it (a push now
    # packs it: tests/remote/test_packs_large.py); the push finds it there
    big = next(o for o, name in oids.items() if name == "big.weight")
    with ObjectStore(_store(dvc_repo)).open(big) as f:
        remote.write(remote.key(big), os.pread(f.fd, f.length, f.offset))
    helpers.run_snap("push", cwd=dvc_repo)
    bad = {o: name for o, name in oids.items() if name in ("layer.005.weight", "big.weight")}
    for oid in bad:
        data = bytearray(remote.read(remote.key(oid)))
        data[len(data) // 2] ^= 0x01
        remote.write(remote.key(oid), bytes(data))

    clone = _clone(dvc_repo, tmp_path / "clone")
    code, res, err = _snap_json("pull", cwd=clone, check=False)
    assert code == 3
    assert "corrupt" in err and "hint:" in err
    for oid, name in bad.items():
        assert oid[:12] in err and name in err
    # the summary still reaches --json, with the failures by oid and tensor
    assert {(f["oid"], f["reason"]) for f in res["failed"]} == {(o, "corrupt") for o in bad}
    assert sorted(t for f in res["failed"] for t in f["tensors"]) == [
        "model.safetensors: tensor 'big.weight'",
        "model.safetensors: tensor 'layer.005.weight'",
    ]
    assert res["objects_transferred"] == len(oids) - 2
    # not stored, no temp file left, and the workspace was not written
    assert _store_oids(clone) == set(oids) - set(bad)
    assert not list((_store(clone) / "tmp").glob("*"))
    assert not (clone / "model.safetensors").exists()


@pytest.mark.parametrize("damage", ["truncated", "extended"])
def test_remote_object_of_the_wrong_length_is_corrupt(
    remote: RemoteUnderTest, dvc_repo: Path, tmp_path: Path, damage: str
) -> None:
    # a download copies the recorded size: a longer remote file must not pass for
    # its first ``size`` bytes, nor a shorter one for a partial object
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    oids = _oids(_pointer(dvc_repo, "model.safetensors"))
    bad = next(o for o, name in oids.items() if name == "layer.003.weight")
    data = remote.read(remote.key(bad))
    remote.write(remote.key(bad), data[:-1] if damage == "truncated" else data + b"\0")

    clone = _clone(dvc_repo, tmp_path / "clone")
    code, res, err = _snap_json("pull", cwd=clone, check=False)
    assert code == 3
    assert "layer.003.weight" in err and "corrupt" in err and "hint:" in err
    assert [(f["oid"], f["reason"]) for f in res["failed"]] == [(bad, "corrupt")]
    assert _store_oids(clone) == set(oids) - {bad}
    assert not list((_store(clone) / "tmp").glob("*"))
    assert not (clone / "model.safetensors").exists()


def test_object_missing_on_the_remote_names_the_tensor(
    remote: RemoteUnderTest, dvc_repo: Path, tmp_path: Path
) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    oids = _oids(_pointer(dvc_repo, "model.safetensors"))
    gone = next(o for o, name in oids.items() if name == "layer.002.weight")
    remote.delete(remote.key(gone))

    clone = _clone(dvc_repo, tmp_path / "clone")
    proc = helpers.run_snap("fetch", cwd=clone, check=False)
    assert proc.returncode == 3
    assert "layer.002.weight" in proc.stderr and "missing from remote 'storage'" in proc.stderr
    assert "hint: push them from the machine where they were saved" in proc.stderr
    assert _store_oids(clone) == set(oids) - {gone}


def test_push_refuses_a_corrupt_local_object(remote: RemoteUnderTest, dvc_repo: Path) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    oids = _oids(_pointer(dvc_repo, "model.safetensors"))
    bad = next(o for o, name in oids.items() if name == "layer.001.weight")
    _damage(_store(dvc_repo) / bad[:2] / bad[2:])
    code, res, err = _snap_json("push", cwd=dvc_repo, check=False)
    assert code == 3
    assert "layer.001.weight" in err and "corrupt" in err and "git snap save" in err
    assert res["failed"][0]["reason"] == "corrupt-local"
    assert remote.oids() == set(oids) - {bad}


def test_push_reports_objects_that_exist_nowhere(remote: RemoteUnderTest, dvc_repo: Path) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    oids = _oids(_pointer(dvc_repo, "model.safetensors"))
    lost = next(o for o, name in oids.items() if name == "layer.004.weight")
    path = _store(dvc_repo) / lost[:2] / lost[2:]
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.unlink()
    proc = helpers.run_snap("push", cwd=dvc_repo, check=False)
    assert proc.returncode == 3
    assert "layer.004.weight" in proc.stderr and "neither the local store nor" in proc.stderr
    assert remote.oids() == set(oids) - {lost}


# --------------------------------------------------------------------------
# interrupted transfers resume


PACE = "0.15"  # seconds of sleep after every copy step: time to SIGKILL mid-object


def _paced_snap(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    """``git snap ARGS`` through a remote that sleeps between copy steps (remote/paced_remote.py).

    The Python process itself runs the command, so SIGKILL hits the process doing the work.
    """
    return subprocess.Popen(
        [sys.executable, os.fspath(Path(__file__).with_name("paced_remote.py")), PACE, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(
    proc: subprocess.Popen[bytes], landed: Callable[[], int], at_least: int, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while landed() < at_least:
        if proc.poll() is not None:
            pytest.fail(
                f"the transfer ended (rc={proc.returncode}) before it could be killed: "
                f"{proc.stderr.read()!r}"
            )  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the transfer made no progress")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_killed_push_and_pull_resume_with_only_the_rest(
    remote: RemoteUnderTest, dvc_repo: Path, tmp_path: Path
) -> None:
    ckpt = _checkpoint(dvc_repo / "model.safetensors", n=40, elems=32 * 1024)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    oids = _oids(_pointer(dvc_repo, "model.safetensors"))
    total = len(oids)

    # push, SIGKILLed after a few objects landed
    proc = _paced_snap("push", "-j", "2", cwd=dvc_repo)
    _kill_when(proc, lambda: len(remote.oids()), 5)
    landed = remote.oids()
    assert 5 <= len(landed) < total
    _all_objects_intact(remote)  # nothing partial under a final key
    code, res, _ = _snap_json("push", cwd=dvc_repo)
    assert code == 0
    assert res["objects_transferred"] == total - len(landed)
    assert res["objects_skipped"] == len(landed)
    assert remote.oids() == set(oids)
    _all_objects_intact(remote)

    # pull in a clone, SIGKILLed the same way
    clone = _clone(dvc_repo, tmp_path / "clone")
    proc = _paced_snap("pull", "-j", "2", cwd=clone)
    _kill_when(proc, lambda: len(_store_oids(clone)), 5)
    have = _store_oids(clone)
    assert 5 <= len(have) < total
    for oid in have:
        assert blake3.blake3((_store(clone) / oid[:2] / oid[2:]).read_bytes()).hexdigest() == oid
    assert not (clone / "model.safetensors").exists()
    code, res, _ = _snap_json("pull", cwd=clone)
    assert code == 0
    assert res["fetch"]["objects_transferred"] == total - len(have)
    assert res["fetch"]["objects_skipped"] == len(have)
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()


# --------------------------------------------------------------------------
# batching, progress, library


@pytest.mark.s3
def test_s3_existence_is_listed_not_probed_per_object(
    s3_remote: str, moto_server: Any, dvc_repo: Path
) -> None:
    _checkpoint(dvc_repo / "model.safetensors", n=60, elems=1024)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    total = len(_oids(_pointer(dvc_repo, "model.safetensors")))
    bucket, _ = helpers.split_s3_url(s3_remote)

    def requests_during(*args: str) -> list[str]:
        start = moto_server.log.stat().st_size
        helpers.run_snap(*args, cwd=dvc_repo)
        time.sleep(0.2)  # let the server flush its request log
        with moto_server.log.open("rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").splitlines()
        return [ln for ln in lines if f"/{bucket}" in ln]

    first = requests_during("push")
    puts = [ln for ln in first if '"PUT ' in ln]
    lists = [ln for ln in first if "list-type=2" in ln]
    heads = [ln for ln in first if '"HEAD ' in ln]
    assert len(puts) == total
    # a constant handful (s3fs checks an empty prefix with one extra listing
    # and a HEAD; the pack area, packs/, is listed too), not one request per object
    assert len(lists) <= 6 and len(heads) <= 3
    again = requests_during("push")
    # nothing sent; the only HEAD asks whether the (absent) pack area is a folder
    assert not [ln for ln in again if '"PUT ' in ln or ('"HEAD ' in ln and "/packs " not in ln)]
    assert 1 <= len([ln for ln in again if "list-type=2" in ln]) <= 4


def test_progress_bar_only_on_a_terminal(local_remote: Path, dvc_repo: Path) -> None:
    import pty

    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [os.fspath(helpers.VENV_BIN / "git-snap"), "push"],
        cwd=dvc_repo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "push [" in shown and "13/13 objects" in shown and "100.0%" in shown

    # not a terminal: no progress at all
    _checkpoint(dvc_repo / "model.safetensors", changed=(2,))
    _save_commit(dvc_repo, "model.safetensors", "v2")
    proc2 = helpers.run_snap("push", cwd=dvc_repo)
    assert proc2.stderr == ""
    assert "pushed 1 object " in proc2.stdout


def test_api_returns_frozen_results_and_prints_nothing(
    local_remote: Path, dvc_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    from gitsnap import api

    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    capsys.readouterr()
    res = api.push(cwd=dvc_repo, jobs=3)
    assert res.objects_transferred == 13 and res.ok
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.objects_transferred = 0  # type: ignore[misc]
    status = api.remote_status(cwd=dvc_repo)
    assert status.clean and status.entries[0].commit is not None
    fetched = api.fetch(cwd=dvc_repo)
    assert (
        fetched.remote is None and fetched.objects_skipped == 13
    )  # everything local: no remote opened
    assert capsys.readouterr() == ("", "")


def test_status_without_remote_does_not_import_dvc(dvc_repo: Path) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    helpers.run_snap("save", "model.safetensors", cwd=dvc_repo)
    code = (
        "import sys; from gitsnap.cli.main import main; rc = main(['status']); "
        "assert not [m for m in sys.modules if m == 'dvc' or m.startswith(('dvc.', 'dvc_'))], "
        "'dvc imported'; "
        "sys.exit(rc)"
    )
    helpers.run([sys.executable, "-c", code], cwd=dvc_repo)


# --------------------------------------------------------------------------
# errors with hints


def test_no_remote_configured(dvc_repo: Path) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    for args in (("push",), ("status", "--remote")):
        proc = helpers.run_snap(*args, cwd=dvc_repo, check=False)
        assert proc.returncode == 3
        assert "no DVC remote is configured" in proc.stderr
        assert "hint: dvc remote add -d storage URL" in proc.stderr
    # checkout without a remote explains that objects are missing and how to get them
    clone = _clone(dvc_repo, dvc_repo.parent / "clone")
    proc = helpers.run_snap("checkout", cwd=clone, check=False)
    assert proc.returncode == 3 and "missing from the local store" in proc.stderr


def test_unknown_remote_name(local_remote: Path, dvc_repo: Path) -> None:
    proc = helpers.run_snap("push", "-r", "nope", cwd=dvc_repo, check=False)
    assert proc.returncode == 3
    assert "no DVC remote named 'nope'; configured remotes: storage" in proc.stderr
    assert "hint:" in proc.stderr


def test_missing_plugin_names_the_package(dvc_repo: Path, tmp_path: Path) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    # dvc-gs is not installed in the test environment
    helpers.dvc("remote", "add", "-d", "gcs", "gs://bucket/path", cwd=dvc_repo)
    proc = helpers.run_snap("push", cwd=dvc_repo, check=False)
    assert proc.returncode == 3
    assert (
        "needs the DVC plugin dvc-gs" in proc.stderr and "hint: pip install dvc-gs" in proc.stderr
    )
    # dvc-s3 made unimportable for this one process
    shadow = tmp_path / "shadow" / "dvc_s3"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'dvc_s3'\")\n")
    helpers.dvc("remote", "add", "-d", "s3", "s3://bucket/path", cwd=dvc_repo)
    proc = helpers.run_snap(
        "push", cwd=dvc_repo, check=False, env={"PYTHONPATH": os.fspath(shadow.parent)}
    )
    assert proc.returncode == 3
    assert "hint: pip install dvc-s3" in proc.stderr


def test_unreachable_endpoint_fails_fast(dvc_repo: Path) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    port = helpers.free_port()  # nothing listens there
    helpers.add_dvc_remote(
        dvc_repo, "storage", "s3://bucket/path", endpointurl=f"http://127.0.0.1:{port}"
    )
    env = dict(helpers.TEST_AWS_ENV)
    for cmd in (("push",), ("pull", "--force")):
        if cmd[0] == "pull":
            for d in _store(dvc_repo).iterdir():  # make pull need the remote
                if len(d.name) == 2:
                    for f in d.iterdir():
                        f.chmod(stat.S_IRUSR | stat.S_IWUSR)
                        f.unlink()
        started = time.monotonic()
        proc = helpers.run_snap(*cmd, cwd=dvc_repo, check=False, env=env)
        elapsed = time.monotonic() - started
        assert proc.returncode == 3, proc.stderr
        assert "cannot reach remote 'storage'" in proc.stderr
        assert "hint:" in proc.stderr and "endpointurl" in proc.stderr
        assert elapsed < 10, f"{cmd[0]} took {elapsed:.1f} s to give up"


@pytest.mark.s3
def test_bad_credentials_fail_fast_with_a_hint(dvc_repo: Path, tmp_path: Path) -> None:
    # A server of our own with authentication switched on: no key is valid.

    log = (tmp_path / "moto-auth.log").open("wb")
    server, endpoint = helpers.start_moto_server(log)
    try:
        helpers.s3_client(endpoint).create_bucket(Bucket="locked-bucket")
        helpers.switch_moto_auth_on(endpoint)
        _checkpoint(dvc_repo / "model.safetensors")
        _save_commit(dvc_repo, "model.safetensors", "v1")
        helpers.add_dvc_remote(
            dvc_repo, "storage", "s3://locked-bucket/models", endpointurl=endpoint
        )
        started = time.monotonic()
        proc = helpers.run_snap(
            "push",
            cwd=dvc_repo,
            check=False,
            env={**helpers.TEST_AWS_ENV, "AWS_ACCESS_KEY_ID": "wrong"},
        )
        assert proc.returncode == 3
        assert "refused access" in proc.stderr and "hint: check the credentials" in proc.stderr
        assert time.monotonic() - started < 10
    finally:
        helpers.stop_process(server)
        log.close()


# --------------------------------------------------------------------------
# git notes travel with push / pull


def _note(repo: Path, rev: str) -> str | None:
    proc = helpers.git("notes", "--ref", "gitsnap", "show", rev, cwd=repo, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_notes_are_pushed_and_fetched_and_merged(
    local_remote: Path, bare_origin: Path, dvc_repo: Path, tmp_path: Path
) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.git("push", "-q", "origin", "main", cwd=dvc_repo)
    helpers.git("notes", "--ref", "gitsnap", "add", "-m", "accuracy: 0.91", "HEAD", cwd=dvc_repo)

    _, res, _ = _snap_json("push", cwd=dvc_repo)
    assert res["notes"] == "pushed"
    assert helpers.git(
        "--git-dir", bare_origin, "notes", "--ref", "gitsnap", "show", "main"
    ).stdout.strip() == ("accuracy: 0.91")
    assert _snap_json("push", cwd=dvc_repo)[1]["notes"] == "up-to-date"

    # a teammate: clone (git does not fetch notes), pull brings them
    other = _clone(bare_origin, tmp_path / "other")
    assert _note(other, "HEAD") is None
    _, res, _ = _snap_json("pull", cwd=other)
    assert res["fetch"]["notes"] == "fetched"
    assert _note(other, "HEAD") == "accuracy: 0.91"

    # both sides annotate different commits: the later push merges, nothing is lost
    helpers.git("notes", "--ref", "gitsnap", "add", "-m", "from other", "HEAD~1", cwd=other)
    assert _snap_json("push", cwd=other)[1]["notes"] == "pushed"
    helpers.git("notes", "--ref", "gitsnap", "add", "-m", "from first", "HEAD~2", cwd=dvc_repo)
    assert _snap_json("push", cwd=dvc_repo)[1]["notes"] == "pushed"
    for rev, text in (
        ("main", "accuracy: 0.91"),
        ("main~1", "from other"),
        ("main~2", "from first"),
    ):
        assert (
            helpers.git(
                "--git-dir", bare_origin, "notes", "--ref", "gitsnap", "show", rev
            ).stdout.strip()
            == text
        )

    # the same commits annotated on both sides: the local note wins; metric
    # mappings are combined key by key (local values win), free text is kept as is
    assert _snap_json("fetch", cwd=other)[1]["notes"] == "fetched"

    def annotate(repo: Path, rev: str, text: str) -> None:
        helpers.git("notes", "--ref", "gitsnap", "add", "-f", "-m", text, rev, cwd=repo)

    annotate(other, "HEAD~2", "other's verdict")
    annotate(dvc_repo, "HEAD~2", "first's verdict")
    annotate(other, "HEAD", "metrics:\n  accuracy: 0.90\n  loss: 0.5")
    annotate(dvc_repo, "HEAD", "metrics:\n  accuracy: 0.95\n  f1: 0.8")
    helpers.run_snap("push", cwd=dvc_repo)
    assert _snap_json("fetch", cwd=other)[1]["notes"] == "merged"
    assert _note(other, "HEAD~2") == "other's verdict"
    assert yaml.safe_load(_note(other, "HEAD") or "") == {
        "metrics": {"accuracy": 0.90, "loss": 0.5, "f1": 0.8}
    }
    # and pushing the merge makes it origin's
    assert _snap_json("push", cwd=other)[1]["notes"] == "pushed"
    helpers.run_snap("fetch", cwd=dvc_repo)
    assert yaml.safe_load(_note(dvc_repo, "HEAD") or "")["metrics"]["loss"] == 0.5
    assert _note(other, "HEAD~1") == "from other"


def test_no_notes_or_no_origin_is_quiet(local_remote: Path, dvc_repo: Path) -> None:
    _checkpoint(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    assert _snap_json("push", cwd=dvc_repo)[1]["notes"] == "none"
    helpers.git("notes", "--ref", "gitsnap", "add", "-m", "x", "HEAD", cwd=dvc_repo)
    assert _snap_json("push", cwd=dvc_repo)[1]["notes"] == "no-origin"
