"""One bad checkpoint never breaks the rest: status, diff, checkout and log report it and go on.

A repository holds two good checkpoints and one whose pointer does not
parse (or whose file the format reader refuses); each command handles the
good ones, names the bad one with its error and hint, and exits 3.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import git, make_checkpoint, run_snap

BROKEN = "gitsnap: 1\nid: not-an-id\npath: c.safetensors\n"


@pytest.fixture
def repo(dvc_repo: Path) -> Path:
    """a and b saved and committed; c's pointer committed broken."""
    make_checkpoint(dvc_repo / "a.safetensors", seed=0)
    make_checkpoint(dvc_repo / "b.safetensors", seed=1)
    run_snap("save", "a.safetensors", "b.safetensors", cwd=dvc_repo)
    (dvc_repo / "c.safetensors.snap").write_text(BROKEN)
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "--no-verify", "-m", "two good, one broken", cwd=dvc_repo)
    return dvc_repo


def _reports_c(proc: subprocess.CompletedProcess[str], sides: int = 1) -> None:
    """Exit 3; an ``error:`` line naming c's pointer and its defect (per side read), a ``hint:``."""
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == sides, proc.stderr
    for line in errors:
        assert "c.safetensors.snap" in line and "not-an-id" in line, proc.stderr
    assert "hint: restore the pointer from git" in proc.stderr


def test_status_reports_the_broken_pointer_and_the_others(repo: Path) -> None:
    make_checkpoint(repo / "b.safetensors", seed=1, modify=("head",))
    proc = run_snap("status", cwd=repo, check=False)
    _reports_c(proc)
    assert "modified: b.safetensors" in proc.stdout
    data = json.loads(run_snap("status", "--json", cwd=repo, check=False).stdout)
    assert {e["path"] for e in data["entries"]} == {"a.safetensors", "b.safetensors"}
    [problem] = data["problems"]
    assert problem["path"] == "c.safetensors" and "not-an-id" in problem["message"]


def test_diff_compares_the_others_and_reports_the_broken_one(repo: Path) -> None:
    make_checkpoint(repo / "b.safetensors", seed=1, modify=("head",))
    proc = run_snap("diff", cwd=repo, check=False)
    _reports_c(proc, sides=2)  # HEAD's pointer and the work tree's
    assert "b.safetensors" in proc.stdout and "modified" in proc.stdout
    doc = json.loads(run_snap("diff", "--format", "json", cwd=repo, check=False).stdout)
    assert sorted(c["path"] for c in doc["checkpoints"]) == ["a.safetensors", "b.safetensors"]
    assert {p["path"] for p in doc["problems"]} >= {"HEAD:c.safetensors"}


def test_diff_reports_a_checkpoint_its_format_reader_refuses(repo: Path) -> None:
    (repo / "c.safetensors.snap").unlink()
    git("rm", "-q", "--cached", "c.safetensors.snap", cwd=repo)
    git("commit", "-q", "--no-verify", "-m", "drop c", cwd=repo)
    (repo / "a.safetensors").write_bytes(b"\xff" * 64)  # no longer a safetensors file
    make_checkpoint(repo / "b.safetensors", seed=1, modify=("head",))
    proc = run_snap("diff", cwd=repo, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "error: a.safetensors" in proc.stderr and "hint:" in proc.stderr
    assert "b.safetensors" in proc.stdout and "modified" in proc.stdout


def test_checkout_restores_the_others(repo: Path) -> None:
    (repo / "a.safetensors").unlink()
    (repo / "b.safetensors").unlink()
    proc = run_snap("checkout", cwd=repo, check=False)
    _reports_c(proc)
    assert (repo / "a.safetensors").exists() and (repo / "b.safetensors").exists()


def test_log_lists_the_others(repo: Path) -> None:
    proc = run_snap("log", cwd=repo, check=False)
    _reports_c(proc)
    assert "a.safetensors" in proc.stdout and "b.safetensors" in proc.stdout


def test_the_api_returns_problems_with_the_results(repo: Path) -> None:
    from gitsnap import api

    entries = api.log(cwd=repo)
    assert {e.path for e in entries} == {"a.safetensors", "b.safetensors"}
    [problem] = entries.problems
    assert problem.path.endswith(":c.safetensors") and "not-an-id" in problem.message
    status = api.status(cwd=repo)
    assert not status.clean and [p.path for p in status.problems] == ["c.safetensors"]


def _remote_objects(remote: Path) -> set[str]:
    root = remote / "gitsnap" / "blake3"
    return {p.parent.name + p.name for p in root.glob("??/*")} if root.is_dir() else set()


def test_push_uploads_the_others_and_fails(repo: Path, local_remote: Path) -> None:
    from gitsnap.pointer import loads

    proc = run_snap("push", cwd=repo, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "c.safetensors.snap" in proc.stderr and "hint:" in proc.stderr
    wanted = set()
    for name in ("a", "b"):
        wanted |= loads((repo / f"{name}.safetensors.snap").read_bytes()).oids()
    assert wanted <= _remote_objects(local_remote)


def test_the_pre_push_hook_uploads_the_others_and_stops_the_push(
    repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    from gitsnap.pointer import loads

    run_snap("install", cwd=repo)
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", origin)
    git("remote", "add", "origin", origin, cwd=repo)
    proc = git("push", "origin", "main", cwd=repo, check=False)
    assert proc.returncode != 0
    assert "c.safetensors.snap" in proc.stderr and "not-an-id" in proc.stderr
    wanted = loads((repo / "a.safetensors.snap").read_bytes()).oids()
    assert wanted <= _remote_objects(local_remote)
