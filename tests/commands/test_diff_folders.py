"""``git snap diff`` of folder checkpoints, file by file (issue 13, point 4).

Real git, real dvc, real safetensors files, the installed CLI: a folder with a
model and its EMA copy (the same tensor names in two files), and a re-shard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.formats.test_folder_sharded import write_sharded
from tests.helpers import git, make_state_dict, write_safetensors

EMA = "ema.safetensors"
MODEL = "model.safetensors"


def snap_json(run_snap: Any, *args: str) -> dict[str, Any]:
    return json.loads(run_snap("diff", "--format", "json", *args).stdout)


@pytest.fixture
def ema_history(dvc_repo: Path, run_snap: Any) -> Path:
    """``ckpt/`` with model + EMA files of the same names; HEAD changes only the EMA head."""
    run_snap("init")
    git("add", "-A")
    git("commit", "-q", "-m", "gitsnap init")
    folder = dvc_repo / "ckpt"
    folder.mkdir()
    base = make_state_dict(seed=0)
    write_safetensors(folder / MODEL, base)
    write_safetensors(folder / EMA, base)
    run_snap("save", "ckpt", "-m", "v1")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    write_safetensors(folder / EMA, make_state_dict(seed=0, modify=("head",)))
    run_snap("save", "ckpt", "-m", "ema head moved")
    git("add", "-A")
    git("commit", "-q", "-m", "v2")
    return dvc_repo


def test_a_changed_ema_head_is_reported_in_every_view(ema_history: Path, run_snap: Any) -> None:
    names = len(make_state_dict(seed=0))
    doc = snap_json(run_snap, "HEAD~1", "HEAD")
    [ck] = doc["checkpoints"]
    assert ck["summary"]["tensors_before"] == ck["summary"]["tensors_after"] == 2 * names
    changed = {t["name"]: t for t in ck["tensors"] if t["status"] != "unchanged"}
    assert sorted(changed) == [f"{EMA}: head.bias", f"{EMA}: head.weight"]
    assert all(t["status"] == "modified" for t in changed.values())
    head = changed[f"{EMA}: head.weight"]
    assert (head["file"], head["tensor"]) == (EMA, "head.weight")
    assert head["before"]["file"] == head["after"]["file"] == EMA
    # The stats diff: each side's recorded stats are the EMA file's own.
    assert head["before"]["stats"] != head["after"]["stats"]
    assert head["norm_change"] is not None and head["norm_change"] > 0
    assert ck["summary"]["tensors_changed"] == 2
    # The model's own head is there, unchanged, under its file.
    model_head = next(t for t in ck["tensors"] if t["name"] == f"{MODEL}: head.weight")
    assert model_head["status"] == "unchanged"
    groups = {g["name"]: g for g in ck["groups"]}
    assert groups[f"{EMA}: head"]["tensors_changed"] == 2
    assert groups[f"{MODEL}: head"]["tensors_changed"] == 0
    assert ck["groups"][0]["name"] == f"{EMA}: head"
    # One file's bytes changed, and the file list says which.
    files = {f["path"]: f["status"] for f in ck["files"]}
    assert files == {EMA: "modified", MODEL: "unchanged"}

    table = run_snap("diff", "HEAD~1", "HEAD").stdout
    assert f"2 of {2 * names} tensors changed (2 modified)" in table
    assert f"{EMA}: head.weight" in table
    assert f"{MODEL}: head.weight" not in table
    assert f"files: 2 (1 modified) · modified: {EMA}" in table
    md = run_snap("diff", "HEAD~1", "HEAD", "--format", "markdown").stdout
    assert f"2 of {2 * names} tensors changed" in md
    assert f"{EMA}: head.weight" in md
    html = run_snap("diff", "HEAD~1", "HEAD", "--format", "html").stdout
    assert f"{EMA}: head.weight" in html
    assert f"2 of {2 * names} tensors changed" in html

    # --values reads both EMA heads, not the model's (unchanged) ones.
    doc = snap_json(run_snap, "HEAD~1", "HEAD", "--values")
    [ck] = doc["checkpoints"]
    head = next(t for t in ck["tensors"] if t["name"] == f"{EMA}: head.weight")
    assert head["values"]["changed"] > 0
    assert head["values"]["cosine"] < 1.0
    assert ck["summary"]["values_computed"] == 2

    # git diff of the pointer (textconv): the EMA lines change, file-qualified.
    out = git("diff", "-U100000", "HEAD~1", "HEAD", "--", "ckpt.snap").stdout
    removed = [ln for ln in out.splitlines() if ln.startswith("-") and ": head." in ln]
    added = [ln for ln in out.splitlines() if ln.startswith("+") and ": head." in ln]
    assert [ln.split()[0] for ln in removed] == [f"-{EMA}:"] * 2
    assert [ln.split()[1] for ln in added] == ["head.bias", "head.weight"]
    assert f" {MODEL}: head.weight" in out  # context line, unchanged


def test_a_working_ema_change_is_seen_against_head(ema_history: Path, run_snap: Any) -> None:
    folder = ema_history / "ckpt"
    # The model file moves its first block; the EMA stays as HEAD saved it.
    write_safetensors(folder / MODEL, make_state_dict(seed=0, modify=("blocks.1.fc1",)))
    doc = snap_json(run_snap)
    [ck] = doc["checkpoints"]
    changed = sorted(t["name"] for t in ck["tensors"] if t["status"] != "unchanged")
    assert changed == [f"{MODEL}: blocks.1.fc1.bias", f"{MODEL}: blocks.1.fc1.weight"]
    assert ck["after"]["unsaved"] is True


@pytest.mark.parametrize(("old", "new"), [(10, 3), (3, 2)])
def test_a_reshard_says_the_files_changed(
    dvc_repo: Path, run_snap: Any, old: int, new: int
) -> None:
    run_snap("init")
    git("add", "-A")
    git("commit", "-q", "-m", "gitsnap init")
    state = make_state_dict(seed=3, layers=4)
    folder = dvc_repo / "hf"
    write_sharded(folder, state, shards=old)
    run_snap("save", "hf")
    git("add", "-A")
    git("commit", "-q", "-m", f"{old} shards")
    write_sharded(folder, state, shards=new)
    run_snap("save", "hf")
    git("add", "-A")
    git("commit", "-q", "-m", f"{new} shards")

    doc = snap_json(run_snap, "HEAD~1", "HEAD")
    [ck] = doc["checkpoints"]
    assert ck["changed"] is True
    assert ck["summary"]["tensors_changed"] == 0
    assert ck["summary"]["tensors_after"] == len(state)
    assert all("file" not in t for t in ck["tensors"])  # names are unique: never qualified
    status = {f["path"]: f["status"] for f in ck["files"]}
    assert sum(s == "removed" for s in status.values()) == old
    assert sum(s == "added" for s in status.values()) == new
    assert status["config.json"] == "unchanged"
    assert status["model.safetensors.index.json"] == "modified"
    others = 4  # index, config, tokenizer, tokenizer config
    line = (
        f"files: {old + others} → {new + others} "
        f"({new} added, {old} removed, 1 modified; tensors unchanged)"
    )

    table = run_snap("diff", "HEAD~1", "HEAD").stdout
    assert f"0 of {len(state)} tensors changed" in table
    assert line in table
    assert f"added: model-00001-of-{new:05d}.safetensors" in table
    md = run_snap("diff", "HEAD~1", "HEAD", "--format", "markdown").stdout
    assert line in md
    html = run_snap("diff", "HEAD~1", "HEAD", "--format", "html").stdout
    assert line in html
    out = git("diff", "HEAD~1", "HEAD", "--", "hf.snap").stdout
    assert f"-file model-{old:05d}-of-{old:05d}.safetensors" in out
    assert f"+file model-{new:05d}-of-{new:05d}.safetensors" in out
    assert " file config.json" in out


def test_a_path_inside_a_folder_limits_the_diff_to_that_file(
    ema_history: Path, run_snap: Any
) -> None:
    names = len(make_state_dict(seed=0))
    doc = snap_json(run_snap, "HEAD~1", "HEAD", "--", f"ckpt/{EMA}")
    [ck] = doc["checkpoints"]
    assert ck["path"] == "ckpt" and ck["status"] == "modified" and ck["changed"] is True
    # One file's tensors: their names no longer collide, so they are shown bare.
    assert ck["summary"]["tensors_after"] == names
    assert {t["after"]["file"] for t in ck["tensors"]} == {EMA}
    changed = sorted(t["name"] for t in ck["tensors"] if t["status"] != "unchanged")
    assert changed == ["head.bias", "head.weight"]
    assert [(f["path"], f["status"]) for f in ck["files"]] == [(EMA, "modified")]
    values = snap_json(run_snap, "HEAD~1", "HEAD", "--values", "--", f"ckpt/{EMA}")
    assert values["checkpoints"][0]["summary"]["values_computed"] == 2

    # The model file did not change: the diff limited to it says so.
    doc = snap_json(run_snap, "HEAD~1", "HEAD", "--", f"ckpt/{MODEL}")
    [ck] = doc["checkpoints"]
    assert ck["status"] == "unchanged" and ck["changed"] is False
    assert ck["summary"]["tensors_changed"] == 0 and ck["summary"]["tensors_after"] == names
    assert [(f["path"], f["status"]) for f in ck["files"]] == [(MODEL, "unchanged")]
    table = run_snap("diff", "HEAD~1", "HEAD", "--", f"ckpt/{MODEL}").stdout
    assert f"0 of {names} tensors changed" in table and EMA not in table

    # Against the work tree, from inside the folder, with a path relative to it.
    folder = ema_history / "ckpt"
    write_safetensors(folder / MODEL, make_state_dict(seed=0, modify=("head",)))
    doc = json.loads(run_snap("diff", "--format", "json", "--", MODEL, cwd=folder).stdout)
    [ck] = doc["checkpoints"]
    assert sorted(t["name"] for t in ck["tensors"] if t["status"] != "unchanged") == [
        "head.bias",
        "head.weight",
    ]
    doc = snap_json(run_snap, "--", f"ckpt/{EMA}")
    assert doc["checkpoints"][0]["changed"] is False

    # A path that names no file of the folder is an error, not "no change".
    proc = run_snap("diff", "HEAD~1", "HEAD", "--", "ckpt/emma.safetensors", check=False)
    assert proc.returncode == 3
    assert "ckpt/emma.safetensors: no such file in the folder checkpoint ckpt" in proc.stderr
    assert "hint:" in proc.stderr
