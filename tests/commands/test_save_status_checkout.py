"""Core workflow through the real CLI and real git/dvc: save, status, log, show, checkout."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gitsnap import api
from gitsnap.pointer import loads
from gitsnap.workspace import Workspace
from tests import helpers
from tests.helpers import MakeCheckpoint, RunSnap, git


def store_bytes(repo: Path) -> int:
    root = repo / ".dvc" / "cache" / "gitsnap" / "blake3"
    return sum(p.stat().st_size for p in root.glob("??/*"))


def test_issue_walkthrough(
    git_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap, tmp_path: Path
) -> None:
    git("commit", "-q", "--allow-empty", "-m", "root")
    run_snap("init")
    assert (git_repo / ".dvc").is_dir()
    ckpt = make_checkpoint(git_repo / "models" / "model.safetensors", seed=0)
    baseline = ckpt.read_bytes()
    (git_repo / "eval.json").write_text(json.dumps({"acc": 0.9, "loss": 0.4}))
    run_snap(
        "save",
        "models/model.safetensors",
        "-m",
        "baseline",
        "--metrics",
        "eval.json",
        "-M",
        "lr=3e-4",
    )
    git("add", "models/model.safetensors.snap", ".gitignore", ".dvc", ".dvcignore")
    git("commit", "-q", "-m", "baseline model")
    assert "models/model.safetensors" not in git("ls-files").stdout.split()

    make_checkpoint(ckpt, seed=0, modify=("head",))
    assert "modified: models/model.safetensors" in run_snap("status").stdout
    run_snap("save", "models/model.safetensors", "-m", "new head")
    git("commit", "-q", "-am", "new head")
    assert run_snap("status").stdout.startswith("clean")
    status = json.loads(run_snap("status", "--json").stdout)
    assert status["clean"] is True

    log = json.loads(run_snap("log", "models/model.safetensors", "--json").stdout)
    assert [e["message"] for e in log] == ["new head", "baseline"]
    assert log[1]["metrics"] == {"acc": 0.9, "loss": 0.4, "lr": 0.0003}
    head = git("rev-parse", "HEAD").stdout.strip()
    assert log[0]["commit"] == head
    assert log[0]["parent"] == log[1]["snapshot_id"]  # lineage
    text_log = run_snap("log", "models/model.safetensors").stdout
    assert text_log.index("new head") < text_log.index("baseline")

    shown = json.loads(run_snap("show", "HEAD~1:models/model.safetensors", "--json").stdout)
    assert shown["pointer"]["message"] == "baseline"
    names = [t["name"] for t in shown["pointer"]["tensors"]]
    assert "head.weight" in names and "embed.weight" in names
    head_w = next(t for t in shown["pointer"]["tensors"] if t["name"] == "head.weight")
    assert set(head_w["stats"]) >= {"mean", "std", "min", "max", "l2", "nonfinite"}

    run_snap("checkout", "HEAD~1")
    assert ckpt.read_bytes() == baseline
    assert run_snap("status").stdout.startswith("clean")

    export = tmp_path / "export"
    run_snap("checkout", "HEAD", "models/model.safetensors", "--to", str(export) + "/")
    assert ckpt.read_bytes() == baseline  # the work tree was not touched
    exported = (export / "models" / "model.safetensors").read_bytes()
    assert exported != baseline
    run_snap("checkout", "HEAD")
    assert ckpt.read_bytes() == exported


def test_init_in_an_existing_dvc_repo(dvc_repo: Path) -> None:
    config_before = (dvc_repo / ".dvc" / "config").read_text()
    result = api.init()
    assert result.dvc_initialized is False
    assert (dvc_repo / ".dvc" / "config").read_text() == config_before
    assert result.to_commit == [".gitattributes"]  # the pointers' diff driver
    assert api.init().to_commit == []  # nothing new the second time


def test_init_names_every_file_to_commit(git_repo: Path, run_snap: RunSnap, tmp_path: Path) -> None:
    (git_repo / "src").mkdir()
    out = run_snap("init", "--remote", str(tmp_path / "remote"), cwd=git_repo / "src").stdout
    [line] = [ln for ln in out.splitlines() if ln.startswith("next: ")]
    named = ["../.dvc", "../.dvcignore", "../.gitattributes"]
    assert line == f"next: git add {' '.join(named)} && git commit -m 'set up gitsnap'"
    # Every file init wrote that git would commit lies under a path the line names.
    status = git("status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    written = sorted(entry[3:] for entry in status)
    assert written == [".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitattributes"]
    assert all(any(w == n[3:] or w.startswith(n[3:] + "/") for n in named) for w in written)


def test_only_changed_tensors_are_stored(dvc_repo: Path, make_checkpoint: MakeCheckpoint) -> None:
    ckpt = make_checkpoint(dvc_repo / "model.safetensors", seed=0, hidden=64)
    [first] = api.save(["model.safetensors"])
    assert store_bytes(dvc_repo) == first.bytes_written == ckpt.stat().st_size
    v1 = loads((dvc_repo / "model.safetensors.snap").read_bytes())

    make_checkpoint(ckpt, seed=0, hidden=64, modify=("head", "norm"))
    [second] = api.save(["model.safetensors"])
    v2 = loads((dvc_repo / "model.safetensors.snap").read_bytes())
    old = {t.name: t.oid for t in v1.tensors}
    changed = [t for t in v2.tensors if old[t.name] != t.oid]
    assert {t.name for t in changed} == {"head.weight", "head.bias", "norm.weight", "norm.bias"}
    # Same names, shapes and offsets: the header is the same object too.
    header_growth = v2.blobs[0].size if v2.blobs[0].oid != v1.blobs[0].oid else 0
    expected_growth = sum(t.size for t in changed) + header_growth
    assert second.bytes_written == expected_growth
    assert store_bytes(dvc_repo) == first.bytes_written + expected_growth
    assert v2.parent == v1.id


def test_saving_twice_keeps_identical_bytes(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_checkpoint(dvc_repo / "m.safetensors", seed=3)
    api.save(["m.safetensors"], message="x", metrics=["acc=0.5"])
    first = (dvc_repo / "m.safetensors.snap").read_bytes()
    [again] = api.save(["m.safetensors"], message="x", metrics=["acc=0.5"])
    assert again.changed is False and again.bytes_written == 0
    assert (dvc_repo / "m.safetensors.snap").read_bytes() == first

    # Two machines saving the same checkpoint at the same SOURCE_DATE_EPOCH agree byte for byte.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    pointers = []
    for name in ("a", "b"):
        repo = helpers.init_dvc_repo(helpers.init_git_repo(tmp_path / name))
        monkeypatch.chdir(repo)
        make_checkpoint(repo / "m.safetensors", seed=3)
        api.save(["m.safetensors"], message="x")
        pointers.append((repo / "m.safetensors.snap").read_bytes())
    assert pointers[0] == pointers[1]
    assert b"created: '2023-11-14T22:13:20Z'" in pointers[0]


def test_objects_are_read_only_and_no_temp_files_remain(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint
) -> None:
    make_checkpoint(dvc_repo / "m.safetensors")
    api.save(["m.safetensors"])
    root = dvc_repo / ".dvc" / "cache" / "gitsnap" / "blake3"
    objects = list(root.glob("??/*"))
    assert objects
    for obj in objects:
        assert stat.S_IMODE(obj.stat().st_mode) & 0o222 == 0
    assert list((root / "tmp").iterdir()) == []
    assert not (dvc_repo / ".dvc" / "cache" / "files").exists()  # nothing under DVC's own prefix


def test_parallel_and_serial_hashing_agree(dvc_repo: Path, make_checkpoint: MakeCheckpoint) -> None:
    from gitsnap import snapshot

    ckpt = make_checkpoint(dvc_repo / "m.safetensors", hidden=64, layers=3)
    serial = snapshot.ingest(ckpt, None, workers=1)
    parallel = snapshot.ingest(ckpt, None, workers=4)
    assert serial.id == parallel.id
    assert [(t.name, t.oid, t.stats) for t in serial.tensors] == [
        (t.name, t.oid, t.stats) for t in parallel.tensors
    ]


def test_big_segments_stream_and_dedup(dvc_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments above SMALL take the streaming path (write-while-hashing and hash-then-copy)."""
    import numpy as np

    from gitsnap import snapshot

    monkeypatch.setattr(snapshot, "SMALL", 4096)
    monkeypatch.setattr(snapshot, "CHUNK", 1000 * 4)
    rng = np.random.default_rng(0)
    tensors = {
        "big": rng.standard_normal(50_000).astype(np.float32),
        "other": rng.standard_normal(3000).astype(np.float32),
    }
    helpers.write_safetensors(dvc_repo / "m.safetensors", tensors)
    [first] = api.save(["m.safetensors"])
    assert first.bytes_written == (dvc_repo / "m.safetensors").stat().st_size
    tensors["other"] = tensors["other"] + 1
    helpers.write_safetensors(dvc_repo / "m.safetensors", tensors)
    [second] = api.save(["m.safetensors"])
    assert second.bytes_written == 3000 * 4  # header unchanged, "big" unchanged
    ptr = loads((dvc_repo / "m.safetensors.snap").read_bytes())
    big = next(t for t in ptr.tensors if t.name == "big")
    assert big.stats["count"] == 50_000
    assert big.stats["mean"] == pytest.approx(
        float(tensors["big"].astype(np.float64).mean()), rel=1e-5, abs=1e-6
    )
    want = (dvc_repo / "m.safetensors").read_bytes()
    (dvc_repo / "m.safetensors").unlink()
    api.checkout()
    assert (dvc_repo / "m.safetensors").read_bytes() == want


def test_status_reports_modified_absent_and_missing_objects(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    for name in ("a", "b", "c"):
        make_checkpoint(dvc_repo / f"{name}.safetensors", seed=ord(name))
    api.save(["a.safetensors", "b.safetensors", "c.safetensors"])
    make_checkpoint(dvc_repo / "a.safetensors", seed=99)
    (dvc_repo / "b.safetensors").unlink()
    victim = loads((dvc_repo / "c.safetensors.snap").read_bytes()).tensors[0]
    obj = dvc_repo / ".dvc" / "cache" / "gitsnap" / "blake3" / victim.oid[:2] / victim.oid[2:]
    obj.unlink()

    result = {e.path: e for e in api.status().entries}
    assert result["a.safetensors"].state == "modified"
    assert result["b.safetensors"].state == "absent"
    assert result["c.safetensors"].state == "clean"
    assert result["c.safetensors"].missing_objects == 1
    out = run_snap("status").stdout
    assert "modified: a.safetensors" in out
    assert "absent:   b.safetensors" in out
    assert "c.safetensors (1 of" in out and "git snap pull" in out


def test_status_tells_another_stored_snapshot_from_unsaved_changes(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    ckpt = make_checkpoint(dvc_repo / "m.safetensors", seed=1)
    api.save(["m.safetensors"])
    first = (dvc_repo / "m.safetensors.snap").read_bytes()
    make_checkpoint(ckpt, seed=2)
    (second,) = api.save(["m.safetensors"])
    # The pointer goes back (git checkout REV -- PATH.snap, reset, stash): the file is still
    # the second snapshot, every object of it stored.
    (dvc_repo / "m.safetensors.snap").write_bytes(first)
    (entry,) = api.status().entries
    assert (entry.state, entry.working_id) == ("outdated", second.snapshot_id)
    out = run_snap("status").stdout
    assert "outdated: m.safetensors" in out and "git snap checkout" in out
    assert "git snap save" not in out
    assert '"state": "outdated"' in run_snap("status", "--json").stdout
    make_checkpoint(ckpt, seed=3)  # trained on: bytes the store lacks
    (entry,) = api.status().entries
    assert entry.state == "modified" and entry.working_id not in (None, second.snapshot_id)
    assert "git snap save" in run_snap("status").stdout


def test_clean_status_trusts_the_stat_cache(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint
) -> None:
    ckpt = make_checkpoint(dvc_repo / "m.safetensors")
    old = ckpt.stat().st_mtime_ns - 10**9
    os.utime(ckpt, ns=(old, old))
    api.save(["m.safetensors"])
    assert api.status().clean
    # Same size, same mtime, same inode, different bytes: a stat-cache hit means no re-hash.
    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 0xFF
    with open(ckpt, "r+b") as f:
        f.write(data)
    os.utime(ckpt, ns=(old, old))
    assert api.status().clean, "a clean-looking file must not be re-hashed"
    os.utime(ckpt, None)  # mtime moves: now it is looked at
    assert api.status().entries[0].state == "modified"


def test_checkout_refuses_unsaved_changes_unless_forced(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    ckpt = make_checkpoint(dvc_repo / "m.safetensors", seed=0)
    run_snap("save", "m.safetensors")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    make_checkpoint(ckpt, seed=5)
    unsaved = ckpt.read_bytes()
    proc = run_snap("checkout", "HEAD", check=False)
    assert proc.returncode == 3
    assert "not saved" in proc.stderr and "hint: git snap save m.safetensors" in proc.stderr
    assert ckpt.read_bytes() == unsaved
    run_snap("checkout", "--force", "HEAD")
    assert ckpt.read_bytes() != unsaved
    assert api.status().clean


def test_corrupt_object_is_reported_and_workspace_untouched(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    ckpt = make_checkpoint(dvc_repo / "m.safetensors", seed=0)
    run_snap("save", "m.safetensors")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    make_checkpoint(ckpt, seed=0, modify=("head",))
    run_snap("save", "m.safetensors")
    git("commit", "-q", "-am", "v2")
    v1 = loads(git("show", "HEAD~1:m.safetensors.snap").stdout)
    head = next(t for t in v1.tensors if t.name == "head.weight")
    obj = dvc_repo / ".dvc" / "cache" / "gitsnap" / "blake3" / head.oid[:2] / head.oid[2:]
    obj.chmod(0o644)
    raw = bytearray(obj.read_bytes())
    raw[0] ^= 0x01
    obj.write_bytes(raw)
    before = ckpt.read_bytes()
    proc = run_snap("checkout", "HEAD~1", check=False)
    assert proc.returncode == 3
    assert "'head.weight'" in proc.stderr and "corrupt" in proc.stderr
    assert "hint:" in proc.stderr
    assert ckpt.read_bytes() == before
    assert not [p for p in dvc_repo.iterdir() if p.name.endswith(".gitsnap-tmp")]


@pytest.mark.parametrize("damage", ["truncated", "extended", "emptied"])
def test_object_of_the_wrong_length_is_corrupt_and_workspace_untouched(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap, damage: str
) -> None:
    # restore copies exactly the recorded size into place: the stored file's length
    # must be checked too, not only the hash of the bytes that were copied
    ckpt = make_checkpoint(dvc_repo / "m.safetensors", seed=0)
    run_snap("save", "m.safetensors")
    ptr = loads((dvc_repo / "m.safetensors.snap").read_bytes())
    head = next(t for t in ptr.tensors if t.name == "head.weight")
    obj = dvc_repo / ".dvc" / "cache" / "gitsnap" / "blake3" / head.oid[:2] / head.oid[2:]
    obj.chmod(0o644)
    raw = obj.read_bytes()
    obj.write_bytes({"truncated": raw[:-4], "extended": raw + b"\0\0\0\0", "emptied": b""}[damage])
    ckpt.unlink()
    proc = run_snap("checkout", check=False)
    assert proc.returncode == 3
    assert "'head.weight'" in proc.stderr and "is corrupt" in proc.stderr
    assert "hint:" in proc.stderr
    assert not ckpt.exists()
    assert not [p for p in dvc_repo.iterdir() if p.name.endswith(".gitsnap-tmp")]


def test_restore_writes_a_shared_object_at_every_offset(dvc_repo: Path, run_snap: RunSnap) -> None:
    import numpy as np

    # identical tensors (tied copies, zero-initialised layers) are one object
    # restored at several offsets, alongside an empty tensor (a zero-byte object)
    same = np.arange(3000, dtype=np.float32)
    tensors = {
        "a": same,
        "b": np.ones(17, dtype=np.float32),
        "c": same.copy(),
        "empty": np.zeros(0, dtype=np.float32),
        "d": same.copy(),
    }
    ckpt = helpers.write_safetensors(dvc_repo / "m.safetensors", tensors)
    original = ckpt.read_bytes()
    run_snap("save", "m.safetensors")
    ptr = loads((dvc_repo / "m.safetensors.snap").read_bytes())
    assert len({t.oid for t in ptr.tensors if t.name in ("a", "c", "d")}) == 1
    ckpt.unlink()
    run_snap("checkout")
    assert ckpt.read_bytes() == original


def test_missing_object_fails_checkout_cleanly(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    ckpt = make_checkpoint(dvc_repo / "m.safetensors")
    run_snap("save", "m.safetensors")
    ptr = loads((dvc_repo / "m.safetensors.snap").read_bytes())
    (
        dvc_repo
        / ".dvc"
        / "cache"
        / "gitsnap"
        / "blake3"
        / ptr.tensors[0].oid[:2]
        / ptr.tensors[0].oid[2:]
    ).unlink()
    ckpt.unlink()
    proc = run_snap("checkout", check=False)
    assert proc.returncode == 3
    assert "missing from the local store" in proc.stderr and ptr.tensors[0].name in proc.stderr
    assert "hint:" in proc.stderr
    assert not ckpt.exists()


def test_log_shows_uncommitted_snapshot_first(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint
) -> None:
    ckpt = make_checkpoint(dvc_repo / "m.safetensors", seed=0)
    api.save(["m.safetensors"], message="one")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    make_checkpoint(ckpt, seed=1)
    api.save(["m.safetensors"], message="two")
    entries = api.log("m.safetensors")
    assert [(e.message, e.commit is None) for e in entries] == [("two", True), ("one", False)]


def test_workspace_paths_from_a_subdirectory(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_checkpoint(dvc_repo / "models" / "m.safetensors")
    monkeypatch.chdir(dvc_repo / "models")
    [res] = api.save(["m.safetensors"])
    assert res.path == "m.safetensors"
    assert (dvc_repo / "models" / "m.safetensors.snap").exists()
    assert "/models/m.safetensors" in (dvc_repo / ".gitignore").read_text().splitlines()
    assert Workspace.discover().relpath("m.safetensors.snap") == "models/m.safetensors"
