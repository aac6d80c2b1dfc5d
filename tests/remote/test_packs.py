"""Storage v2 on DVC remotes (gitsnap/remote/packs.py): push packs small objects, pull decodes.

Real ``git snap`` subprocesses against a local-folder remote and an S3 remote
on moto's S3 API server, configured with the real ``dvc remote add``. The
remote is inspected from outside (its files, parsed with the spec's index
reader) and damaged by hand; nothing of gitsnap is mocked.
"""

from __future__ import annotations

import itertools
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

from gitsnap import codec, pack
from gitsnap.store import ObjectStore

AREA = "gitsnap/blake3"
PACKS = f"{AREA}/packs"
SMALL = 4096  # float32 elements: 16 KiB tensors, packed
BIG = 300 * 1024  # 1.2 MiB: above pack.THRESHOLD, in a pack of its own (remote/large.py)


@dataclass
class RemoteFiles:
    kind: str
    keys: Callable[[], list[str]]  # every file, relative to the remote's root
    read: Callable[[str], bytes]
    write: Callable[[str, bytes], None]

    def packs(self) -> list[str]:
        return sorted(k for k in self.keys() if k.startswith(PACKS + "/"))

    def temps(self) -> list[str]:
        """Temp files of interrupted writes (a killed push's pack written in place)."""
        return sorted(k for k in self.keys() if k.startswith(AREA + "/tmp/"))

    def loose(self) -> set[str]:
        out = set()
        for key in self.keys():
            parts = key.split("/")
            if key.startswith(AREA + "/") and len(parts) == 4 and len(parts[2]) == 2:
                out.add(parts[2] + parts[3])
        return out

    def indexes(self, tmp: Path) -> dict[str, list[pack.Entry]]:
        """Each pack's entries, read with the spec's own index reader (checks included)."""
        out = {}
        for key in self.packs():
            if key.endswith(".idx"):
                local = tmp / key.rsplit("/", 1)[-1]
                local.write_bytes(self.read(key))
                name, entries = pack.read_index(local)
                out[name] = entries
        return out

    def small_indexes(self, tmp: Path) -> dict[str, list[pack.Entry]]:
        """The packs of small objects (large ones travel in packs of their own)."""
        return {
            n: es
            for n, es in self.indexes(tmp).items()
            if all(e.raw_size < pack.THRESHOLD for e in es)
        }

    def packed(self, tmp: Path) -> set[str]:
        return {e.oid for entries in self.indexes(tmp).values() for e in entries}


def _local(root: Path) -> RemoteFiles:
    def keys() -> list[str]:
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def write(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.chmod(stat.S_IWUSR | stat.S_IRUSR)
        path.write_bytes(data)

    return RemoteFiles("local", keys, lambda key: (root / key).read_bytes(), write)


def _s3(endpoint: str, url: str) -> RemoteFiles:
    bucket, prefix = helpers.split_s3_url(url)
    client = helpers.s3_client(endpoint)

    def full(key: str) -> str:
        return f"{prefix}/{key}" if prefix else key

    return RemoteFiles(
        "s3",
        lambda: helpers.list_s3_keys(endpoint, url),
        lambda key: client.get_object(Bucket=bucket, Key=full(key))["Body"].read(),
        lambda key, data: client.put_object(Bucket=bucket, Key=full(key), Body=data),
    )


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def remote(request: pytest.FixtureRequest, dvc_repo: Path) -> RemoteFiles:
    if request.param == "local":
        return _local(request.getfixturevalue("local_remote"))
    return _s3(request.getfixturevalue("s3_server"), request.getfixturevalue("s3_remote"))


def _write(
    path: Path,
    n: int,
    seed: int = 0,
    changed: range | tuple[int, ...] = (),
    factor: float = 1.001,
    *,
    big: bool = True,
) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    tensors: dict[str, Any] = {
        f"layer.{i:04d}.weight": rng.standard_normal(SMALL, dtype=np.float32) for i in range(n)
    }
    if big:
        tensors["big.weight"] = rng.standard_normal(BIG, dtype=np.float32)
    for i in changed:
        tensors[f"layer.{i:04d}.weight"] = tensors[f"layer.{i:04d}.weight"] * np.float32(factor)
    return helpers.write_safetensors(path, tensors)


def _save_commit(repo: Path, rel: str, message: str) -> None:
    helpers.run_snap("save", rel, "-m", message, cwd=repo)
    helpers.git("add", "-A", cwd=repo)
    helpers.git("commit", "-q", "-m", message, cwd=repo)


def _oids(repo: Path, rel: str, rev: str = "HEAD") -> dict[str, str]:
    data = json.loads(helpers.run_snap("show", f"{rev}:{rel}", "--json", cwd=repo).stdout)
    ptr = data.get("pointer", data)
    return {e["oid"]: e.get("name") or e.get("role") for e in [*ptr["tensors"], *ptr["blobs"]]}


def _keep_head_alone(repo: Path) -> None:
    """Rewrite history to the work tree's state alone (staged, one orphan commit), forget
    the reflog, and let a local gc trim the journal: only HEAD's snapshots stay live."""
    helpers.git("add", "-A", cwd=repo)
    helpers.git("checkout", "-q", "--orphan", "only-head", cwd=repo)
    helpers.git("commit", "-q", "-m", "head alone", cwd=repo)
    helpers.git("branch", "-q", "-D", "main", cwd=repo)
    helpers.git("branch", "-q", "-m", "main", cwd=repo)
    helpers.git("reflog", "expire", "--expire=now", "--all", cwd=repo)
    helpers.run_snap("gc", "--keep-last", "0", "--grace", "now", cwd=repo)


def _snap_json(*args: str, cwd: Path, check: bool = True) -> tuple[int, Any, str]:
    proc = helpers.run_snap(*args, "--json", cwd=cwd, check=check)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def _store(repo: Path) -> Path:
    return repo / ".dvc" / "cache" / "gitsnap" / "blake3"


def _store_oids(repo: Path) -> set[str]:
    """Every object of a local store, loose or in its packs."""
    store = ObjectStore(_store(repo))
    return set(store.iter_oids()) | store.packs().oids()


def _store_bytes(repo: Path, oid: str) -> bytes:
    with ObjectStore(_store(repo)).open(oid) as f:
        return os.pread(f.fd, f.length, f.offset)


def _clone(repo: Path, dest: Path) -> Path:
    helpers.git("clone", "-q", repo, dest)
    return dest


# --------------------------------------------------------------------------


def test_push_packs_small_objects_and_a_clone_pulls_them_byte_exact(
    remote: RemoteFiles, dvc_repo: Path, tmp_path: Path
) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 300)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1 = _oids(dvc_repo, "model.safetensors")
    big = next(o for o, n in v1.items() if n == "big.weight")

    code, res, _ = _snap_json("push", cwd=dvc_repo)
    assert code == 0 and res["objects_transferred"] == len(v1) == 302  # 300 + big + header
    assert res["bytes_transferred"] == ckpt.stat().st_size
    # 301 small objects: one pack and its index; the big tensor in a pack of its own
    files = remote.packs()
    assert len(files) == 4 and {Path(f).suffix for f in files} == {".pack", ".idx"}
    assert remote.loose() == set()
    assert big in remote.packed(tmp_path)
    idx = remote.small_indexes(tmp_path)
    [(name, entries)] = idx.items()
    assert {e.oid for e in entries} == set(v1) - {big}
    # the pack is named by its bytes, and random float32 compresses (byte planes + zstd)
    data = remote.read(f"{PACKS}/pack-{name}.pack")
    assert blake3.blake3(data).hexdigest() == name
    assert {e.codec for e in entries if v1[e.oid] != "header"} == {3}  # grouped planes+zstd
    assert len(data) < 0.95 * 300 * SMALL * 4

    # a second push reads the remote's index and sends nothing
    code, res, _ = _snap_json("push", cwd=dvc_repo)
    assert (res["objects_transferred"], res["objects_skipped"]) == (0, len(v1))
    status = _snap_json("status", "--remote", cwd=dvc_repo)[1]
    assert status["clean"] is True

    # v2 changes two tensors: fewer than the unpack limit, so they travel loose
    _write(ckpt, 300, changed=(5, 6))
    _save_commit(dvc_repo, "model.safetensors", "v2")
    v2 = _oids(dvc_repo, "model.safetensors")
    code, res, _ = _snap_json("push", cwd=dvc_repo)
    assert res["objects_transferred"] == 2 and len(remote.packs()) == 4
    assert remote.loose() == set(v2) - set(v1)
    v2_bytes = ckpt.read_bytes()

    # a fresh clone pulls the packed and the loose objects, byte-exact
    clone = _clone(dvc_repo, tmp_path / "clone")
    code, res, _ = _snap_json("pull", cwd=clone)
    assert code == 0 and res["fetch"]["objects_transferred"] == len(v2)
    assert (clone / "model.safetensors").read_bytes() == v2_bytes
    for oid in _store_oids(clone):  # stored raw (packed, as a save packs them), verified
        assert blake3.blake3(_store_bytes(clone, oid)).hexdigest() == oid
    helpers.run_snap("checkout", "HEAD~1", "--force", cwd=clone)
    assert _store_oids(clone) >= set(v1)
    assert (clone / "model.safetensors").read_bytes() != v2_bytes

    # fsck --remote decodes every packed member; gc --remote keeps the pack whole
    code, res, _ = _snap_json("fsck", "--remote", "--all-commits", cwd=dvc_repo)
    assert code == 0 and res["ok"] and res["objects_checked"] == len(set(v1) | set(v2))
    code, res, _ = _snap_json(
        "gc", "--remote", "--all-commits", "--force", "--grace", "now", cwd=dvc_repo
    )
    assert code == 0 and res["packs_kept"] == 2 and res["packed_objects"] == 302
    assert res["objects_deleted"] == 0 and len(remote.packs()) == 4


@pytest.mark.s3
def test_s3_push_and_pull_of_many_small_tensors_are_a_few_requests(
    s3_remote: str, moto_server: Any, dvc_repo: Path, tmp_path: Path
) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 400)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    bucket, _ = helpers.split_s3_url(s3_remote)

    def requests_during(*args: str, cwd: Path) -> list[str]:
        start = moto_server.log.stat().st_size
        helpers.run_snap(*args, cwd=cwd)
        time.sleep(0.2)  # let the server flush its request log
        with moto_server.log.open("rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").splitlines()
        return [ln for ln in lines if f"/{bucket}" in ln]

    pushed = requests_during("push", cwd=dvc_repo)
    # 402 objects: one pack, its index, the big tensor's pack and index; a few listings
    assert len([ln for ln in pushed if '"PUT ' in ln]) == 4
    assert len(pushed) <= 13, pushed
    clone = _clone(dvc_repo, tmp_path / "clone")
    pulled = requests_during("pull", cwd=clone)
    gets = [ln for ln in pulled if '"GET ' in ln and "list-type=2" not in ln]
    # the index, the pack in one ranged read, the big tensor
    assert len(gets) <= 4, gets
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()


def test_s3_pull_of_a_snapshot_nobody_pushed_lists_once_instead_of_a_get_per_tensor(
    s3_remote: str, moto_server: Any, dvc_repo: Path, tmp_path: Path
) -> None:
    _write(dvc_repo / "model.safetensors", 300, big=False)
    _save_commit(dvc_repo, "model.safetensors", "v1")  # saved, committed, never pushed
    oids = _oids(dvc_repo, "model.safetensors")
    bucket, _ = helpers.split_s3_url(s3_remote)
    clone = _clone(dvc_repo, tmp_path / "clone")
    start = moto_server.log.stat().st_size
    code, res, err = _snap_json("pull", cwd=clone, check=False)
    time.sleep(0.2)  # let the server flush its request log
    with moto_server.log.open("rb") as f:
        f.seek(start)
        asked = [ln for ln in f.read().decode(errors="replace").splitlines() if f"/{bucket}" in ln]
    assert code == 3 and "push" in err and "hint:" in err, (code, err)
    assert {f["oid"] for f in res["failed"]} == set(oids), res
    assert {f["reason"] for f in res["failed"]} == {"missing-remote"}
    # listings only: no GET of an object, where it was one per tensor (301)
    assert all("list-type=2" in ln for ln in asked if '"GET ' in ln), asked
    assert len(asked) <= 12, asked
    assert not (clone / "model.safetensors").exists()


def test_corrupt_pack_member_is_named_and_nothing_is_written(
    remote: RemoteFiles, dvc_repo: Path, tmp_path: Path
) -> None:
    _write(dvc_repo / "model.safetensors", 120)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    oids = _oids(dvc_repo, "model.safetensors")
    [(name, entries)] = remote.small_indexes(tmp_path).items()
    bad = next(e for e in entries if oids[e.oid] == "layer.0042.weight")
    key = f"{PACKS}/pack-{name}.pack"
    data = bytearray(remote.read(key))
    data[bad.offset + bad.length // 2] ^= 0x01
    remote.write(key, bytes(data))

    clone = _clone(dvc_repo, tmp_path / "clone")
    code, res, err = _snap_json("pull", cwd=clone, check=False)
    assert code == 3
    assert "layer.0042.weight" in err and bad.oid[:12] in err and f"in pack {name[:12]}" in err
    assert f"delete packs/pack-{name}.idx" in err
    assert "corrupt" in err and "hint:" in err
    assert [(f["oid"], f["reason"]) for f in res["failed"]] == [(bad.oid, "corrupt")]
    assert res["failed"][0]["tensors"] == ["model.safetensors: tensor 'layer.0042.weight'"]
    # the damaged object is not stored, the others are; the checkpoint is not written
    assert _store_oids(clone) == set(oids) - {bad.oid}
    assert not (clone / "model.safetensors").exists()

    # fsck --remote names the tensor too
    code, res, _ = _snap_json("fsck", "--remote", cwd=dvc_repo, check=False)
    assert code == 1 and res["corrupt"] == 1 and res["ok"] is False
    assert len(res["damaged_packs"]) == 1 and name[:12] in res["damaged_packs"][0]
    [problem] = res["problems"]
    assert problem["oid"] == bad.oid and problem["problem"] == "corrupt"
    assert problem["uses"][0]["segment"] == "tensor 'layer.0042.weight'"


def test_damaged_remote_index_is_named(remote: RemoteFiles, dvc_repo: Path, tmp_path: Path) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 120)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    [name] = remote.small_indexes(tmp_path)
    key = f"{PACKS}/pack-{name}.idx"
    data = bytearray(remote.read(key))
    data[100] ^= 0xFF
    remote.write(key, bytes(data))
    clone = _clone(dvc_repo, tmp_path / "clone")
    proc = helpers.run_snap("pull", cwd=clone, check=False)
    assert proc.returncode == 3
    assert "pack" in proc.stderr and "checksum" in proc.stderr and "hint: delete" in proc.stderr
    assert not (clone / "model.safetensors").exists()
    # gc --remote deletes nothing while an index is unreadable
    proc = helpers.run_snap(
        "gc", "--remote", "--all-commits", "--force", "--grace", "now", cwd=dvc_repo, check=False
    )
    assert proc.returncode == 3 and "checksum" in proc.stderr
    # a push sends the objects again, in a new pack: the remote is whole again
    code, res, _ = _snap_json("push", cwd=dvc_repo)
    assert code == 0
    assert res["objects_transferred"] == 121  # the small ones; the big one's pack is intact
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()


def test_v1_loose_remote_mixed_with_v2_packs(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    remote = _local(local_remote)
    ckpt = _write(dvc_repo / "model.safetensors", 150)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1_bytes = ckpt.read_bytes()
    v1 = _oids(dvc_repo, "model.safetensors")
    # the remote as gitsnap v1 wrote it: every object loose and raw under ab/cdef...
    for oid in v1:
        dest = local_remote / AREA / oid[:2] / oid[2:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(_store_bytes(dvc_repo, oid))

    _, res, _ = _snap_json("push", cwd=dvc_repo)
    assert (res["objects_transferred"], res["objects_skipped"]) == (0, len(v1))

    # v2 changes 120 tensors: they go into a pack beside the v1 objects
    _write(ckpt, 150, changed=range(120))
    _save_commit(dvc_repo, "model.safetensors", "v2")
    v2 = _oids(dvc_repo, "model.safetensors")
    _, res, _ = _snap_json("push", cwd=dvc_repo)
    assert res["objects_transferred"] == 120
    assert remote.packed(tmp_path) == set(v2) - set(v1)
    assert remote.loose() == set(v1)

    clone = _clone(dvc_repo, tmp_path / "clone")
    _, res, _ = _snap_json("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()
    helpers.run_snap("pull", "HEAD~1", "--force", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == v1_bytes
    code, res, _ = _snap_json("fsck", "--remote", "--all-commits", cwd=dvc_repo)
    assert code == 0 and res["objects_checked"] == len(set(v1) | set(v2))


def test_killed_push_of_a_pack_reruns_to_completion(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    remote = _local(local_remote)
    ckpt = _write(dvc_repo / "model.safetensors", 150, big=False)  # one pack
    _save_commit(dvc_repo, "model.safetensors", "v1")
    total = len(_oids(dvc_repo, "model.safetensors"))
    # killed once the pack landed and before its index did (the wrapper pauses there)
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
    # the pack was written in place (the remote's tmp/, renamed into packs/): its index
    # waits in the remote's tmp/, and nothing was written in the store's tmp/
    leftover = remote.temps()
    assert len(leftover) == 1 and leftover[0].endswith(".idx"), leftover
    assert not list((_store(dvc_repo) / "tmp").rglob("pack-*"))

    code, res, _ = _snap_json("push", cwd=dvc_repo)
    # the orphan pack counts for nothing: every small object is sent again
    assert code == 0 and res["objects_transferred"] == total
    clone = _clone(dvc_repo, tmp_path / "clone")
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()

    # the same encoding gives the same pack name: the re-run replaced the orphan, no leftovers
    assert len(remote.packs()) == 2
    # but the killed push's temp file: gc --remote deletes it once it is an hour old
    assert remote.temps() == leftover
    stale = time.time() - 2 * 3600
    os.utime(local_remote / leftover[0], (stale, stale))
    _, gc, _ = _snap_json("gc", "--remote", "--all-commits", "--force", cwd=dvc_repo)
    assert gc["tmp_deleted"] == 1
    assert not remote.temps()
    assert len(remote.packs()) == 2


def test_push_sends_deltas_against_the_parent_and_a_fresh_clone_decodes_them(
    remote: RemoteFiles, dvc_repo: Path, tmp_path: Path
) -> None:
    """A dense fine-tune changes every tensor a little: XOR with the parent's tensor of the
    same name, then byte planes + zstd, is far smaller; chains decode in a fresh clone."""
    ckpt = _write(dvc_repo / "model.safetensors", 150)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1 = _oids(dvc_repo, "model.safetensors")
    helpers.run_snap("push", cwd=dvc_repo)
    [(first, _)] = remote.small_indexes(tmp_path).items()

    versions = [ckpt.read_bytes()]
    by_name = [{n: o for o, n in v1.items()}]
    for step, factor in ((2, 1.00001), (3, 1.00002)):
        _write(ckpt, 150, changed=range(150), factor=factor)
        _save_commit(dvc_repo, "model.safetensors", f"v{step}")
        ptr = _oids(dvc_repo, "model.safetensors")
        by_name.append({n: o for o, n in ptr.items()})
        versions.append(ckpt.read_bytes())
        code, res, _ = _snap_json("push", cwd=dvc_repo)
        assert code == 0 and res["objects_transferred"] == 150

    idx = remote.small_indexes(tmp_path)
    assert len(idx) == 3
    entries = {e.oid: e for es in idx.values() for e in es}
    for step in (1, 2):  # v2 against v1 (depth 1), v3 against v2 (depth 2)
        for name, oid in by_name[step].items():
            if name.startswith("layer."):
                e = entries[oid]
                # small tensors: grouped, each XORed with its parent's
                want = (codec.GROUP, by_name[step - 1][name], step)
                assert (e.codec, e.base, e.depth) == want, name
    size = {name: sum(e.share for e in es) for name, es in idx.items()}
    second = next(n for n in idx if n != first and any(e.depth == 1 for e in idx[n]))
    assert size[second] < 0.75 * size[first]

    # a fresh clone pulls v3: the v2 and v1 tensors it is XORed against come first
    clone = _clone(dvc_repo, tmp_path / "clone")
    code, res, _ = _snap_json("pull", cwd=clone)
    assert code == 0 and res["fetch"]["objects_transferred"] == 152  # 150 + big + header
    assert (clone / "model.safetensors").read_bytes() == versions[2]
    helpers.run_snap("checkout", "HEAD~2", "--force", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == versions[0]

    code, res, _ = _snap_json("fsck", "--remote", "--all-commits", cwd=dvc_repo)
    assert code == 0 and res["ok"] and res["corrupt"] == 0
    code, res, _ = _snap_json(
        "gc", "--remote", "--all-commits", "--force", "--grace", "now", cwd=dvc_repo
    )
    assert code == 0 and res["packs_kept"] == 4 and res["objects_deleted"] == 0


def test_a_merged_snapshot_is_stored_as_deltas_against_the_merge_base(
    dvc_repo: Path, local_remote: Path
) -> None:
    """Two branches fine-tune disjoint halves of v1 and are merged tensor by tensor; only
    the merge commit is pushed. Ours' half has no older version in the merged pointer's
    parent (it is the parent's own tensor): its delta base is the merge base's tensor."""
    remote, repo, n = _local(local_remote), dvc_repo, 100
    helpers.run_snap("init", cwd=repo)
    ckpt = _write(repo / "model.safetensors", n, big=False)
    _save_commit(repo, "model.safetensors", "v1")
    v1 = {name: oid for oid, name in _oids(repo, "model.safetensors").items()}
    helpers.run_snap("push", cwd=repo)
    [first] = remote.small_indexes(local_remote.parent)
    helpers.git("checkout", "-q", "-b", "theirs", cwd=repo)
    _write(ckpt, n, changed=range(n // 2), factor=1.00001, big=False)
    _save_commit(repo, "model.safetensors", "first half")
    helpers.git("checkout", "-q", "main", cwd=repo)
    _write(ckpt, n, changed=range(n // 2, n), factor=1.00001, big=False)
    _save_commit(repo, "model.safetensors", "second half")
    helpers.git("merge", "-q", "--no-edit", "theirs", cwd=repo)
    merged = {name: oid for oid, name in _oids(repo, "model.safetensors").items()}
    assert all(merged[f"layer.{i:04d}.weight"] != v1[f"layer.{i:04d}.weight"] for i in range(n))

    code, res, _ = _snap_json("push", cwd=repo)  # HEAD only: the merged snapshot
    assert code == 0 and res["objects_transferred"] == n
    [second] = set(remote.small_indexes(local_remote.parent)) - {first}
    entries = {e.oid: e for e in remote.small_indexes(local_remote.parent)[second]}
    for i in range(n):
        name = f"layer.{i:04d}.weight"
        e = entries[merged[name]]
        assert (e.codec, e.base, e.depth) == (codec.GROUP, v1[name], 1), name  # XOR on v1
    clone = _clone(repo, local_remote.parent / "clone")
    helpers.run_snap("pull", cwd=clone)
    both = _write(
        local_remote.parent / "both.safetensors", n, changed=range(n), factor=1.00001, big=False
    )
    assert (clone / "model.safetensors").read_bytes() == both.read_bytes()


def test_fetch_reads_runs_of_wanted_members_with_one_request_each() -> None:
    """Whole packs for a fresh clone, just the member for one tensor (remote/packs.runs)."""
    from gitsnap.remote import packs as rpacks

    size = 16 * 1024 + 64
    entries = [
        pack.Entry(f"{i:064x}", 16 + i * size, size, size - 64, 1, 12, 0, None, "p" * 64)
        for i in range(2000)  # ~33 MiB: more than one run
    ]
    found = rpacks.RemotePacks(where={e.oid: e for e in entries})
    every = rpacks.runs(found, [e.oid for e in entries])
    assert all(
        b[0].offset == a[-1].offset + a[-1].length for (_, a), (_, b) in itertools.pairwise(every)
    )  # back to back: the whole pack, in runs of at most RUN_MAX
    assert len(every) == -(-2000 * size // rpacks.RUN_MAX)
    assert all(m[-1].offset + m[-1].length - m[0].offset <= rpacks.RUN_MAX for _, m in every)
    # one member alone; two close ones in one read; a far one in its own
    assert [len(m) for _, m in rpacks.runs(found, [entries[7].oid])] == [1]
    picked = [entries[10].oid, entries[12].oid, entries[1500].oid]
    assert [[e.oid for e in m] for _, m in rpacks.runs(found, picked)] == [
        picked[:2],
        picked[2:],
    ]


def _damage_group_frame(remote: RemoteFiles, name: str, offset: int) -> None:
    """Flip a byte of the zstd frame header of a group member's first compressed plane:
    none of its objects can be decoded."""
    key = f"{PACKS}/pack-{name}.pack"
    data = bytearray(remote.read(key))
    pos = offset + codec.HEADER_SIZE
    while True:
        word = int.from_bytes(data[pos : pos + 4], "little")
        if not word & (1 << 31):
            break
        pos += 4 + (word & ~(1 << 31))
    data[pos + 4 + 1] ^= 0xFF
    remote.write(key, bytes(data))


def test_small_tensors_travel_in_groups_and_a_damaged_group_names_each_tensor(
    remote: RemoteFiles, dvc_repo: Path, tmp_path: Path
) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 120, big=False)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    oids = _oids(dvc_repo, "model.safetensors")
    [(name, entries)] = remote.indexes(tmp_path).items()
    idx = remote.read(f"{PACKS}/pack-{name}.idx")
    assert int.from_bytes(idx[4:8], "little") == pack.GROUP_VERSION
    grouped = [e for e in entries if e.grouped]
    assert {oids[e.oid] for e in grouped} == {f"layer.{i:04d}.weight" for i in range(120)}
    members: dict[int, list[pack.Entry]] = {}
    for e in grouped:
        members.setdefault(e.offset, []).append(e)
    # 16 KiB tensors, at most 256 KiB of them a group: 8 groups, not 120 frames
    assert len(members) == -(-120 * SMALL * 4 // codec.GROUP_MAX)
    for es in members.values():
        assert sum(e.raw_size for e in es) <= codec.GROUP_MAX
        assert sorted(e.start for e in es) == [i * SMALL * 4 for i in range(len(es))]
    # du --remote counts each group member once, shared by its tensors
    _, du, _ = _snap_json("du", "--remote", cwd=dvc_repo)
    forms = {f["form"]: f for f in du["forms"]}
    assert forms[codec.GROUP_NAME]["objects"] == 120
    assert forms[codec.GROUP_NAME]["stored_bytes"] <= sum(
        {e.offset: e.length for e in grouped}.values()
    )
    assert du["total"]["stored_bytes"] < 0.95 * ckpt.stat().st_size

    # a damaged group member: each of its tensors named, the rest pulled, nothing written
    hit = members[sorted(members)[2]]
    _damage_group_frame(remote, name, hit[0].offset)
    clone = _clone(dvc_repo, tmp_path / "clone")
    code, res, err = _snap_json("pull", cwd=clone, check=False)
    assert code == 3 and "hint:" in err
    assert {f["oid"] for f in res["failed"]} == {e.oid for e in hit}
    assert {f["reason"] for f in res["failed"]} == {"corrupt"}
    named = {t for f in res["failed"] for t in f["tensors"]}
    assert named == {f"model.safetensors: tensor '{oids[e.oid]}'" for e in hit}
    assert _store_oids(clone) == set(oids) - {e.oid for e in hit}
    assert not (clone / "model.safetensors").exists()
    code, res, _ = _snap_json("fsck", "--remote", cwd=dvc_repo, check=False)
    assert code == 1 and res["corrupt"] == len(hit)
    assert {p["oid"] for p in res["problems"]} == {e.oid for e in hit}


def test_gc_keeps_a_partly_dead_group_whole_and_drops_the_dead_ones(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    import numpy as np

    remote = _local(local_remote)
    ckpt = _write(dvc_repo / "model.safetensors", 120, big=False)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    # v2: tensors 0-55 replaced by new random ones (no delta pays), pushed as v2
    rng = np.random.default_rng(99)
    tensors = {
        f"layer.{i:04d}.weight": (
            rng.standard_normal(SMALL, dtype=np.float32)
            if i < 56
            else np.random.default_rng(0).standard_normal((120, SMALL), dtype=np.float32)[i]
        )
        for i in range(120)
    }
    v1 = _oids(dvc_repo, "model.safetensors")
    helpers.write_safetensors(ckpt, tensors)
    _save_commit(dvc_repo, "model.safetensors", "v2")
    helpers.run_snap("push", cwd=dvc_repo)
    v2 = _oids(dvc_repo, "model.safetensors")
    assert len(set(v1) & set(v2)) == 65  # 64 tensors and the header
    [(first, old)] = [
        (n, es) for n, es in remote.indexes(tmp_path).items() if set(v1) <= {e.oid for e in es}
    ]

    _keep_head_alone(dvc_repo)  # v1's 56 replaced tensors are dead
    code, res, _ = _snap_json(
        "gc", "--remote", "--all-commits", "--force", "--grace", "now", cwd=dvc_repo
    )
    assert code == 0 and res["packs_rewritten"] == 1, json.dumps(res)
    after = remote.indexes(tmp_path)
    assert first not in after
    [new] = [es for es in after.values() if set(v1) & set(v2) <= {e.oid for e in es}]
    by_oid = {e.oid: e for e in old}
    kept_groups = {by_oid[o].offset for o in set(v1) & set(v2)}
    # groups with a live tensor are copied whole (their dead tensors' bytes stay in them,
    # unindexed); groups of dead tensors only are gone
    assert {e.oid for e in new} == set(v1) & set(v2)
    for e in new:  # moved as they were stored
        was = by_oid[e.oid]
        assert (e.codec, e.start, e.raw_size, e.length) == (
            was.codec, was.start, was.raw_size, was.length
        )  # fmt: skip
    assert sum(e.grouped for e in new) == 64
    assert (
        len({e.offset for e in new}) == len(kept_groups) < len({e.offset for e in old if e.grouped})
    )
    clone = _clone(dvc_repo, tmp_path / "clone")
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == ckpt.read_bytes()
    code, res, _ = _snap_json("fsck", "--remote", cwd=dvc_repo, check=False)
    assert code == 0 and res["ok"], res
