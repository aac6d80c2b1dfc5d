"""The snapshot journal (issue 15, point 2; DESIGN D19): periodic saves survive.

Real git repos and real ``git snap`` subprocesses: saves at steps 10/20/30
with one commit (at 20) are all listed by ``log --all-saves`` and restorable
byte-exactly; ``gc --keep-last 1`` keeps the newest uncommitted one and the
committed one and collects the rest.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from gitsnap import journal
from gitsnap.commands.gc import gc
from gitsnap.pointer import loads
from tests.helpers import git, make_checkpoint, run_snap

CKPT = "models/model.safetensors"


def _save_step(repo: Path, step: int) -> tuple[str, bytes, set[str]]:
    """Write a checkpoint whose every tensor is new, save it; (snapshot id, bytes, object ids)."""
    data = make_checkpoint(repo / CKPT, seed=step).read_bytes()
    run_snap("save", CKPT, "-m", f"step {step}", "--metric", f"step={step}", cwd=repo)
    ptr = loads((repo / (CKPT + ".snap")).read_bytes())
    return ptr.id, data, ptr.oids()


def _store_oids(repo: Path) -> set[str]:
    root = repo / ".dvc" / "cache" / "gitsnap" / "blake3"
    return {d.name + f.name for d in root.iterdir() if len(d.name) == 2 for f in d.iterdir()}


def _all_saves(repo: Path) -> list[dict[str, Any]]:
    out = run_snap("log", "--all-saves", CKPT, "--json", cwd=repo).stdout
    saves: list[dict[str, Any]] = json.loads(out)
    return saves


def _restore(repo: Path, snapshot_id: str) -> bytes:
    run_snap("checkout", "--snapshot", snapshot_id[:12], CKPT, "--force", cwd=repo)
    return (repo / CKPT).read_bytes()


@pytest.fixture
def steps(dvc_repo: Path) -> dict[int, tuple[str, bytes, set[str]]]:
    """Saves at steps 10, 20, 30; only 20 committed."""
    out = {10: _save_step(dvc_repo, 10), 20: _save_step(dvc_repo, 20)}
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "step 20", cwd=dvc_repo)
    out[30] = _save_step(dvc_repo, 30)
    return out


def test_every_save_is_listed_committed_or_not_and_restores_byte_exactly(
    dvc_repo: Path, steps: dict[int, tuple[str, bytes, set[str]]]
) -> None:
    saves = _all_saves(dvc_repo)
    assert [s["snapshot_id"] for s in saves] == [steps[s][0] for s in (30, 20, 10)]
    assert [s["committed"] for s in saves] == [False, True, False]
    head = git("rev-parse", "HEAD", cwd=dvc_repo).stdout.strip()
    assert saves[1]["commit"] == head
    assert [s["metrics"] for s in saves] == [{"step": 30}, {"step": 20}, {"step": 10}]
    text = run_snap("log", "--all-saves", cwd=dvc_repo).stdout
    assert f"snapshot {steps[10][0][:12]}  {CKPT}  (uncommitted" in text
    assert f"(committed {head[:10]}" in text
    # The plain log still shows history only: the uncommitted step 10 is not there.
    assert steps[10][0][:12] not in run_snap("log", CKPT, cwd=dvc_repo).stdout
    for step in (10, 20, 30):
        assert _restore(dvc_repo, steps[step][0]) == steps[step][1]
        assert loads((dvc_repo / (CKPT + ".snap")).read_bytes()).id == steps[step][0]
    # --to: the save's files elsewhere, the work tree left as it is.
    out = dvc_repo.parent / "elsewhere"
    run_snap("checkout", "--snapshot", steps[10][0][:12], CKPT, "--to", str(out), cwd=dvc_repo)
    assert (out / CKPT).read_bytes() == steps[10][1]  # checkout --to: the repository path below DIR
    assert loads((dvc_repo / (CKPT + ".snap")).read_bytes()).id == steps[30][0]
    bad = run_snap(
        "checkout", "--snapshot", steps[10][0][:12], "HEAD", CKPT, cwd=dvc_repo, check=False
    )
    assert bad.returncode == 2 and "--snapshot takes one checkpoint and no revision" in bad.stderr


def test_gc_keep_last_1_keeps_the_newest_uncommitted_and_the_committed(
    dvc_repo: Path, steps: dict[int, tuple[str, bytes, set[str]]]
) -> None:
    # The work tree points at 20 (committed): 30 lives only in the journal now.
    run_snap("checkout", CKPT, "--force", cwd=dvc_repo)
    git("checkout", "--", CKPT + ".snap", cwd=dvc_repo)
    run_snap("checkout", CKPT, "--force", cwd=dvc_repo)
    assert (dvc_repo / CKPT).read_bytes() == steps[20][1]
    # By default (10 per checkpoint, 14 days) gc keeps every save.
    res = json.loads(run_snap("gc", "--grace", "now", "--json", cwd=dvc_repo).stdout)
    assert res["journal_dropped"] == []
    assert steps[10][2] <= _store_oids(dvc_repo)

    res = json.loads(
        run_snap("gc", "--keep-last", "1", "--grace", "now", "--json", cwd=dvc_repo).stdout
    )
    assert len(res["journal_dropped"]) == 1
    saves = _all_saves(dvc_repo)
    assert [(s["snapshot_id"], s["committed"]) for s in saves] == [
        (steps[30][0], False),
        (steps[20][0], True),
    ]
    only_10 = steps[10][2] - steps[20][2] - steps[30][2]
    assert only_10
    assert not only_10 & _store_oids(dvc_repo)  # 10's unique objects are collected
    assert _restore(dvc_repo, steps[30][0]) == steps[30][1]
    assert _restore(dvc_repo, steps[20][0]) == steps[20][1]
    gone = run_snap("checkout", "--snapshot", steps[10][0][:12], CKPT, cwd=dvc_repo, check=False)
    assert gone.returncode == 3
    assert "holds no save" in gone.stderr
    assert "git snap log --all-saves" in gone.stderr


def test_gc_dry_run_drops_nothing_and_keep_within_keeps_recent_saves(
    dvc_repo: Path, steps: dict[int, tuple[str, bytes, set[str]]]
) -> None:
    res = json.loads(
        run_snap(
            "gc", "--keep-last", "0", "--dry-run", "--grace", "now", "--json", cwd=dvc_repo
        ).stdout
    )
    assert len(res["journal_dropped"]) == 1  # 10; 30 is in the work tree, 20 committed
    assert len(_all_saves(dvc_repo)) == 3
    res = json.loads(
        run_snap("gc", "--keep-within", "1h", "--grace", "now", "--json", cwd=dvc_repo).stdout
    )
    assert res["journal_dropped"] == []
    assert steps[10][2] <= _store_oids(dvc_repo)
    bad = run_snap("gc", "--keep-within", "soon", cwd=dvc_repo, check=False)
    assert bad.returncode == 2
    assert "--keep-within 'soon' is not a duration" in bad.stderr


def test_checkout_force_over_an_uncommitted_save_records_it_first(dvc_repo: Path) -> None:
    """D19: a pointer the journal lacks (an old clone's save) is recorded before it is dropped."""
    _, data, _ = _save_step(dvc_repo, 1)
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "step 1", cwd=dvc_repo)
    lost, lost_data, _ = _save_step(dvc_repo, 2)
    for f in journal.folder(dvc_repo / ".git").iterdir():
        f.unlink()  # as if saved by a gitsnap without the journal
    refused = run_snap("checkout", "HEAD", CKPT, cwd=dvc_repo, check=False)
    assert refused.returncode == 3
    assert journal.entries(dvc_repo / ".git") == []  # refused: nothing dropped, nothing recorded
    out = run_snap("checkout", "HEAD", CKPT, "--force", cwd=dvc_repo)
    assert "kept in the snapshot journal" in out.stdout + out.stderr
    assert (dvc_repo / CKPT).read_bytes() == data
    [entry] = _all_saves(dvc_repo)
    assert (entry["snapshot_id"], entry["reason"], entry["committed"]) == (lost, "checkout", False)
    assert _restore(dvc_repo, lost) == lost_data


def test_journal_is_shared_by_work_trees_and_lock_free(dvc_repo: Path, tmp_path: Path) -> None:
    """Saves from a linked work tree land in the one journal of the clone; entries never clash."""
    _save_step(dvc_repo, 1)
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "one", cwd=dvc_repo)
    other = tmp_path / "other"
    git("worktree", "add", "-q", other, "-b", "other", cwd=dvc_repo)
    _save_step(other, 2)
    assert len(_all_saves(dvc_repo)) == 2
    names = [f.name for f in journal.folder(dvc_repo / ".git").iterdir()]
    assert len(set(names)) == 2
    assert all(n.endswith(".entry") for n in names)
    assert (
        journal.common_dir(Path(git("rev-parse", "--absolute-git-dir", cwd=other).stdout.strip()))
        == (dvc_repo / ".git").resolve()
    )


def test_retain_keeps_committed_then_newest_per_checkpoint() -> None:
    def entry(n: int, path: str, sid: str) -> journal.Entry:
        return journal.Entry(f"{n}-1-{sid[:12]}", path, n * 10**9, "save", sid, Path("unused"))

    a = [entry(5, "a", "a3" * 32), entry(4, "a", "a2" * 32), entry(3, "a", "a1" * 32)]
    b = [entry(2, "b", "b1" * 32)]
    kept, dropped = journal.retain([*a, *b], {("a", "a1" * 32)}, keep_last=1, now_ns=10**12)
    assert [e.snapshot_id[:2] for e in kept] == ["a3", "a1", "b1"]
    assert [e.snapshot_id[:2] for e in dropped] == ["a2"]
    kept, dropped = journal.retain([*a, *b], set(), keep_within=6, now_ns=10 * 10**9)
    assert [e.snapshot_id[:2] for e in kept] == ["a3", "a2"]
    kept, _ = journal.retain([*a, *b], set(), now_ns=10 * 10**9)  # defaults: 10 and 14 days
    assert len(kept) == 4
    # What an index or a work tree holds is kept whatever the policy, and still counted.
    kept, dropped = journal.retain([*a, *b], set(), in_use={("a", "a1" * 32)}, keep_last=1)
    assert [e.snapshot_id[:2] for e in kept] == ["a3", "a1", "b1"]
    assert [e.snapshot_id[:2] for e in dropped] == ["a2"]


def test_all_saves_of_a_path_never_saved_says_so(dvc_repo: Path) -> None:
    proc = run_snap("log", "--all-saves", "nothing.safetensors", cwd=dvc_repo, check=False)
    assert proc.returncode == 3
    assert "the snapshot journal holds no save" in proc.stderr


def _record_many(git_dir: Path, start: int, n: int) -> None:
    for i in range(start, start + n):
        journal.record(git_dir, f"m{i}.safetensors", b"", f"{i:064x}")


def test_concurrent_records_never_clash_and_every_entry_is_whole(dvc_repo: Path) -> None:
    """Writers in several processes at once: no lock, yet every entry lands whole."""
    git_dir = dvc_repo / ".git"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(_record_many, [(git_dir, k * 50, 50) for k in range(4)])
    found = journal.entries(git_dir)
    assert sorted(e.snapshot_id for e in found) == [f"{i:064x}" for i in range(200)]
    assert all(e.raw() == b"" for e in found)
    assert not [f for f in journal.folder(git_dir).iterdir() if not f.name.endswith(".entry")]


def test_a_hostile_journal_is_read_within_bounds(
    dvc_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damaged headers are skipped, a huge entry is never read whole, and only the newest
    MAX_ENTRIES files are listed; gc drops the rest and the damaged ones' objects go."""
    sid, data, _ = _save_step(dvc_repo, 1)
    base = journal.folder(dvc_repo / ".git")
    (base / f"1-1-{'0' * 12}.entry").write_bytes(b"x" * (journal.HEADER_MAX + 10))  # no header
    (base / f"2-1-{'1' * 12}.entry").write_bytes(b'{"path": 1}\n')  # wrong types
    header = json.dumps({"path": CKPT, "reason": "save", "snapshot": "2" * 64}).encode()
    huge = base / f"3-1-{'2' * 12}.entry"
    with huge.open("wb") as f:  # a sparse file past the pointer limit: never read whole
        f.write(header + b"\n")
        f.truncate(journal.MAX_POINTER_BYTES + 4096)
    listed = journal.entries(dvc_repo / ".git")
    assert [e.snapshot_id for e in listed] == [sid, "2" * 64]
    assert listed[1].pointer() is None
    sid_entry = listed[0].id
    saves = run_snap("log", "--all-saves", CKPT, "--json", cwd=dvc_repo, check=False)
    assert saves.returncode == 3  # the damaged entry is a problem, the good one is listed
    assert [s["snapshot_id"] for s in json.loads(saves.stdout)] == [sid]
    assert "damaged" in saves.stderr
    assert _restore(dvc_repo, sid) == data

    monkeypatch.setattr(journal, "MAX_ENTRIES", 2)
    assert [e.snapshot_id for e in journal.entries(dvc_repo / ".git")] == [sid, "2" * 64]
    past = [f"1-1-{'0' * 12}", f"2-1-{'1' * 12}"]
    assert sorted(journal.overflow(dvc_repo / ".git")) == past
    res = gc(grace="now", cwd=dvc_repo)
    assert sorted(res.journal_dropped) == past
    assert sorted(f.name for f in base.iterdir()) == sorted([huge.name, f"{sid_entry}.entry"])
