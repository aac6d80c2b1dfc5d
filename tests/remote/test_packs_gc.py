"""gc and du on a remote's packs (gitsnap/remote/rewrite.py, commands/gc.py, commands/du.py).

Real ``git snap`` subprocesses against a local-folder remote and moto's S3
server; the remote is read from outside with the spec's index reader
(``test_packs.RemoteFiles``). The scenario: one push packs v1 of a model
together with another checkpoint; v2 (every tensor changed a little) is
pushed as XOR deltas against v1; then history keeps v2 alone. v1's tensors
are dead but are v2's delta bases, the other checkpoint is dead: its members
are 40 % of the first pack, which gc rewrites.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import helpers
import pytest
import test_packs as tp

from gitsnap import codec

SMALL_ONES = 100  # small tensors of the model: a push of them is packed (>= unpack limit)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def remote(request: pytest.FixtureRequest, dvc_repo: Path) -> tp.RemoteFiles:
    if request.param == "local":
        return tp._local(request.getfixturevalue("local_remote"))
    return tp._s3(request.getfixturevalue("s3_server"), request.getfixturevalue("s3_remote"))


@dataclass
class Story:
    v1: dict[str, str]  # oid -> tensor name
    other: dict[str, str]
    v2: dict[str, str]
    v2_bytes: bytes
    first: str  # the pack of v1 and the other checkpoint
    deltas: str  # the pack of v2's deltas


def _story(repo: Path, remote: tp.RemoteFiles, tmp: Path, others: int = 60) -> Story:
    ckpt = tp._write(repo / "model.safetensors", SMALL_ONES, big=False)
    tp._save_commit(repo, "model.safetensors", "v1")
    tp._write(repo / "other.safetensors", others, seed=1, big=False)
    tp._save_commit(repo, "other.safetensors", "other")
    v1 = tp._oids(repo, "model.safetensors")
    other = tp._oids(repo, "other.safetensors")
    helpers.run_snap("push", "--all", cwd=repo)
    [first] = remote.indexes(tmp)
    tp._write(ckpt, SMALL_ONES, changed=range(SMALL_ONES), factor=1.00001, big=False)
    tp._save_commit(repo, "model.safetensors", "v2")
    helpers.run_snap("push", cwd=repo)
    [deltas] = set(remote.indexes(tmp)) - {first}
    v2 = tp._oids(repo, "model.safetensors")
    # History keeps v2 alone; the journal forgets the rest (a local gc trims it).
    (repo / "other.safetensors").unlink()
    (repo / "other.safetensors.snap").unlink()
    tp._keep_head_alone(repo)
    return Story(v1, other, v2, ckpt.read_bytes(), first, deltas)


def _gc(repo: Path, *args: str) -> dict[str, object]:
    return tp._snap_json("gc", "--remote", "--all-commits", *args, cwd=repo)[1]


def _readable(repo: Path, story: Story, tmp: Path) -> None:
    """Every live object on the remote decodes to its id; a fresh clone restores v2."""
    code, res, _ = tp._snap_json("fsck", "--remote", "--all-commits", cwd=repo, check=False)
    assert code == 0 and res["ok"] and res["missing"] == 0 and res["corrupt"] == 0, res
    clone = tp._clone(repo, tmp / f"clone-{time.monotonic_ns()}")
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == story.v2_bytes


def test_gc_rewrites_a_pack_without_its_dead_members_and_keeps_delta_bases(
    remote: tp.RemoteFiles, dvc_repo: Path, tmp_path: Path
) -> None:
    story = _story(dvc_repo, remote, tmp_path)
    idx = remote.indexes(tmp_path)
    assert {e.oid for e in idx[story.first]} == set(story.v1) | set(story.other)
    dead = set(story.other) - set(story.v2)  # the other checkpoint: its tensors and header
    bases = set(story.v1) - set(story.v2)
    assert len(bases) == SMALL_ONES  # v1's tensors: dead, but v2's deltas need them
    assert {e.base for e in idx[story.deltas]} == bases

    # du --remote: v2 as the remote stores it, v1's tensors as bases, the other as garbage
    _, du, _ = tp._snap_json("du", "--remote", cwd=dvc_repo)
    member = {e.oid: e.share for es in idx.values() for e in es}
    total = du["total"]
    assert (total["snapshots"], total["missing_objects"]) == (1, 0)
    assert total["objects"] == SMALL_ONES + 1  # v2's tensors and the header
    assert total["stored_bytes"] == sum(member[o] for o in story.v2)
    assert total["dedup_bytes"] == total["logical_bytes"] == len(story.v2_bytes)
    assert (du["packs"], du["packed_objects"], du["loose_objects"]) == (2, 262, 0)
    assert (du["base_objects"], du["garbage_objects"]) == (SMALL_ONES, len(dead))
    assert du["base_bytes"] == sum(member[o] for o in bases)
    assert du["garbage_bytes"] == sum(member[o] for o in dead)
    forms = {f["form"]: f for f in du["forms"]}
    deltas = forms[codec.GROUP_DELTA_NAME]  # small tensors: grouped, XORed with v1's
    assert deltas["objects"] == SMALL_ONES and "loose" not in forms
    assert deltas["stored_bytes"] < 0.6 * forms[codec.GROUP_NAME]["stored_bytes"]
    assert abs(sum(f["share"] for f in du["forms"]) - 1) < 1e-3
    text = helpers.run_snap("du", "-r", "storage", cwd=dvc_repo).stdout
    assert "stored as: planes+zstd" in text and "% (100, " in text.split("xor-delta")[1], text
    assert f"{len(dead)} unreferenced" in text and "delta bases only: 100 objects" in text

    # the packs are young (the default grace is 14 days): nothing is rewritten
    res = _gc(dvc_repo, "--force")
    assert res["packs_rewritten"] == 0 and res["packs_kept"] == 2
    assert res["packed_unreferenced"] == len(bases) + len(dead)
    # a dry run says what it would do, and does nothing
    before = remote.packs()
    res = _gc(dvc_repo, "--dry-run", "--grace", "now")
    assert (res["packs_rewritten"], res["packs_written"]) == (1, 1)
    assert res["packed_deleted"] == len(dead) and res["packed_bytes_freed"] > 0
    assert remote.packs() == before
    text = helpers.run_snap(
        "gc", "--remote", "--all-commits", "-n", "--grace", "now", cwd=dvc_repo
    ).stdout
    assert f"would rewrite 1 pack into 1 without {len(dead)} dead objects" in text
    size_before = sum(len(remote.read(k)) for k in before)

    res = _gc(dvc_repo, "--force", "--grace", "now")
    assert (res["packs_rewritten"], res["packs_written"], res["packs_kept"]) == (1, 1, 2)
    assert res["packed_deleted"] == len(dead)
    assert res["objects_deleted"] == len(dead)  # the other checkpoint's members
    after = remote.indexes(tmp_path)
    [new] = set(after) - {story.deltas}
    assert story.first not in after and after[story.deltas] == idx[story.deltas]
    # the bases moved as they were stored (same codec, dtype, length), nothing dead came along
    old = {e.oid: e for e in idx[story.first]}
    assert {e.oid for e in after[new]} == bases | (set(story.v2) & set(old))
    for e in after[new]:
        assert (e.codec, e.dtype, e.depth, e.length, e.raw_size, e.base, e.start) == (
            old[e.oid].codec, old[e.oid].dtype, old[e.oid].depth, old[e.oid].length,
            old[e.oid].raw_size, old[e.oid].base, old[e.oid].start,
        )  # fmt: skip
    freed = size_before - sum(len(remote.read(k)) for k in remote.packs())
    assert res["packed_bytes_freed"] == freed > 0
    _readable(dvc_repo, story, tmp_path)

    _, du, _ = tp._snap_json("du", "--remote", cwd=dvc_repo)
    assert du["garbage_objects"] == 0 and du["garbage_bytes"] == 0
    res = _gc(dvc_repo, "--force", "--grace", "now")  # nothing left to do
    assert res["packs_rewritten"] == 0 and res["objects_deleted"] == 0


def test_a_pack_below_the_threshold_is_kept_whole(dvc_repo: Path, local_remote: Path) -> None:
    remote = tp._local(local_remote)
    _story(dvc_repo, remote, local_remote.parent, others=15)  # dead: 16 of 117 members
    before = remote.packs()
    res = _gc(dvc_repo, "--force", "--grace", "now")
    assert res["packs_rewritten"] == 0 and res["packs_kept"] == 2
    assert res["packed_unreferenced"] == SMALL_ONES + 16  # v1's bases and the dead members
    assert res["objects_deleted"] == 0  # dead members stay in a pack kept whole
    assert remote.packs() == before  # byte for byte: nothing was rewritten


def _paced_gc_killed_when(repo: Path, ready: Callable[[], bool]) -> None:
    """Run a paced ``gc --remote`` (tests/remote/paced_remote.py: a pause after each upload
    and delete); SIGKILL it as soon as ``ready()`` holds."""
    proc = subprocess.Popen(
        [
            sys.executable, os.fspath(Path(__file__).with_name("paced_remote.py")), "0.5",
            "gc", "--remote", "--all-commits", "--force", "--grace", "now",
        ],
        cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, "gc made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_gc_killed_at_each_step_of_a_rewrite_loses_nothing_and_a_rerun_completes(
    dvc_repo: Path, local_remote: Path
) -> None:
    tmp = local_remote.parent
    remote = tp._local(local_remote)
    story = _story(dvc_repo, remote, tmp)
    packs = local_remote / tp.PACKS
    old = {story.first, story.deltas}

    def names(suffix: str) -> set[str]:
        return {p.name[5 : -len(suffix)] for p in packs.glob(f"pack-*{suffix}")}

    # 1. the new pack is uploaded, its index is not: readers do not see it
    _paced_gc_killed_when(dvc_repo, lambda: bool(names(".pack") - old))
    [new] = names(".pack") - old
    assert names(".idx") == old
    _readable(dvc_repo, story, tmp)
    # 2. the rerun writes the same pack (same members, same bytes), then its index
    _paced_gc_killed_when(dvc_repo, lambda: new in names(".idx"))
    assert names(".idx") == old | {new}  # v1's bases twice: harmless, the first index wins
    _readable(dvc_repo, story, tmp)
    # 3. the rerun copies nothing (the new pack holds it all) and deletes the old index
    _paced_gc_killed_when(dvc_repo, lambda: story.first not in names(".idx"))
    assert story.first in names(".pack")  # an orphan until gc finds it an hour old
    _readable(dvc_repo, story, tmp)
    # the last rerun completes; the orphan goes once it is stale
    stale = time.time() - 2 * 3600
    os.utime(packs / f"pack-{story.first}.pack", (stale, stale))
    res = _gc(dvc_repo, "--force", "--grace", "now")
    assert res["tmp_deleted"] == 1 and res["packs_kept"] == 2
    assert names(".pack") == names(".idx") == {story.deltas, new}
    # v1's tensors (the bases) and the header v1 and v2 share; nothing dead
    assert {e.oid for e in remote.indexes(tmp)[new]} == set(story.v1)
    _readable(dvc_repo, story, tmp)


def _held_at_first_index(repo: Path, barrier: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``git snap ARGS`` (tests/remote/paced_remote.py --barrier) and return once it
    is held right after reading its first pack index; ``barrier / "go"`` lets it go on."""
    barrier.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable, os.fspath(Path(__file__).with_name("paced_remote.py")),
            "--barrier", os.fspath(barrier), "0", *args,
        ],
        cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (barrier / "reached").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            (barrier / "go").touch()
            _, err = proc.communicate(timeout=120)
            raise AssertionError(f"git snap {args[0]} never read a pack index: {err!r}")
        time.sleep(0.02)
    return proc


def test_gc_plans_again_when_a_push_lands_while_it_plans_and_keeps_the_new_deltas_bases(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    """gc --remote in a repository that does not know v1 (old, unreferenced there) would
    drop its pack; a push of v2 -- XOR deltas against v1 -- from another clone lands while
    gc plans (it is held at its first index read, tests/remote/paced_remote.py --barrier).
    gc lists the packs again before deleting anything, plans anew, and keeps v1's pack for
    v2's young deltas: a fresh clone still restores v2."""
    remote = tp._local(local_remote)
    pusher = tp._clone(dvc_repo, tmp_path / "pusher")
    helpers.git("checkout", "-q", "-b", "exp", cwd=pusher)  # a branch dvc_repo never sees
    ckpt = tp._write(pusher / "model.safetensors", SMALL_ONES, big=False)
    tp._save_commit(pusher, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=pusher)
    [first] = remote.indexes(tmp_path)
    old = time.time() - 3 * 86400  # v1's pack is three days old: past a 1-day grace
    for p in local_remote.rglob("*"):
        os.utime(p, (old, old))
    tp._write(ckpt, SMALL_ONES, changed=range(SMALL_ONES), factor=1.00001, big=False)
    tp._save_commit(pusher, "model.safetensors", "v2")
    v2_bytes = ckpt.read_bytes()

    barrier = tmp_path / "barrier"
    gc = ("gc", "--remote", "--all-commits", "--force", "--grace", "1d", "--json")
    proc = _held_at_first_index(dvc_repo, barrier, *gc)
    try:
        helpers.run_snap("push", cwd=pusher)  # while gc is held after its listing
        [deltas] = set(remote.indexes(tmp_path)) - {first}
        assert any(e.base for e in remote.indexes(tmp_path)[deltas])
    finally:
        (barrier / "go").touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    res = json.loads(out)
    assert res["objects_deleted"] == 0 and res["packs_rewritten"] == 0, res
    assert set(remote.indexes(tmp_path)) == {first, deltas}

    clone = tp._clone(pusher, tmp_path / "clone")
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == v2_bytes


def test_a_push_whose_delta_base_a_gc_drops_meanwhile_sends_them_again_whole(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    """A push plans deltas against v1's pack; before it uploads, v1's pack leaves the remote
    (as a gc --remote elsewhere drops it: the push is held after it read the pack's index,
    paced_remote --barrier, and the pack is deleted then). After its upload the push finds
    its deltas' bases gone: it sends those objects again without deltas and deletes the
    pack it wrote. A fresh clone restores v2."""
    remote = tp._local(local_remote)
    ckpt = tp._write(dvc_repo / "model.safetensors", SMALL_ONES, big=False)
    tp._save_commit(dvc_repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=dvc_repo)
    [first] = remote.indexes(tmp_path)
    tp._write(ckpt, SMALL_ONES, changed=range(SMALL_ONES), factor=1.00001, big=False)
    tp._save_commit(dvc_repo, "model.safetensors", "v2")
    v2_bytes = ckpt.read_bytes()
    cache = tp._store(dvc_repo) / "remote-indexes"
    for f in cache.glob("*"):  # so that the push reads v1's index from the remote
        f.unlink()

    barrier = tmp_path / "barrier"
    proc = _held_at_first_index(dvc_repo, barrier, "push", "--json")
    try:
        for suffix in (".idx", ".pack"):  # what gc --remote does to a dead pack
            (local_remote / tp.PACKS / f"pack-{first}{suffix}").unlink()
    finally:
        (barrier / "go").touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    idx = remote.indexes(tmp_path)
    v2 = set(tp._oids(dvc_repo, "model.safetensors"))
    [only] = idx  # the pack of deltas was replaced by one without them
    assert {e.oid for e in idx[only]} >= v2 - remote.loose()
    assert all(e.base is None for e in idx[only])

    clone = tp._clone(dvc_repo, tmp_path / "clone")
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == v2_bytes


def test_gc_verifies_copied_deltas_against_grouped_bases_in_a_kept_pack(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    """A rewritten pack's deltas are decoded before anything is uploaded; their bases sit
    grouped in a pack that stays (each read through its group member)."""
    remote = tp._local(local_remote)
    repo = dvc_repo
    ckpt = tp._write(repo / "model.safetensors", SMALL_ONES, big=False)
    tp._save_commit(repo, "model.safetensors", "v1")
    helpers.run_snap("push", cwd=repo)
    [first] = remote.indexes(tmp_path)
    assert all(e.grouped for e in remote.indexes(tmp_path)[first] if e.raw_size > 10_000)
    tp._write(ckpt, SMALL_ONES, changed=range(SMALL_ONES), factor=1.00001, big=False)
    helpers.run_snap("save", "model.safetensors", cwd=repo)
    tp._write(repo / "other.safetensors", 110, seed=1, big=False)  # packed by save: >= 100
    tp._save_commit(repo, "other.safetensors", "v2 and other")
    helpers.run_snap("push", cwd=repo)
    [second] = set(remote.indexes(tmp_path)) - {first}
    es = remote.indexes(tmp_path)[second]
    assert any(e.grouped and e.base for e in es)  # v2: grouped deltas on v1
    assert any(e.grouped and not e.base for e in es)  # the other one: grouped, no base
    v2_bytes = ckpt.read_bytes()
    (repo / "other.safetensors").unlink()
    (repo / "other.safetensors.snap").unlink()
    tp._keep_head_alone(repo)

    res = _gc(repo, "--force", "--grace", "now")
    assert (res["packs_rewritten"], res["packs_written"]) == (1, 1), res
    after = remote.indexes(tmp_path)
    assert first in after and second not in after
    code, res, _ = tp._snap_json("fsck", "--remote", "--all-commits", cwd=repo, check=False)
    assert code == 0 and res["ok"], res
    clone = tp._clone(repo, tmp_path / "clone")
    helpers.run_snap("pull", cwd=clone)
    assert (clone / "model.safetensors").read_bytes() == v2_bytes
