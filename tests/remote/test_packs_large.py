"""Storage v2 on DVC remotes for objects of 1 MiB and more (gitsnap/remote/large.py).

They are packed and encoded (raw, byte planes + zstd, or XOR delta against the
parent's tensor) and streamed both ways. Real ``git snap`` subprocesses against
a local-folder remote and an S3 remote on moto's S3 API server; the remote is
inspected from outside (its files, read with the spec's index reader) and
damaged by hand; nothing of gitsnap is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import blake3
import helpers
import pytest
from test_packs import (
    AREA,
    PACKS,
    RemoteFiles,
    _clone,
    _local,
    _oids,
    _s3,
    _save_commit,
    _snap_json,
    _store,
    _store_bytes,
    _store_oids,
)

from gitsnap import codec, pack

MiB = 1024 * 1024
# float32 elements of the large tensors: 3 MiB, 1.5 MiB, 1 MiB (all >= pack.THRESHOLD)
LARGE = {"embed.weight": 3 * MiB // 4, "layer.0.weight": 3 * MiB // 8, "layer.1.weight": MiB // 4}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def remote(request: pytest.FixtureRequest, dvc_repo: Path) -> RemoteFiles:
    if request.param == "local":
        return _local(request.getfixturevalue("local_remote"))
    return _s3(request.getfixturevalue("s3_server"), request.getfixturevalue("s3_remote"))


def _write(path: Path, factor: float = 1.0, extra: bool = False) -> Path:
    """Weights like a trained model's (normal, small); ``factor`` is a dense fine-tune."""
    import numpy as np

    rng = np.random.default_rng(7)
    tensors: dict[str, Any] = {
        name: (rng.standard_normal(n, dtype=np.float32) * np.float32(0.05)) * np.float32(factor)
        for name, n in LARGE.items()
    }
    tensors["layer.0.bias"] = rng.standard_normal(384, dtype=np.float32)
    if extra:
        tensors["v1.only"] = rng.standard_normal(256, dtype=np.float32)
    return helpers.write_safetensors(path, tensors)


def _large_oids(repo: Path, rev: str = "HEAD") -> dict[str, str]:
    """name -> oid of the large tensors of ``model.safetensors`` at ``rev``."""
    return {n: o for o, n in _oids(repo, "model.safetensors", rev).items() if n in LARGE}


def _entries(remote: RemoteFiles, tmp: Path) -> dict[str, pack.Entry]:
    return {e.oid: e for es in remote.indexes(tmp).values() for e in es}


def _stored_bytes(entries: dict[str, pack.Entry], oids: set[str]) -> int:
    return sum(e.length for o, e in entries.items() if o in oids)


# --------------------------------------------------------------------------


def test_large_tensors_are_packed_encoded_and_a_fine_tune_is_stored_as_deltas(
    remote: RemoteFiles, dvc_repo: Path, tmp_path: Path
) -> None:
    ckpt = _write(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1 = _large_oids(dvc_repo)
    code, res, _ = _snap_json("push", cwd=dvc_repo)
    assert code == 0 and res["objects_transferred"] == len(_oids(dvc_repo, "model.safetensors"))

    # the large tensors are in a pack, byte planes + zstd, smaller than raw; none is loose
    entries = _entries(remote, tmp_path)
    assert set(v1.values()) <= set(entries) and not set(v1.values()) & remote.loose()
    for oid in v1.values():
        e = entries[oid]
        assert (e.codec, e.base) == (codec.PLANES, None)
        assert e.length < 0.95 * e.raw_size
    first = _stored_bytes(entries, set(v1.values()))
    # the packs were built in place (a folder remote) or uploaded whole: no temp file is left
    files = remote.keys
    assert not [k for k in files() if "/tmp/" in k]
    assert not [p for p in (_store(dvc_repo) / "tmp").rglob("*") if p.is_file()]

    # a dense fine-tune: every weight scaled by 1 + 1e-5 -> XOR deltas against v1, much smaller
    v1_bytes = ckpt.read_bytes()
    _write(ckpt, factor=1 + 1e-5)
    _save_commit(dvc_repo, "model.safetensors", "v2")
    v2 = _large_oids(dvc_repo)
    assert not set(v1.values()) & set(v2.values())  # every large tensor changed
    code, res, _ = _snap_json("push", cwd=dvc_repo)
    assert code == 0 and res["objects_transferred"] == len(LARGE)
    entries = _entries(remote, tmp_path)
    for name, oid in v2.items():
        e = entries[oid]
        assert (e.codec, e.base, e.depth) == (codec.XOR, v1[name], 1), name
    second = _stored_bytes(entries, set(v2.values()))
    assert second < 0.5 * first, (second, first)

    # a fresh clone pulls v2 (its v1 bases first), byte-exact; and v1
    clone = _clone(dvc_repo, tmp_path / "clone")
    code, res, _ = _snap_json("pull", cwd=clone)
    assert code == 0
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()
    # fetched large objects are stored loose and raw, verified
    store = _store(clone)
    for oid in [*v1.values(), *v2.values()]:
        assert (store / oid[:2] / oid[2:]).stat().st_size == entries[oid].raw_size
        assert blake3.blake3(_store_bytes(clone, oid)).hexdigest() == oid
    helpers.run_snap("checkout", "HEAD~1", "--force", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == v1_bytes

    code, res, _ = _snap_json("fsck", "--remote", "--all-commits", cwd=dvc_repo)
    assert code == 0 and res["ok"] and res["corrupt"] == 0
    assert res["objects_checked"] >= 2 * len(LARGE)


def test_corrupt_large_member_is_named_and_nothing_is_written(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    remote = _local(local_remote)
    _write(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    v1 = _large_oids(dvc_repo)
    bad = _entries(remote, tmp_path)[v1["layer.0.weight"]]
    key = f"{PACKS}/pack-{bad.pack}.pack"
    data = bytearray(remote.read(key))
    data[bad.offset + bad.length // 2] ^= 0x01
    remote.write(key, bytes(data))

    clone = _clone(dvc_repo, tmp_path / "clone")
    code, res, err = _snap_json("pull", cwd=clone, check=False)
    assert code == 3
    assert "layer.0.weight" in err and bad.oid[:12] in err and f"in pack {bad.pack[:12]}" in err
    assert "'storage'" in err and "corrupt" in err and f"hint: delete packs/pack-{bad.pack}" in err
    assert [(f["oid"], f["reason"]) for f in res["failed"]] == [(bad.oid, "corrupt")]
    # nothing of it is stored (not even a temp file); the others are; no checkpoint written
    assert bad.oid not in _store_oids(clone)
    assert set(v1.values()) - {bad.oid} <= _store_oids(clone)
    assert not list((_store(clone) / "tmp").glob("obj-*"))
    assert not (clone / "model.safetensors").exists()
    proc = helpers.run_snap("checkout", "--force", cwd=clone, check=False)
    assert proc.returncode != 0 and "layer.0.weight" in proc.stderr and "hint:" in proc.stderr
    assert not (clone / "model.safetensors").exists()

    # fsck --remote names the tensor and the pack
    code, res, _ = _snap_json("fsck", "--remote", cwd=dvc_repo, check=False)
    assert code == 1 and res["ok"] is False and res["corrupt"] == 1
    assert len(res["damaged_packs"]) == 1 and bad.pack[:12] in res["damaged_packs"][0]
    [problem] = res["problems"]
    assert problem["oid"] == bad.oid and problem["problem"] == "corrupt"
    assert problem["uses"][0]["segment"] == "tensor 'layer.0.weight'"


def test_v1_loose_large_objects_mix_with_packed_deltas_and_gc_keeps_their_bases(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    remote = _local(local_remote)
    ckpt = _write(dvc_repo / "model.safetensors", extra=True)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1_all = _oids(dvc_repo, "model.safetensors")
    v1 = _large_oids(dvc_repo)
    # the remote as gitsnap v1 wrote it: every object loose and raw under ab/cdef...
    for oid in v1_all:
        dest = local_remote / AREA / oid[:2] / oid[2:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(_store_bytes(dvc_repo, oid))
    _, res, _ = _snap_json("push", cwd=dvc_repo)
    assert (res["objects_transferred"], res["objects_skipped"]) == (0, len(v1_all))

    # v2, a dense fine-tune: packed deltas against the loose v1 tensors
    _write(ckpt, factor=1 + 1e-5)
    _save_commit(dvc_repo, "model.safetensors", "v2")
    v2_bytes = ckpt.read_bytes()
    v2 = _large_oids(dvc_repo)
    _snap_json("push", cwd=dvc_repo)
    entries = _entries(remote, tmp_path)
    for name, oid in v2.items():
        assert (entries[oid].codec, entries[oid].base) == (codec.XOR, v1[name]), name
    assert remote.loose() >= set(v1_all)

    clone = _clone(dvc_repo, tmp_path / "clone")
    _snap_json("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == v2_bytes
    code, res, _ = _snap_json("fsck", "--remote", "--all-commits", cwd=dvc_repo)
    assert code == 0 and res["ok"]

    # history rewritten without v1, in a clone without v1 in its journal: gc --remote
    # drops v1's own objects but keeps the loose v1 tensors the live deltas need
    helpers.git("checkout", "-q", "--orphan", "only-v2", cwd=dvc_repo)
    helpers.git("commit", "-q", "-m", "v2 alone", cwd=dvc_repo)
    for branch in helpers.git("branch", "--format=%(refname:short)", cwd=dvc_repo).stdout.split():
        if branch != "only-v2":
            helpers.git("branch", "-q", "-D", branch, cwd=dvc_repo)
    fresh = _clone(dvc_repo, tmp_path / "fresh")
    code, res, _ = _snap_json(
        "gc", "--remote", "--all-commits", "--force", "--grace", "now", cwd=fresh
    )
    assert code == 0 and res["objects_deleted"] >= 1  # v1's header and its own tensor
    assert set(v1.values()) <= remote.loose()
    again = _clone(dvc_repo, tmp_path / "again")
    _snap_json("pull", cwd=again)
    assert (again / "model.safetensors").read_bytes() == v2_bytes


def test_killed_push_of_large_objects_reruns_to_completion(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    remote = _local(local_remote)
    ckpt = _write(dvc_repo / "model.safetensors")
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1 = _large_oids(dvc_repo)
    # killed once the pack of large tensors landed and before its index did
    proc = subprocess.Popen(
        [sys.executable, os.fspath(Path(__file__).with_name("paced_remote.py")), "2", "push"],
        cwd=dvc_repo, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(k.endswith(".pack") for k in remote.packs()):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, "the push made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not any(k.endswith(".idx") for k in remote.packs())  # the pack is invisible
    status = _snap_json("status", "--remote", cwd=dvc_repo)[1]
    assert status["clean"] is False

    code, res, _ = _snap_json("push", cwd=dvc_repo)
    assert code == 0 and res["objects_transferred"] >= len(LARGE)
    assert set(v1.values()) <= remote.packed(tmp_path)
    clone = _clone(dvc_repo, tmp_path / "clone")
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()
    # the same encoding gives the same pack name: the re-run replaced the orphan
    assert len(remote.packs()) == 2


def test_raw_member_is_copied_by_the_kernel_and_refused_when_damaged(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    """A member that does not compress is stored raw; from a folder remote a pull copies it
    with copy_file_range and re-hashes it where it landed: intact it is byte-exact, damaged
    it is named (tensor, object, pack) and nothing of it is stored."""
    import numpy as np

    remote = _local(local_remote)
    noise = np.random.default_rng(9).integers(0, 256, 2 * MiB, dtype=np.uint8)
    ckpt = helpers.write_safetensors(dvc_repo / "model.safetensors", {"noise.weight": noise})
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    [oid] = [o for o, n in _oids(dvc_repo, "model.safetensors").items() if n == "noise.weight"]
    e = _entries(remote, tmp_path)[oid]
    assert (e.codec, e.length) == (codec.RAW, codec.HEADER_SIZE + 2 * MiB)

    clone = _clone(dvc_repo, tmp_path / "clone")
    code, _, _ = _snap_json("pull", cwd=clone)
    assert code == 0 and (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()

    key = f"{PACKS}/pack-{e.pack}.pack"
    data = bytearray(remote.read(key))
    data[e.offset + codec.HEADER_SIZE + MiB] ^= 0x01
    remote.write(key, bytes(data))
    again = _clone(dvc_repo, tmp_path / "again")
    code, res, err = _snap_json("pull", cwd=again, check=False)
    assert code == 3
    assert "noise.weight" in err and oid[:12] in err and f"in pack {e.pack[:12]}" in err
    assert "hint:" in err
    assert [(f["oid"], f["reason"]) for f in res["failed"]] == [(oid, "corrupt")]
    assert oid not in _store_oids(again)
    assert not list((_store(again) / "tmp").glob("obj-*"))
    assert not (again / "model.safetensors").exists()


def test_a_tensor_larger_than_a_pack_is_raw_until_its_fine_tune_makes_a_delta(
    remote: RemoteFiles, dvc_repo: Path, tmp_path: Path
) -> None:
    """An embedding above pack.MAX_PACK (64 MiB) whose byte planes save little (float32
    planes keep ~0.84) goes loose and raw, one copy; the next version after a dense
    fine-tune is an XOR delta against it, packed alone, not a second full copy. A fresh
    clone pulls both (the delta's loose base first), byte-exact."""
    import numpy as np

    n = (pack.MAX_PACK + 4 * MiB) // 4  # 68 MiB of float32: 17 blocks
    rng = np.random.default_rng(11)
    weight = rng.standard_normal(n, dtype=np.float32) * np.float32(0.05)
    bias = rng.standard_normal(384, dtype=np.float32)
    path = dvc_repo / "model.safetensors"
    helpers.write_safetensors(path, {"embed.weight": weight, "embed.bias": bias})
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1_bytes = path.read_bytes()
    helpers.run_snap("push", cwd=dvc_repo)
    [v1] = [o for o, name in _oids(dvc_repo, "model.safetensors").items() if name == "embed.weight"]
    assert v1 in remote.loose() and v1 not in _entries(remote, tmp_path)

    helpers.write_safetensors(
        path, {"embed.weight": weight * np.float32(1 + 1e-5), "embed.bias": bias}
    )
    _save_commit(dvc_repo, "model.safetensors", "v2")
    helpers.run_snap("push", cwd=dvc_repo)
    [v2] = [o for o, name in _oids(dvc_repo, "model.safetensors").items() if name == "embed.weight"]
    entries = _entries(remote, tmp_path)
    e2 = entries[v2]
    assert (e2.codec, e2.base, e2.depth, e2.raw_size) == (codec.XOR, v1, 1, 4 * n)
    assert e2.length < 0.5 * e2.raw_size, e2.length
    assert [o for o, e in entries.items() if e.pack == e2.pack] == [v2]  # alone in its pack
    assert v2 not in remote.loose()

    clone = _clone(dvc_repo, tmp_path / "clone")
    code, _, _ = _snap_json("pull", cwd=clone)
    assert code == 0 and (clone / "model.safetensors").read_bytes() == path.read_bytes()
    helpers.run_snap("checkout", "HEAD~1", "--force", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == v1_bytes
