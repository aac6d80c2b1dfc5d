"""git snap gc (issue 7, points 2 and 5): collect what no live snapshot needs, never more.

Real git histories with branches, tags, a reflog-only commit, a stash, the
index and the work tree; real ``dvc add`` / ``dvc push`` data beside ours;
local-folder and S3 (moto) DVC remotes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from gitsnap import journal
from gitsnap.pointer import loads
from tests import helpers
from tests.helpers import commit_all, dvc, git, make_checkpoint, run_snap

A = "models/a.safetensors"
B = "models/b.safetensors"
OBJECTS = "gitsnap/blake3"


def _store(repo: Path) -> Path:
    return repo / ".dvc" / "cache" / "gitsnap" / "blake3"


def _store_oids(repo: Path) -> set[str]:
    root = _store(repo)
    return (
        {d.name + f.name for d in root.iterdir() if len(d.name) == 2 for f in d.iterdir()}
        if root.exists()
        else set()
    )


def _md5_files(root: Path) -> dict[str, bytes]:
    md5 = root / "files" / "md5"
    return {p.relative_to(md5).as_posix(): p.read_bytes() for p in md5.rglob("*") if p.is_file()}


def _save(repo: Path, path: str, seed: int, *, add: bool = False) -> tuple[set[str], bytes]:
    """Write a distinct checkpoint (every tensor new), save it; (its object ids, its bytes)."""
    ckpt = make_checkpoint(repo / path, seed=seed)
    run_snap("save", path, "-m", f"seed {seed}", cwd=repo)
    if add:
        git("add", "-A", cwd=repo)
    ptr = loads((repo / (path + ".snap")).read_bytes())
    return ptr.oids(), ckpt.read_bytes()


def _gc_json(repo: Path, *args: str, check: bool = True) -> tuple[int, Any, str]:
    proc = run_snap("gc", *args, "--json", cwd=repo, check=check)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.stderr


def _forget_journal(repo: Path) -> None:
    """Empty the snapshot journal, as if the saves were made by a gitsnap without one.

    The tests below are about what git and the grace period keep; the journal's
    retention has its own tests (tests/commands/test_saves.py).
    """
    for entry in journal.folder(repo / ".git").iterdir():
        entry.unlink()


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


@pytest.fixture
def history(dvc_repo: Path) -> dict[str, Any]:
    """Snapshots live in every way gitsnap must honour, and two that are dead.

    live: main (c1, c2), a tag on a deleted branch (c3), a commit only the
    reflog remembers (c4), the stash (v5), the index only (v6), the work tree
    only (A v7, B v10). dead: a deleted, reflog-expired branch (v8) and a
    snapshot saved and then saved over before any commit (v9). Plus DVC's own
    data, one version of it referenced and one not.
    """
    repo = dvc_repo
    (repo / "data.csv").write_text("a,b\n1,2\n")
    dvc("add", "-q", "data.csv", cwd=repo)
    commit_all(repo, "dvc data")
    (repo / "data.csv").write_text("a,b\n3,4\n")
    dvc("add", "-q", "data.csv", cwd=repo)  # a second DVC object nothing committed references
    git("checkout", "-q", "--", "data.csv.dvc", cwd=repo)

    s: dict[str, Any] = {"repo": repo}
    s["v1"] = _save(repo, A, 1)
    s["c1"] = commit_all(repo, "v1")
    git("checkout", "-q", "-b", "rel", cwd=repo)
    s["v3"] = _save(repo, A, 3)
    s["c3"] = commit_all(repo, "v3")
    git("tag", "keep-me", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    git("branch", "-q", "-D", "rel", cwd=repo)
    git("checkout", "-q", "-b", "doomed", cwd=repo)
    s["v8"] = _save(repo, A, 8)
    commit_all(repo, "v8")
    git("checkout", "-q", "main", cwd=repo)
    git("branch", "-q", "-D", "doomed", cwd=repo)
    git("reflog", "expire", "--expire=now", "--all", cwd=repo)
    s["v2"] = _save(repo, A, 2)
    s["c2"] = commit_all(repo, "v2")
    s["v4"] = _save(repo, A, 4)
    s["c4"] = commit_all(repo, "v4")
    git("reset", "-q", "--hard", "HEAD~1", cwd=repo)  # c4 now lives in the reflog only
    s["v5"] = _save(repo, A, 5)
    git("stash", "-q", cwd=repo)
    s["v6"] = _save(repo, B, 6, add=True)  # staged...
    s["v10"] = _save(repo, B, 10)  # ...then saved over in the work tree: v6 is in the index only
    s["v9"] = _save(repo, A, 9)
    s["v7"] = _save(repo, A, 7)  # v9 was never staged or committed: dead
    s["md5"] = _md5_files(repo / ".dvc" / "cache")
    assert len(s["md5"]) >= 2
    live = [s[k][0] for k in ("v1", "v2", "v3", "v4", "v5", "v6", "v7", "v10")]
    s["live"] = set().union(*live)
    s["dead"] = (s["v8"][0] | s["v9"][0]) - s["live"]
    assert s["dead"] and s["dead"] <= _store_oids(repo)
    return s


def test_gc_keeps_every_live_snapshot_and_only_those(
    history: dict[str, Any], tmp_path: Path
) -> None:
    repo = history["repo"]
    before = _store_oids(repo)
    dead_bytes = sum((_store(repo) / o[:2] / o[2:]).stat().st_size for o in history["dead"])

    # The snapshot journal remembers the saves git lost (v8, v9): kept by default.
    code, dry, _ = _gc_json(repo, "--dry-run", "--grace", "now")
    assert code == 0 and dry["objects_deleted"] == 0 and dry["journal_dropped"] == []
    # Without the journal's retention, exactly what git reaches survives.
    nojournal = ("--keep-last", "0")
    code, dry, _ = _gc_json(repo, "--dry-run", "--grace", "now", *nojournal)
    assert code == 0 and dry["dry_run"] is True
    assert len(dry["journal_dropped"]) == 2  # v8 and v9
    assert {o["oid"] for o in dry["deleted"]} == history["dead"]
    assert dry["objects_deleted"] == len(history["dead"]) and dry["bytes_deleted"] == dead_bytes
    assert _store_oids(repo) == before  # a dry run deletes nothing
    text = run_snap("gc", "-n", "--grace", "now", *nojournal, cwd=repo).stdout
    assert f"would delete {len(history['dead'])} objects" in text
    assert all(f"would delete {o}" in text for o in history["dead"])
    assert "would drop 2 uncommitted saves from the snapshot journal" in text

    code, res, _ = _gc_json(repo, "--grace", "now", *nojournal)
    assert (
        code == 0
        and res["objects_deleted"] == len(history["dead"])
        and res["bytes_deleted"] == dead_bytes
    )
    after = _store_oids(repo)
    assert after == before - history["dead"]
    assert history["live"] <= after
    assert _md5_files(repo / ".dvc" / "cache") == history["md5"]  # DVC's objects untouched
    assert _gc_json(repo, "--grace", "now")[1]["objects_deleted"] == 0  # nothing left to collect

    # Every live snapshot still restores byte for byte.
    (repo / A).unlink()
    run_snap("checkout", A, cwd=repo)
    assert (repo / A).read_bytes() == history["v7"][1]  # the work tree's pointer
    for rev, key in (("c1", "v1"), ("c2", "v2"), ("c3", "v3"), ("c4", "v4")):
        run_snap("checkout", history[rev], A, "--to", tmp_path / rev, cwd=repo)
        assert (tmp_path / rev / A).read_bytes() == history[key][1], rev
    run_snap("checkout", "stash@{0}", A, "--to", tmp_path / "stash", cwd=repo)
    assert (tmp_path / "stash" / A).read_bytes() == history["v5"][1]
    (repo / B).unlink()
    run_snap("checkout", B, cwd=repo)
    assert (repo / B).read_bytes() == history["v10"][1]
    git("checkout", "--", B + ".snap", cwd=repo)  # the index's pointer back into the work tree
    run_snap("checkout", "--force", B, cwd=repo)
    assert (repo / B).read_bytes() == history["v6"][1]
    # and DVC can still restore its own data
    (repo / "data.csv").unlink()
    dvc("checkout", "-q", "data.csv", cwd=repo)
    assert (repo / "data.csv").read_text() == "a,b\n1,2\n"


def test_recent_objects_survive_the_grace_period(dvc_repo: Path) -> None:
    repo = dvc_repo
    _save(repo, A, 1)
    commit_all(repo, "v1")
    v2, _ = _save(repo, A, 2)
    _save(repo, A, 3)  # v2 is now referenced by nothing, but it is fresh
    _forget_journal(repo)
    only_v2 = sorted(v2 - loads((repo / (A + ".snap")).read_bytes()).oids())
    old = only_v2[0]
    _age(_store(repo) / old[:2] / old[2:], 2 * 3600)

    code, res, _ = _gc_json(repo)
    assert code == 0 and res["grace_seconds"] == 3600
    assert [o["oid"] for o in res["deleted"]] == [old]  # only the one older than an hour
    assert res["objects_recent"] == len(only_v2) - 1
    assert "younger than 1h (--grace now drops them)" in run_snap("gc", "-n", cwd=repo).stdout
    res = _gc_json(repo, "--grace", "30m")[1]
    assert res["objects_deleted"] == 0 and res["grace_seconds"] == 1800
    assert _gc_json(repo, "--grace", "now")[1]["objects_deleted"] == len(only_v2) - 1
    assert not (set(only_v2) & _store_oids(repo))
    proc = run_snap("gc", "--grace", "soon", cwd=repo, check=False)
    assert proc.returncode == 2 and "--grace 'soon' is not a duration" in proc.stderr


def test_objects_a_new_snapshot_reuses_are_fresh_again(dvc_repo: Path) -> None:
    # A save that finds its objects already stored writes nothing; until its pointer
    # is written (and committed) nothing references them, so gc must see them as
    # young, or a concurrent gc would delete what the new snapshot relies on.
    repo = dvc_repo
    v1, weights = _save(repo, A, 1)
    v2, _ = _save(repo, A, 2)  # v1 saved over before any commit: unreferenced
    _forget_journal(repo)
    for oid in v1:
        _age(_store(repo) / oid[:2] / oid[2:], 2 * 3600)
    (repo / B).write_bytes(weights)  # the same weights under another name...
    started = time.time()
    saved = json.loads(run_snap("save", B, "--json", cwd=repo).stdout)
    assert saved[0]["objects_written"] == 0  # ...re-use every object
    for oid in v1:
        assert (_store(repo) / oid[:2] / oid[2:]).stat().st_mtime >= started - 1
    (repo / (B + ".snap")).unlink()  # the moment before its pointer exists...
    _forget_journal(repo)  # ...and its journal entry, written after it
    res = _gc_json(repo)[1]
    assert not {o["oid"] for o in res["deleted"]} & v1
    assert v1 <= _store_oids(repo)
    assert res["objects_recent"] == len(v1 - v2)
    # without a grace period they are garbage, as before
    dry = _gc_json(repo, "--grace", "now", "--dry-run")[1]
    assert {o["oid"] for o in dry["deleted"]} == v1 - v2


def test_stale_temp_files_are_removed(dvc_repo: Path) -> None:
    tmp = _store(dvc_repo) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    stale, fresh = tmp / "obj-stale", tmp / "obj-fresh"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y" * 10)
    _age(stale, 3 * 3600)
    res = _gc_json(dvc_repo, "--dry-run")[1]
    assert (res["tmp_deleted"], res["tmp_bytes"]) == (1, 100) and stale.exists()
    res = _gc_json(dvc_repo)[1]
    assert res["tmp_deleted"] == 1 and not stale.exists() and fresh.exists()


def test_unreadable_pointer_keeps_every_id_it_names(dvc_repo: Path) -> None:
    repo = dvc_repo
    v1, _ = _save(repo, A, 1)
    commit_all(repo, "v1")
    v2, _ = _save(repo, A, 2)
    snap = repo / (A + ".snap")
    snap.write_text(
        snap.read_text().replace("gitsnap: 1", "gitsnap: 99", 1)
    )  # from a future gitsnap
    commit_all(repo, "future pointer")
    code, res, _ = _gc_json(repo, "--grace", "now")
    assert code == 0 and res["objects_deleted"] == 0 and (v1 | v2) <= _store_oids(repo)
    assert len(res["unreadable_pointers"]) == 1
    assert "warning: cannot parse pointer" in run_snap("gc", "--grace", "now", cwd=repo).stdout


def test_cache_outside_the_project_needs_force_or_projects(dvc_repo: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared-cache"
    other = helpers.init_dvc_repo(helpers.init_git_repo(tmp_path / "other"))
    for repo in (dvc_repo, other):
        dvc("cache", "dir", os.fspath(shared), cwd=repo)
        commit_all(repo, "shared cache")
    mine, _ = _save(dvc_repo, A, 1)
    commit_all(dvc_repo, "mine")
    theirs, _ = _save(other, A, 2)
    commit_all(other, "theirs")

    proc = run_snap("gc", "--grace", "now", cwd=dvc_repo, check=False)
    assert proc.returncode == 3 and "is outside this project and may be shared" in proc.stderr
    assert "hint: name the other projects (git snap gc --projects DIR...)" in proc.stderr
    res = _gc_json(dvc_repo, "--grace", "now", "--projects", os.fspath(other))[1]
    assert res["objects_deleted"] == 0
    on_disk = {
        d.name + f.name
        for d in (shared / OBJECTS).iterdir()
        if len(d.name) == 2
        for f in d.iterdir()
    }
    assert mine | theirs <= on_disk
    res = _gc_json(dvc_repo, "--grace", "now", "--force")[
        1
    ]  # "only this project uses it": theirs go
    assert {o["oid"] for o in res["deleted"]} == theirs - mine


# ---------------------------------------------------------------- on the DVC remote


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def remote_keys(request: pytest.FixtureRequest, dvc_repo: Path) -> Any:
    """A function listing every file of the default remote, relative to its root."""
    if request.param == "local":
        root = request.getfixturevalue("local_remote")
        return lambda: sorted(
            p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
        )
    url = request.getfixturevalue("s3_remote")
    endpoint = request.getfixturevalue("s3_server")
    return lambda: helpers.list_s3_keys(endpoint, url)


def _remote_oids(keys: list[str]) -> set[str]:
    out = set()
    for key in keys:
        parts = key.split("/")
        if key.startswith(OBJECTS + "/") and len(parts) == 4 and len(parts[2]) == 2:
            out.add(parts[2] + parts[3])
    return out


def test_remote_gc_needs_a_scope_and_force(dvc_repo: Path, local_remote: Path) -> None:
    proc = run_snap("gc", "--remote", cwd=dvc_repo, check=False)
    assert proc.returncode == 2
    assert "error: gc --remote needs a scope" in proc.stderr
    assert "hint: git snap gc --remote --all-commits --dry-run shows what would go" in proc.stderr
    proc = run_snap("gc", "--remote", "--all-commits", cwd=dvc_repo, check=False)
    assert proc.returncode == 2 and "needs --force" in proc.stderr
    proc = run_snap(
        "gc", "-r", "storage", "--force", cwd=dvc_repo, check=False
    )  # -r implies --remote
    assert proc.returncode == 2 and "needs a scope" in proc.stderr
    assert run_snap("gc", "--remote", "--all-commits", "--dry-run", cwd=dvc_repo).returncode == 0


def test_remote_gc_deletes_only_dead_objects_and_never_dvcs(
    dvc_repo: Path, remote_keys: Any, tmp_path: Path
) -> None:
    repo = dvc_repo
    (repo / "data.csv").write_text("x\n1\n")
    dvc("add", "-q", "data.csv", cwd=repo)
    v1, v1_bytes = _save(repo, A, 1)
    commit_all(repo, "v1")
    git("checkout", "-q", "-b", "doomed", cwd=repo)
    v2, _ = _save(repo, A, 2)
    commit_all(repo, "v2")
    run_snap("push", "--all", cwd=repo)
    dvc("push", "-q", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    run_snap("checkout", cwd=repo)
    git("branch", "-q", "-D", "doomed", cwd=repo)
    git("reflog", "expire", "--expire=now", "--all", cwd=repo)
    dvc_keys = [k for k in remote_keys() if k.startswith("files/md5/")]
    assert dvc_keys and (v1 | v2) <= _remote_oids(remote_keys())
    dead = v2 - v1
    # The journal keeps v2 (saved here), and remote gc keeps what it keeps: trim it first.
    assert _gc_json(repo, "--keep-last", "0")[1]["journal_dropped"]

    code, res, _ = _gc_json(repo, "--remote", "--all-commits", "--force")  # default grace: 14 days
    assert code == 0 and res["objects_deleted"] == 0 and res["objects_recent"] == len(dead)
    assert res["grace_seconds"] == 14 * 86400

    code, dry, _ = _gc_json(repo, "--remote", "--all-commits", "--dry-run", "--grace", "now")
    assert (
        {o["oid"] for o in dry["deleted"]} == dead
        and dry["target"] == "remote"
        and dry["remote"] == "storage"
    )
    assert dead <= _remote_oids(remote_keys())
    code, res, _ = _gc_json(repo, "--remote", "--all-commits", "--force", "--grace", "now")
    assert code == 0 and res["objects_deleted"] == len(dead)
    keys = remote_keys()
    assert _remote_oids(keys) == v1 | (v2 - dead)
    assert [k for k in keys if k.startswith("files/md5/")] == dvc_keys  # DVC's objects untouched

    clone = tmp_path / "clone"
    git("clone", "-q", repo, clone)
    run_snap("pull", cwd=clone)
    assert (clone / A).read_bytes() == v1_bytes
    dvc("pull", "-q", cwd=clone)
    assert (clone / "data.csv").read_text() == "x\n1\n"


def test_remote_gc_removes_stale_temp_uploads(dvc_repo: Path, local_remote: Path) -> None:
    tmp = local_remote / OBJECTS / "tmp"
    tmp.mkdir(parents=True)
    (tmp / "old").write_bytes(b"partial")
    (tmp / "new").write_bytes(b"partial")
    _age(tmp / "old", 2 * 3600)
    res = _gc_json(dvc_repo, "--remote", "--all-commits", "--force")[1]
    assert res["tmp_deleted"] == 1 and not (tmp / "old").exists() and (tmp / "new").exists()


def test_remote_gc_refuses_while_git_remotes_have_unfetched_commits(
    dvc_repo: Path, local_remote: Path, bare_origin: Path, tmp_path: Path
) -> None:
    repo = dvc_repo
    _save(repo, A, 1)
    commit_all(repo, "v1")
    run_snap("push", cwd=repo)
    git("push", "-q", "origin", "main", cwd=repo)
    colleague = tmp_path / "colleague"
    git("clone", "-q", bare_origin, colleague)
    git("checkout", "-q", "-b", "experiment", cwd=colleague)
    theirs, _ = _save(colleague, A, 2)
    commit_all(colleague, "their experiment")
    run_snap("push", cwd=colleague)
    git("push", "-q", "origin", "experiment", cwd=colleague)

    proc = run_snap(
        "gc", "--remote", "--all-commits", "--force", "--grace", "now", cwd=repo, check=False
    )
    assert proc.returncode == 3
    assert "lacks commits that git remotes advertise (origin refs/heads/experiment)" in proc.stderr
    assert "hint: git fetch --all --tags" in proc.stderr
    git("fetch", "-q", "--all", cwd=repo)
    res = _gc_json(repo, "--remote", "--all-commits", "--force", "--grace", "now")[1]
    assert res["objects_deleted"] == 0  # their snapshot is live: origin has it
    assert theirs <= {
        d.name + f.name
        for d in (local_remote / OBJECTS).iterdir()
        if len(d.name) == 2
        for f in d.iterdir()
    }


def test_api_gc_returns_a_frozen_result_and_prints_nothing(
    dvc_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    from gitsnap import api

    _save(dvc_repo, A, 1)
    _save(dvc_repo, A, 2)
    capsys.readouterr()
    res = api.gc(dry_run=True, grace="now", keep_last=0, cwd=dvc_repo)
    assert res.objects_deleted > 0 and res.dry_run and len(res.journal_dropped) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.objects_deleted = 0  # type: ignore[misc]
    assert capsys.readouterr() == ("", "")


def test_side_branch_merged_away_stays_live(dvc_repo: Path) -> None:
    """A pointer change only a merged side branch holds (merge -s ours) is reachable: kept."""
    repo = dvc_repo
    _save(repo, A, 1)
    commit_all(repo, "v1")
    git("checkout", "-q", "-b", "side", cwd=repo)
    side, side_bytes = _save(repo, A, 2)
    c_side = commit_all(repo, "side v2")
    git("checkout", "-q", "main", cwd=repo)
    git("merge", "-q", "-s", "ours", "-m", "merge side, keep ours", "side", cwd=repo)
    git("branch", "-q", "-D", "side", cwd=repo)
    git("reflog", "expire", "--expire=now", "--all", cwd=repo)
    run_snap("checkout", "--force", cwd=repo)
    res = _gc_json(repo, "--grace", "now")[1]
    assert res["objects_deleted"] == 0 and side <= _store_oids(repo)
    run_snap("checkout", c_side, cwd=repo)
    assert (repo / A).read_bytes() == side_bytes
