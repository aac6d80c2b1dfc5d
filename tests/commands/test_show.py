"""``git snap show [REV:]PATH [--json]``: one snapshot, read with the REV:PATH rules of diff.

Real git commits and real checkpoints (a safetensors file and a folder), the
installed CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gitsnap import api
from tests.helpers import git

FILE = "ckpts/model.safetensors"
DIR = "ckpts/checkpoint-500"


@pytest.fixture
def repo(dvc_repo: Path, make_checkpoint: Any, run_snap: Any) -> Path:
    """HEAD~1: FILE (seed 0, accuracy 0.9); HEAD: FILE re-trained (seed 1) and DIR added."""
    run_snap("init")
    git("add", "-A")
    git("commit", "-q", "-m", "gitsnap init")
    make_checkpoint(dvc_repo / FILE, seed=0)
    run_snap("save", FILE, "-m", "first", "-M", "accuracy=0.9", "-P", "lr=0.001")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    make_checkpoint(dvc_repo / FILE, seed=1)
    (dvc_repo / DIR).mkdir()
    make_checkpoint(dvc_repo / DIR / "model.safetensors", seed=2)
    (dvc_repo / DIR / "config.json").write_text("{}\n")
    run_snap("save", FILE, DIR, "-m", "second", "-M", "accuracy=0.95")
    git("add", "-A")
    git("commit", "-q", "-m", "second")
    return dvc_repo


def _show(run_snap: Any, spec: str, cwd: Path | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run_snap("show", spec, "--json", cwd=cwd).stdout)
    return data


def _pointer_id(repo: Path, rev: str, rel: str) -> str:
    text = git("show", f"{rev}:{rel}.snap", cwd=repo).stdout
    return next(ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("id:"))


def test_rev_path_shows_that_commits_snapshot(repo: Path, run_snap: Any) -> None:
    old = _show(run_snap, f"HEAD~1:{FILE}")
    assert (old["path"], old["rev"]) == (FILE, "HEAD~1")
    assert old["commit"] == git("rev-parse", "HEAD~1").stdout.strip()
    assert old["pointer"]["id"] == _pointer_id(repo, "HEAD~1", FILE)
    assert old["pointer"]["metrics"] == {"accuracy": 0.9}
    assert old["pointer"]["params"] == {"lr": 0.001}
    new = _show(run_snap, f"HEAD:{FILE}")
    assert new["pointer"]["id"] == _pointer_id(repo, "HEAD", FILE) != old["pointer"]["id"]
    names = [t["name"] for t in new["pointer"]["tensors"]]
    assert "head.weight" in names and len(names) == 17
    assert {"mean", "std", "min", "max"} <= set(new["pointer"]["tensors"][0]["stats"])


def test_a_folder_and_the_work_tree(repo: Path, run_snap: Any) -> None:
    at_head = _show(run_snap, f"HEAD:{DIR}")
    assert at_head["pointer"]["format"] == "folder"
    assert {f["path"] for f in at_head["pointer"]["files"]} >= {"model.safetensors"}
    here = _show(run_snap, DIR)  # a bare path: the work tree's pointer
    assert (here["rev"], here["commit"]) == (None, None)
    assert here["pointer"]["id"] == at_head["pointer"]["id"]


def test_the_table(repo: Path, run_snap: Any) -> None:
    out = run_snap("show", f"HEAD~1:{FILE}").stdout
    head = git("rev-parse", "HEAD~1").stdout.strip()
    assert f"path:     {FILE}  (at HEAD~1, commit {head[:10]})" in out
    assert "metrics:  accuracy=0.9" in out and "params:   lr=0.001" in out
    assert "head.weight" in out and "F32" in out
    # The environment it was saved in: this interpreter and the packages installed here.
    import platform
    from importlib.metadata import version

    env = next(line for line in out.splitlines() if line.startswith("env:"))
    assert f"python {platform.python_version()}" in env
    assert f"numpy {version('numpy')}" in env and " installed, digest " in env
    assert "(work tree)" in run_snap("show", FILE).stdout


def test_paths_follow_git_from_a_subdirectory(repo: Path, run_snap: Any) -> None:
    sub = repo / "ckpts"
    by_top = _show(run_snap, f"HEAD:{DIR}", cwd=sub)
    by_here = _show(run_snap, "HEAD:./checkpoint-500", cwd=sub)
    bare = _show(run_snap, "checkpoint-500", cwd=sub)
    assert by_top["pointer"]["id"] == by_here["pointer"]["id"] == bare["pointer"]["id"]
    assert by_top["path"] == "checkpoint-500"  # shown relative to the current folder


def test_python_api(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    res = api.show(f"HEAD~1:{FILE}")
    assert res.rev == "HEAD~1" and res.pointer.metrics == {"accuracy": 0.9}


@pytest.mark.parametrize(
    "case",
    [
        ("nosuch:" + FILE, 3, "unknown revision: nosuch", "give a commit"),
        (f"HEAD~1:{DIR}", 3, f"{DIR} is not a snapshot at HEAD~1", f"git snap log {DIR}"),
        ("ckpts/none.pt", 3, "no pointer ckpts/none.pt.snap in the work tree", "git snap save"),
        (f":{FILE}", 2, "names git's index", "write REV:PATH"),
        ("HEAD:", 2, "no checkpoint path after the revision", "HEAD:PATH"),
        ("HEAD:../x.pt", 3, "outside the repository", "inside the git work tree"),
    ],
)
def test_errors_say_what_and_how(
    repo: Path, run_snap: Any, case: tuple[str, int, str, str]
) -> None:
    spec, code, error, hint = case
    proc = run_snap("show", spec, check=False)
    assert proc.returncode == code
    assert proc.stdout == ""
    assert error in proc.stderr
    assert "hint: " in proc.stderr and hint in proc.stderr
