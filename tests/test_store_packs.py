"""Local packs (storage v2, docs/storage-format.md): a save or fetch of many small objects
writes them into packs in the local store; every command reads them, re-hashed.

Real git repositories, real DVC projects and remotes, the real CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helpers
import numpy as np

from gitsnap import pack
from gitsnap.errors import ObjectCorrupt

SMALL = 4096  # float32 elements: 16 KiB tensors, below pack.THRESHOLD
BIG = 300 * 1024  # 1.2 MiB: above it, stays loose


def _write(path: Path, n: int, seed: int = 0, changed: range = range(0)) -> Path:
    rng = np.random.default_rng(seed)
    tensors: dict[str, Any] = {
        f"layer.{i:04d}.weight": rng.standard_normal(SMALL, dtype=np.float32) for i in range(n)
    }
    tensors["big.weight"] = rng.standard_normal(BIG, dtype=np.float32)
    for i in changed:
        tensors[f"layer.{i:04d}.weight"] *= np.float32(1.001)
    return helpers.write_safetensors(path, tensors)


def _store(repo: Path) -> Path:
    return repo / ".dvc" / "cache" / "gitsnap" / "blake3"


def _loose(repo: Path) -> set[str]:
    root = _store(repo)
    return {d.name + f.name for d in root.iterdir() if len(d.name) == 2 for f in d.iterdir()}


def _packs(repo: Path) -> list[Path]:
    return sorted((_store(repo) / "packs").glob("pack-*.pack"))


def _entries(repo: Path) -> dict[str, pack.Entry]:
    out: dict[str, pack.Entry] = {}
    for idx in sorted((_store(repo) / "packs").glob("pack-*.idx")):
        try:
            out.update({e.oid: e for e in pack.read_index(idx)[1]})
        except ObjectCorrupt:
            continue  # a damaged index names nothing
    return out


def _json(*args: str, cwd: Path, check: bool = True) -> tuple[int, Any, str]:
    proc = helpers.run_snap(*args, "--json", cwd=cwd, check=check)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def _oids(repo: Path, rel: str, rev: str = "HEAD") -> dict[str, str]:
    data = _json("show", f"{rev}:{rel}", cwd=repo)[1]
    ptr = data.get("pointer", data)
    return {e.get("name") or e.get("role"): e["oid"] for e in [*ptr["tensors"], *ptr["blobs"]]}


def _save_commit(repo: Path, rel: str, message: str) -> None:
    helpers.run_snap("save", rel, "-m", message, cwd=repo)
    helpers.commit_all(repo, message)


def _flip(path: Path, offset: int) -> None:
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


def test_many_small_tensors_go_into_a_pack_that_every_command_reads(dvc_repo: Path) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 150)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1 = _oids(dvc_repo, "model.safetensors")
    # 150 tensors and the header are small: one pack and its index; the big tensor is loose
    assert _loose(dvc_repo) == {v1["big.weight"]}
    [pk] = _packs(dvc_repo)
    assert set(_entries(dvc_repo)) == set(v1.values()) - {v1["big.weight"]}
    assert {e.codec for e in _entries(dvc_repo).values()} == {0}  # raw: a save stays cheap
    assert pk.stat().st_mode & 0o777 == 0o444  # immutable, as loose objects are
    assert pk.with_suffix(".idx").stat().st_mode & 0o777 == 0o444
    v1_bytes = ckpt.read_bytes()

    # v2 changes 120 tensors: a second pack; the unchanged ones (and the header) are not
    # stored again
    _write(ckpt, 150, changed=range(120))
    _save_commit(dvc_repo, "model.safetensors", "v2")
    assert len(_packs(dvc_repo)) == 2 and len(_entries(dvc_repo)) == 151 + 120
    v2_bytes = ckpt.read_bytes()

    assert _json("status", cwd=dvc_repo)[1]["clean"] is True
    code, res, _ = _json("fsck", "--all-commits", cwd=dvc_repo)
    assert code == 0 and res["ok"] is True and res["objects_checked"] == 151 + 120 + 1
    code, res, _ = _json("diff", "--values", "HEAD~1", "HEAD", cwd=dvc_repo)
    changed = [t for t in res["checkpoints"][0]["tensors"] if t["status"] == "modified"]
    assert len(changed) == 120 and all(t.get("values") for t in changed)
    du = _json("du", cwd=dvc_repo)[1]
    assert (du["store_packs"], du["packed_objects"]) == (2, 151 + 120)

    ckpt.unlink()
    helpers.run_snap("checkout", "model.safetensors", cwd=dvc_repo)
    assert ckpt.read_bytes() == v2_bytes
    helpers.run_snap("checkout", "HEAD~1", "--force", cwd=dvc_repo)
    assert ckpt.read_bytes() == v1_bytes


def test_a_few_small_objects_stay_loose(dvc_repo: Path) -> None:
    _write(dvc_repo / "model.safetensors", 40)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    assert len(_loose(dvc_repo)) == 42 and not _packs(dvc_repo)  # below the unpack limit (100)


def test_a_corrupt_pack_member_is_named_and_never_written_out(dvc_repo: Path) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 150)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    oid = _oids(dvc_repo, "model.safetensors")["layer.0042.weight"]
    e = _entries(dvc_repo)[oid]
    [pk] = _packs(dvc_repo)
    _flip(pk, e.offset + e.length // 2)
    ckpt.unlink()

    proc = helpers.run_snap("checkout", "model.safetensors", cwd=dvc_repo, check=False)
    assert proc.returncode == 3
    assert "layer.0042.weight" in proc.stderr and oid[:12] in proc.stderr
    assert (
        "corrupt" in proc.stderr
        and f"hint: delete its pack (rm -f '{pk.with_suffix('.idx')}'" in (proc.stderr)
    )
    assert not ckpt.exists()  # nothing written out

    code, res, _ = _json("fsck", cwd=dvc_repo, check=False)
    assert code == 1 and res["ok"] is False
    [problem] = res["problems"]
    assert (problem["oid"], problem["problem"]) == (oid, "corrupt")
    assert problem["uses"][0]["segment"] == "tensor 'layer.0042.weight'"
    assert any(pk.name in d for d in res["damaged_packs"])

    # a push does not spread it
    (dvc_repo.parent / "remote").mkdir()
    helpers.add_dvc_remote(dvc_repo, "storage", str(dvc_repo.parent / "remote"))
    proc = helpers.run_snap("push", cwd=dvc_repo, check=False)
    assert proc.returncode == 3 and oid[:12] in proc.stderr and "corrupt" in proc.stderr


def test_a_damaged_index_hides_only_its_pack_and_a_checkout_fetches_again(
    dvc_repo: Path, local_remote: Path
) -> None:
    a = _write(dvc_repo / "a.safetensors", 120, seed=1)
    _save_commit(dvc_repo, "a.safetensors", "a")
    [pack_a] = _packs(dvc_repo)
    b = _write(dvc_repo / "b.safetensors", 120, seed=2)
    _save_commit(dvc_repo, "b.safetensors", "b")
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    helpers.run_snap("push", cwd=dvc_repo)
    transferred = len(_entries(dvc_repo))

    idx = pack_a.with_suffix(".idx")
    _flip(idx, 100)
    code, res, _ = _json("fsck", cwd=dvc_repo, check=False)
    assert code == 1 and any(idx.name in d and "checksum" in d for d in res["damaged_packs"])
    assert res["missing"] == 121  # hidden, never read as data
    assert "hint: delete" in helpers.run_snap("fsck", cwd=dvc_repo, check=False).stdout
    a.unlink()
    b.unlink()
    helpers.run_snap("checkout", "b.safetensors", cwd=dvc_repo)  # the other pack still reads
    assert b.read_bytes() == b_bytes
    # a's objects come back from the remote, verified, into a new pack
    code, res, _ = _json("checkout", "a.safetensors", cwd=dvc_repo)
    assert a.read_bytes() == a_bytes
    assert len(_entries(dvc_repo)) < transferred  # the damaged index names nothing
    idx.unlink()
    pack_a.unlink()
    assert _json("fsck", "--all-commits", cwd=dvc_repo)[1]["ok"] is True


def test_gc_rewrites_packs_without_the_objects_it_drops(dvc_repo: Path) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 150)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    v1 = _oids(dvc_repo, "model.safetensors")
    _write(ckpt, 150, changed=range(120))
    _save_commit(dvc_repo, "model.safetensors", "v2")
    v2 = _oids(dvc_repo, "model.safetensors")
    v2_bytes = ckpt.read_bytes()
    # v1 dies: its commit is rewritten away and the reflog expired
    helpers.git("reset", "-q", "--soft", "HEAD~2", cwd=dvc_repo)
    helpers.git("commit", "-q", "-m", "v2 only", cwd=dvc_repo)
    helpers.git("reflog", "expire", "--expire=now", "--all", cwd=dvc_repo)
    dead = set(v1.values()) - set(v2.values())
    assert len(dead) == 120

    # dry run: nothing changes
    before = sorted(p.name for p in (_store(dvc_repo) / "packs").iterdir())
    code, res, _ = _json("gc", "--dry-run", "--keep-last", "0", "--grace", "now", cwd=dvc_repo)
    assert res["objects_deleted"] == 120 and res["packs_rewritten"] == 1
    assert sorted(p.name for p in (_store(dvc_repo) / "packs").iterdir()) == before

    code, res, _ = _json("gc", "--keep-last", "0", "--grace", "now", cwd=dvc_repo)
    assert code == 0 and res["objects_deleted"] == 120 and res["packs_rewritten"] == 1
    assert res["packed_objects"] == 151
    assert set(_entries(dvc_repo)) == set(v2.values()) - {v2["big.weight"]}
    assert len(_packs(dvc_repo)) == 2  # v2's own pack untouched, v1's rewritten
    assert _json("fsck", "--all-commits", cwd=dvc_repo)[1]["ok"] is True
    ckpt.unlink()
    helpers.run_snap("checkout", "model.safetensors", cwd=dvc_repo)
    assert ckpt.read_bytes() == v2_bytes


def _loose_copy_of_a_member(repo: Path) -> tuple[str, Path, bytes]:
    """Write a loose copy of a packed member: its id, the loose file, its bytes."""
    oid = next(iter(_entries(repo)))
    with pack.PackStore(_store(repo) / "packs") as packs:
        raw = packs.read(oid)
    loose = _store(repo) / oid[:2] / oid[2:]
    loose.parent.mkdir(exist_ok=True)
    loose.write_bytes(raw)
    return oid, loose, raw


def test_gc_counts_a_kept_object_both_loose_and_packed_once(dvc_repo: Path) -> None:
    _write(dvc_repo / "model.safetensors", 150)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    code, res, _ = _json("gc", "--dry-run", "--grace", "now", cwd=dvc_repo)
    assert code == 0 and res["objects_kept"] == 152  # 150 tensors, big.weight, header
    bytes_before = res["bytes_kept"]
    # a loose copy of a packed member (as an older gitsnap or an interrupted repack leaves)
    oid, loose, raw = _loose_copy_of_a_member(dvc_repo)
    code, res, _ = _json("gc", "--grace", "now", cwd=dvc_repo)
    assert code == 0 and res["objects_kept"] == 152 and res["objects_deleted"] == 0
    assert res["bytes_kept"] == bytes_before + len(raw)  # both copies stay on disk, both counted
    assert loose.read_bytes() == raw and oid in _entries(dvc_repo)


def test_gc_keeps_a_young_pack_whole(dvc_repo: Path) -> None:
    _write(dvc_repo / "model.safetensors", 150)
    helpers.run_snap("save", "model.safetensors", cwd=dvc_repo)
    (dvc_repo / "model.safetensors.snap").unlink()  # no pointer names the objects any more
    helpers.run_snap("gc", "--keep-last", "0", cwd=dvc_repo)  # default grace: 1 hour
    assert len(_entries(dvc_repo)) == 151


def test_gc_keeps_an_old_loose_copy_of_a_member_its_young_pack_keeps(dvc_repo: Path) -> None:
    """An unreferenced object that stays packed (its pack is young) keeps its old loose
    copy too, counted once: gc reports no object deleted while the object is still there."""
    _write(dvc_repo / "model.safetensors", 150)
    helpers.run_snap("save", "model.safetensors", cwd=dvc_repo)
    (dvc_repo / "model.safetensors.snap").unlink()  # no pointer names the objects any more
    oid, loose, raw = _loose_copy_of_a_member(dvc_repo)
    old = time.time() - 2 * 3600  # older than the grace period; the pack is not
    os.utime(loose, (old, old))
    code, res, _ = _json("gc", "--keep-last", "0", cwd=dvc_repo)
    assert code == 0 and res["objects_deleted"] == 0 and res["deleted"] == []
    # 151 packed (150 tensors, the header) + big.weight, loose and young: the copy adds none
    assert res["objects_recent"] == 152 and res["packed_unreferenced"] == 151
    assert loose.read_bytes() == raw and oid in _entries(dvc_repo)


def test_repack_compacts_loose_objects_and_small_packs(dvc_repo: Path) -> None:
    files = {}
    for i in range(3):  # three saves below the unpack limit: loose
        files[i] = _write(dvc_repo / f"m{i}.safetensors", 40, seed=i)
        _save_commit(dvc_repo, f"m{i}.safetensors", f"m{i}")
    for i in range(3, 5):  # two above it: a pack each
        files[i] = _write(dvc_repo / f"m{i}.safetensors", 110, seed=i)
        _save_commit(dvc_repo, f"m{i}.safetensors", f"m{i}")
    contents = {i: f.read_bytes() for i, f in files.items()}
    # 3 x (40 tensors + a big one) + one header they share, and the 2 packed saves' big ones
    assert len(_loose(dvc_repo)) == 3 * 41 + 1 + 2 and len(_packs(dvc_repo)) == 2

    code, res, _ = _json("repack", "--dry-run", cwd=dvc_repo)
    assert res["loose_packed"] == 3 * 40 + 1 and len(_packs(dvc_repo)) == 2
    code, res, _ = _json("repack", cwd=dvc_repo)
    assert code == 0 and res["loose_packed"] == 3 * 40 + 1 and res["packs_merged"] == 2
    assert (res["packs_after"], res["loose_after"]) == (1, 5)  # the five big tensors
    assert _loose(dvc_repo) == {_oids(dvc_repo, f"m{i}.safetensors")["big.weight"] for i in files}
    assert _json("fsck", "--all-commits", cwd=dvc_repo)[1]["ok"] is True
    for f in files.values():
        f.unlink()
    helpers.run_snap("checkout", cwd=dvc_repo)
    assert {i: f.read_bytes() for i, f in files.items()} == contents
    assert "nothing to repack" in helpers.run_snap("repack", cwd=dvc_repo).stdout


def test_a_save_killed_while_it_writes_a_pack_leaves_nothing_half_done(
    dvc_repo: Path,
) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 6000)  # ~94 MiB: two packs, a few seconds
    tmp = _store(dvc_repo) / "packs" / "tmp"
    env = {**os.environ, "GITSNAP_WORKERS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitsnap.cli.main", "save", "model.safetensors"],
        cwd=dvc_repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        tmp.is_dir() and any(p.stat().st_size > 8 << 20 for p in tmp.glob("pack-*.pack"))
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not _packs(dvc_repo) and not (dvc_repo / "model.safetensors.snap").exists()
    # the next save completes; the killed one's temp file is cleaned up by gc once stale
    helpers.run_snap("save", "model.safetensors", cwd=dvc_repo)
    assert len(_entries(dvc_repo)) == 6001
    stale = time.time() - 2 * 3600
    for p in tmp.glob("pack-*"):
        os.utime(p, (stale, stale))
    helpers.run_snap("gc", cwd=dvc_repo)
    assert not list(tmp.glob("pack-*"))
    data = ckpt.read_bytes()
    ckpt.unlink()
    helpers.run_snap("checkout", "model.safetensors", cwd=dvc_repo)
    assert ckpt.read_bytes() == data


def _kill_when(repo: Path, args: list[str], ready: Callable[[], bool]) -> int:
    """Run ``git snap ARGS``, SIGKILL it as soon as ``ready()`` holds; its return code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitsnap.cli.main", *args],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "GITSNAP_WORKERS": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and not ready():
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def _tmp_pack_growing(repo: Path) -> Callable[[], bool]:
    tmp = _store(repo) / "packs" / "tmp"
    return lambda: any(p.stat().st_size > 4 << 20 for p in tmp.glob("pack-*.pack"))


def _published(repo: Path, before: set[str]) -> Callable[[], bool]:
    folder = _store(repo) / "packs"
    return lambda: bool({p.name for p in folder.glob("pack-*.idx")} - before)


def _idx_names(repo: Path) -> set[str]:
    return {p.name for p in (_store(repo) / "packs").glob("pack-*.idx")}


def test_repack_killed_at_any_step_loses_nothing_and_a_rerun_completes(dvc_repo: Path) -> None:
    files = {}
    for i in range(2):  # two packs of 24 MiB: small enough to be merged
        files[i] = _write(dvc_repo / f"m{i}.safetensors", 1500, seed=i)
        _save_commit(dvc_repo, f"m{i}.safetensors", f"m{i}")
    contents = {i: f.read_bytes() for i, f in files.items()}
    first = _idx_names(dvc_repo)
    assert len(first) == 2

    def whole() -> None:
        code, res, _ = _json("fsck", "--all-commits", cwd=dvc_repo, check=False)
        assert code == 0 and res["ok"] is True, res
        assert res["objects_checked"] == 2 * 1501 + 1  # the two share their header

    # while the new pack is being written: nothing is published, nothing deleted
    assert _kill_when(dvc_repo, ["repack"], _tmp_pack_growing(dvc_repo)) == -signal.SIGKILL
    assert _idx_names(dvc_repo) == first
    whole()
    # once the new pack is published: the objects are in it and (maybe) in the old ones
    _kill_when(dvc_repo, ["repack"], _published(dvc_repo, first))
    whole()
    # the rerun completes: one pack, every checkpoint restores byte-exact
    helpers.run_snap("repack", cwd=dvc_repo)
    whole()
    # one pack readers see (a killed step may leave an orphan .pack: gc drops it once stale)
    assert len(_idx_names(dvc_repo)) == 1
    for f in files.values():
        f.unlink()
    helpers.run_snap("checkout", cwd=dvc_repo)
    assert {i: f.read_bytes() for i, f in files.items()} == contents


def test_gc_killed_while_it_rewrites_a_pack_loses_nothing(dvc_repo: Path) -> None:
    ckpt = _write(dvc_repo / "model.safetensors", 1500)
    _save_commit(dvc_repo, "model.safetensors", "v1")
    _write(ckpt, 1500, changed=range(1000))
    _save_commit(dvc_repo, "model.safetensors", "v2")
    v2_bytes = ckpt.read_bytes()
    helpers.git("reset", "-q", "--soft", "HEAD~2", cwd=dvc_repo)
    helpers.git("commit", "-q", "-m", "v2 only", cwd=dvc_repo)
    helpers.git("reflog", "expire", "--expire=now", "--all", cwd=dvc_repo)
    before = _idx_names(dvc_repo)
    args = ["gc", "--keep-last", "0", "--grace", "now"]

    for ready in (_tmp_pack_growing(dvc_repo), _published(dvc_repo, before)):
        _kill_when(dvc_repo, args, ready)
        code, res, _ = _json("fsck", "--all-commits", cwd=dvc_repo, check=False)
        assert code == 0 and res["ok"] is True, res
    code, res, _ = _json(*args, cwd=dvc_repo)
    assert code == 0 and res["packed_objects"] == 1501
    ckpt.unlink()
    helpers.run_snap("checkout", "model.safetensors", cwd=dvc_repo)
    assert ckpt.read_bytes() == v2_bytes
