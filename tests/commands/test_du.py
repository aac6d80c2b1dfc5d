"""git snap du (issue 7, point 3): logical size, bytes stored, dedup ratio, per model and total."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gitsnap.pointer import Pointer, loads
from tests.helpers import git, make_checkpoint, run_snap

MODEL = "models/model.safetensors"
OTHER = "other/copy.safetensors"


def _save_commit(repo: Path, path: str, message: str, **kwargs: Any) -> Pointer:
    make_checkpoint(repo / path, **kwargs)
    run_snap("save", path, cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return loads((repo / (path + ".snap")).read_bytes())


def _sizes(*ptrs: Pointer) -> dict[str, int]:
    return {e.oid: e.size for p in ptrs for e in p.segments()}


def test_du_per_model_and_total(dvc_repo: Path) -> None:
    repo = dvc_repo
    (repo / ".gitsnap.yaml").write_text("models:\n  classifier: models/model.safetensors\n")
    v1 = _save_commit(repo, MODEL, "v1", seed=0)
    v2 = _save_commit(repo, MODEL, "v2", seed=0, modify=("head",))  # a head-only fine-tune
    v3 = _save_commit(repo, MODEL, "v3", seed=0, modify=("head",), modify_seed=7)
    copy = _save_commit(repo, OTHER, "copy", seed=0)  # another checkpoint, bytes identical to v1
    make_checkpoint(repo / MODEL, seed=42)
    run_snap("save", MODEL, cwd=repo)  # saved over before any commit:
    garbage = _sizes(loads((repo / (MODEL + ".snap")).read_bytes()))
    make_checkpoint(repo / MODEL, seed=0, modify=("head",), modify_seed=7)
    run_snap("save", MODEL, cwd=repo)  # back at v3; seed 42's objects are now unreferenced
    garbage = {o: n for o, n in garbage.items() if o not in _sizes(v1, v2, v3)}
    assert garbage
    # The snapshot journal keeps seed 42 live until its retention drops it (the objects,
    # younger than gc's grace period, stay in the store):
    assert json.loads(run_snap("du", "--json", cwd=repo).stdout)["models"][0]["snapshots"] == 4
    assert json.loads(run_snap("gc", "--keep-last", "0", "--json", cwd=repo).stdout)[
        "journal_dropped"
    ]

    res = json.loads(run_snap("du", "--json", cwd=repo).stdout)
    rows = {r["path"]: r for r in res["models"]}
    assert set(rows) == {MODEL, OTHER}
    clf = rows[MODEL]
    stored = sum(_sizes(v1, v2, v3).values())
    logical = v1.size + v2.size + v3.size
    assert clf["name"] == "classifier" and clf["snapshots"] == 3
    assert clf["logical_bytes"] == logical and clf["stored_bytes"] == stored == clf["local_bytes"]
    assert clf["objects"] == len(_sizes(v1, v2, v3))
    assert (
        clf["dedup_ratio"] == round(logical / stored, 3) and clf["dedup_ratio"] > 2.5
    )  # 3 versions, ~1 stored
    assert rows[OTHER]["name"] == "copy" and rows[OTHER]["dedup_ratio"] == 1.0

    total = res["total"]
    assert total["snapshots"] == 4 and total["logical_bytes"] == logical + copy.size
    assert total["stored_bytes"] == stored  # the copy shares every object with v1: stored once
    assert total["dedup_ratio"] == round((logical + copy.size) / stored, 3)
    store = repo / ".dvc" / "cache" / "gitsnap" / "blake3"
    on_disk = [f for d in store.iterdir() if len(d.name) == 2 for f in d.iterdir()]
    assert res["store_objects"] == len(on_disk) and res["store_bytes"] == sum(
        f.stat().st_size for f in on_disk
    )
    assert res["unreferenced_objects"] == len(on_disk) - total["objects"] == len(garbage)
    assert res["unreferenced_bytes"] == res["store_bytes"] - stored == sum(garbage.values())

    text = run_snap("du", cwd=repo).stdout.splitlines()
    assert text[0].split() == ["MODEL", "SNAPSHOTS", "LOGICAL", "STORED", "LOCAL", "DEDUP", "PATH"]
    assert text[1].split()[0] == "classifier" and text[1].endswith(MODEL)
    assert text[3].split()[0] == "total" and f"{total['dedup_ratio']:.2f}x" in text[3]
    assert "unreferenced" in text[4] and "git snap gc frees them" in text[4]


def test_du_counts_objects_not_fetched_as_stored_but_not_local(dvc_repo: Path) -> None:
    repo = dvc_repo
    v1 = _save_commit(repo, MODEL, "v1", seed=0)
    v2 = _save_commit(repo, MODEL, "v2", seed=0, modify=("head",))
    only_v2 = set(_sizes(v2)) - set(_sizes(v1))
    store = repo / ".dvc" / "cache" / "gitsnap" / "blake3"
    for oid in only_v2:
        (store / oid[:2] / oid[2:]).unlink()
    [row] = json.loads(run_snap("du", "--json", cwd=repo).stdout)["models"]
    assert row["stored_bytes"] == sum(_sizes(v1, v2).values())
    assert row["local_bytes"] == row["stored_bytes"] - sum(_sizes(v2)[o] for o in only_v2)


def test_du_in_an_empty_project(dvc_repo: Path) -> None:
    res = json.loads(run_snap("du", "--json", cwd=dvc_repo).stdout)
    assert (
        res["models"] == []
        and res["total"]["snapshots"] == 0
        and res["total"]["dedup_ratio"] == 1.0
    )
