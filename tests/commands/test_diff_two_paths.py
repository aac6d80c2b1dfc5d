"""``git snap diff REV_A:PATH_A REV_B:PATH_B``: two checkpoints at different paths.

Real git commits, real dvc, real checkpoints (single safetensors files and
Trainer-style folders), the installed CLI, every renderer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gitsnap import api
from tests.helpers import git

FILE_A, FILE_B = "ckpts/step-500.safetensors", "ckpts/step-1000.safetensors"
DIR_A, DIR_B = "ckpts/checkpoint-500", "ckpts/checkpoint-1000"
HEAD_TENSORS = {"head.weight", "head.bias"}


def _folder(path: Path, make_checkpoint: Any, **kw: Any) -> None:
    path.mkdir(parents=True, exist_ok=True)
    make_checkpoint(path / "model.safetensors", **kw)
    (path / "config.json").write_text('{"hidden": 32}\n')


@pytest.fixture
def repo(dvc_repo: Path, make_checkpoint: Any, run_snap: Any) -> Path:
    """HEAD~1 saved step 500 (file and folder); HEAD added step 1000 (a new head) beside it."""
    run_snap("init")
    git("add", "-A")
    git("commit", "-q", "-m", "gitsnap init")
    make_checkpoint(dvc_repo / FILE_A, seed=0)
    _folder(dvc_repo / DIR_A, make_checkpoint, seed=0)
    run_snap("save", FILE_A, DIR_A, "-M", "accuracy=0.90", "-P", "lr=0.001")
    git("add", "-A")
    git("commit", "-q", "-m", "step 500")
    make_checkpoint(dvc_repo / FILE_B, seed=0, modify=("head",))
    _folder(dvc_repo / DIR_B, make_checkpoint, seed=0, modify=("head",))
    run_snap("save", FILE_B, DIR_B, "-M", "accuracy=0.93", "-P", "lr=0.0005")
    git("add", "-A")
    git("commit", "-q", "-m", "step 1000")
    return dvc_repo


def _json(run_snap: Any, *args: str, cwd: Path | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run_snap("diff", "--format", "json", *args, cwd=cwd).stdout)
    return data


def _changed(ck: dict[str, Any]) -> set[str]:
    return {t["name"] for t in ck["tensors"] if t["status"] != "unchanged"}


@pytest.mark.parametrize(("a", "b"), [(FILE_A, FILE_B), (DIR_A, DIR_B)], ids=["file", "folder"])
def test_two_commits_two_paths_json(repo: Path, run_snap: Any, a: str, b: str) -> None:
    doc = _json(run_snap, f"HEAD~1:{a}", f"HEAD:{b}")
    head = git("rev-parse", "HEAD").stdout.strip()
    parent = git("rev-parse", "HEAD~1").stdout.strip()
    assert doc["before"] == {"label": f"HEAD~1:{a}", "commit": parent, "path": a}
    assert doc["after"] == {"label": f"HEAD:{b}", "commit": head, "path": b}
    [ck] = doc["checkpoints"]  # the two paths are paired as one checkpoint, nothing else
    assert (ck["path"], ck["status"], doc["changed"]) == (b, "modified", True)
    assert _changed(ck) == HEAD_TENSORS
    assert ck["summary"]["tensors_changed"] == 2
    [acc] = ck["metrics"]
    assert (acc["name"], acc["before"], acc["after"]) == ("accuracy", 0.90, 0.93)
    [lr] = ck["params"]
    assert (lr["before"], lr["after"]) == (0.001, 0.0005)


def test_same_commit_two_paths_the_trainer_case(repo: Path, run_snap: Any) -> None:
    doc = _json(run_snap, f"HEAD:{DIR_A}", f"HEAD:{DIR_B}")
    assert doc["before"]["commit"] == doc["after"]["commit"]
    [ck] = doc["checkpoints"]
    assert ck["before"]["snapshot"] != ck["after"]["snapshot"]
    assert _changed(ck) == HEAD_TENSORS
    # the same path on both sides is the plain diff: nothing changed
    same = _json(run_snap, f"HEAD~1:{DIR_A}", f"HEAD:{DIR_A}")
    assert same["changed"] is False and same["checkpoints"][0]["status"] == "unchanged"


@pytest.mark.parametrize(("a", "b"), [(FILE_A, FILE_B), (DIR_A, DIR_B)], ids=["file", "folder"])
@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_every_renderer_names_both_sides(
    repo: Path, run_snap: Any, fmt: str, a: str, b: str
) -> None:
    out = run_snap("diff", f"HEAD~1:{a}", f"HEAD:{b}", "--format", fmt).stdout
    assert f"HEAD~1:{a}" in out and f"HEAD:{b}" in out
    assert "head.weight" in out
    assert "2 of 17 tensors changed" in out
    assert "accuracy" in out


def test_the_work_tree_on_either_side(repo: Path, run_snap: Any, make_checkpoint: Any) -> None:
    _folder(repo / DIR_B, make_checkpoint, seed=0, modify=("head", "blocks.0.fc1"), modify_seed=5)
    doc = _json(run_snap, f"HEAD:{DIR_A}", DIR_B)  # the checkpoint on disk, not yet saved
    assert doc["after"] == {"label": f"{DIR_B} (working tree)", "commit": None, "path": DIR_B}
    [ck] = doc["checkpoints"]
    assert ck["after"]["unsaved"] is True
    assert _changed(ck) == HEAD_TENSORS | {"blocks.0.fc1.weight", "blocks.0.fc1.bias"}
    left = _json(run_snap, DIR_B, f"HEAD:{DIR_A}")  # and the other way round
    assert left["before"]["label"] == f"{DIR_B} (working tree)"
    assert left["after"]["path"] == DIR_A
    assert _changed(left["checkpoints"][0]) == _changed(ck)
    # a lone REV:PATH is compared with the same path in the work tree
    lone = _json(run_snap, f"HEAD:{DIR_B}")
    assert lone["after"]["label"] == f"{DIR_B} (working tree)"
    assert _changed(lone["checkpoints"][0]) == _changed(ck)  # another head seed, and fc1


def test_values_read_both_snapshots(repo: Path, run_snap: Any) -> None:
    doc = _json(run_snap, "--values", f"HEAD~1:{FILE_A}", f"HEAD:{FILE_B}")
    [ck] = doc["checkpoints"]
    head = {t["name"]: t for t in ck["tensors"]}["head.weight"]
    assert head["values"]["changed"] == head["values"]["elements"] > 0


def test_values_of_an_unsaved_checkpoint_on_either_side(
    repo: Path, run_snap: Any, make_checkpoint: Any
) -> None:
    """The work tree's side is read from its files, left or right; nothing is stored."""
    _folder(repo / DIR_B, make_checkpoint, seed=0, modify=("blocks.0.fc1",), modify_seed=5)
    cache = sorted((repo / ".dvc" / "cache").rglob("*"))
    for args in ((DIR_B, f"HEAD:{DIR_A}"), (f"HEAD:{DIR_A}", DIR_B)):
        doc = _json(run_snap, "--values", *args)
        fc1 = {t["name"]: t for t in doc["checkpoints"][0]["tensors"]}["blocks.0.fc1.weight"]
        assert fc1["values"]["changed"] > 0
    assert sorted((repo / ".dvc" / "cache").rglob("*")) == cache


def test_paths_follow_git_from_a_subdirectory(repo: Path, run_snap: Any) -> None:
    """As in git, REV:PATH is from the top; REV:./PATH and a bare PATH from the current folder."""
    sub = repo / "ckpts"
    doc = _json(run_snap, f"HEAD~1:{FILE_A}", "HEAD:./step-1000.safetensors", cwd=sub)
    assert (doc["before"]["path"], doc["after"]["path"]) == (
        "step-500.safetensors",
        "step-1000.safetensors",
    )  # shown relative to the current folder, as every diff path is
    assert _changed(doc["checkpoints"][0]) == HEAD_TENSORS
    bare = _json(run_snap, f"HEAD:{FILE_A}", "step-1000.safetensors", cwd=sub)
    assert _changed(bare["checkpoints"][0]) == HEAD_TENSORS


def test_python_api(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    result = api.diff(f"HEAD:{DIR_A}", f"HEAD:{DIR_B}")
    assert (result.before_path, result.after_path) == (DIR_A, DIR_B)
    [ck] = result.checkpoints
    assert {c.name for c in ck.tensors if c.changed} == HEAD_TENSORS


def _fails(run_snap: Any, *args: str) -> tuple[int, str]:
    proc = run_snap("diff", *args, check=False)
    assert proc.stdout == ""
    return proc.returncode, proc.stderr


def test_unknown_revision(repo: Path, run_snap: Any) -> None:
    code, err = _fails(run_snap, f"nosuch:{DIR_A}", f"HEAD:{DIR_B}")
    assert code == 3
    assert "error: unknown revision: nosuch" in err and "hint: " in err


def test_path_not_a_snapshot_at_that_revision(repo: Path, run_snap: Any) -> None:
    code, err = _fails(run_snap, f"HEAD~1:{DIR_B}", f"HEAD:{DIR_A}")
    assert code == 3
    assert f"error: {DIR_B} is not a snapshot at HEAD~1" in err
    assert f"hint: git snap log {DIR_B} lists the commits that have one" in err
    code, err = _fails(run_snap, "HEAD:ckpts", f"HEAD:{DIR_A}")  # a folder of checkpoints
    assert code == 3
    assert "error: ckpts is not a snapshot at HEAD (it holds 4: " in err
    code, err = _fails(run_snap, f"HEAD:{DIR_A}", "HEAD~1")  # a bare word is a work-tree path
    assert code == 3
    assert "error: HEAD~1 is not a snapshot in the work tree" in err
    assert "REV:PATH names one at a commit" in err


def test_a_pointer_that_does_not_parse_is_reported(repo: Path, run_snap: Any) -> None:
    text = (repo / f"{FILE_A}.snap").read_text()
    broken = text.replace("id: ", "id: not-hex-", 1)
    assert broken != text
    (repo / "ckpts/broken.safetensors.snap").write_text(broken)
    git("add", "ckpts/broken.safetensors.snap")
    git("commit", "-q", "--no-verify", "-m", "a broken pointer")
    for args in (("HEAD:ckpts/broken.safetensors", f"HEAD:{FILE_B}"),
                 (f"HEAD:{FILE_B}", "HEAD:ckpts/broken.safetensors")):  # fmt: skip
        proc = run_snap("diff", "--format", "json", *args, check=False)
        assert proc.returncode == 3
        assert json.loads(proc.stdout)["checkpoints"] == []
        assert "HEAD:ckpts/broken.safetensors" in proc.stderr and "hint: " in proc.stderr


def test_rev_path_with_dashdash_paths_is_a_usage_error(repo: Path, run_snap: Any) -> None:
    code, err = _fails(run_snap, f"HEAD~1:{DIR_A}", f"HEAD:{DIR_B}", "--", DIR_B)
    assert code == 2
    assert "cannot be limited with -- PATH" in err
    assert "hint: git snap diff REV_A:PATH_A REV_B:PATH_B" in err


def test_other_usage_errors(repo: Path, run_snap: Any) -> None:
    code, err = _fails(run_snap, f":{DIR_A}", f"HEAD:{DIR_B}")
    assert code == 2 and "names git's index" in err and "hint: " in err
    code, err = _fails(run_snap, "HEAD:", f"HEAD:{DIR_B}")
    assert code == 2 and "no checkpoint path after the revision" in err
    code, err = _fails(run_snap, f"HEAD:{DIR_A}", f"HEAD:{DIR_B}", f"HEAD:{FILE_A}")
    assert code == 2 and "at most two revisions" in err
    code, err = _fails(run_snap, f"HEAD:../{DIR_A}", f"HEAD:{DIR_B}")
    assert code == 3 and "outside the repository" in err


def test_a_word_that_exists_stays_a_path(repo: Path, run_snap: Any, make_checkpoint: Any) -> None:
    """A file whose name has a colon is a path, as in git (not REV:PATH)."""
    odd = "odd:name.safetensors"
    make_checkpoint(repo / odd, seed=0)
    run_snap("save", odd)
    doc = _json(run_snap, odd)
    assert [c["path"] for c in doc["checkpoints"]] == [odd]
    assert "path" not in doc["before"] and doc["after"]["label"] == "working tree"


@pytest.fixture(scope="module")
def trainer_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real transformers Trainer's output_dir: checkpoint-2/ and checkpoint-4/."""
    from tests.formats.test_real_producers import TRAIN_HF, python

    root = tmp_path_factory.mktemp("trainer")
    python(TRAIN_HF, root / "hf", cwd=root)
    return root / "hf"


@pytest.mark.slow
def test_a_real_trainers_two_checkpoints_in_one_commit(
    dvc_repo: Path, run_snap: Any, trainer_output: Path
) -> None:
    run_snap("init")
    shutil.copytree(trainer_output, dvc_repo / "run")
    run_snap("save", "run/checkpoint-2", "run/checkpoint-4")
    git("add", "-A")
    git("commit", "-q", "-m", "two steps of one run")
    sides = ("HEAD:run/checkpoint-2", "HEAD:run/checkpoint-4")
    doc = _json(run_snap, *sides)
    [ck] = doc["checkpoints"]
    assert (ck["path"], ck["status"]) == ("run/checkpoint-4", "modified")
    assert (doc["before"]["path"], doc["after"]["path"]) == ("run/checkpoint-2", "run/checkpoint-4")
    # two optimizer steps moved the weights: a model tensor is among the changed ones
    assert any(
        "bert.encoder.layer.0.attention.self.query.weight" in t["name"]
        for t in ck["tensors"]
        if t["status"] == "modified"
    )
    for fmt in ("table", "markdown", "html"):
        out = run_snap("diff", *sides, "--format", fmt).stdout
        assert all(side in out for side in sides), fmt
