"""Every git operation of the table in docs/hooks.md, end to end with real git.

Each test is one row: the git command a user runs, what gitsnap's hooks do
about it, and -- where no hook can -- what ``git snap status`` says and that
the command it names brings the weights in line. Weights are compared by their
bytes (sha256 of the checkpoint file), never by gitsnap's own word.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import git, run_snap
from tests.hooks.test_hooks import ckpt, commit, head, save, sha256

M = "m.safetensors"


@pytest.fixture
def repo(dvc_repo: Path) -> Path:
    """A DVC project with gitsnap's hooks installed."""
    run_snap("install", cwd=dvc_repo)
    return dvc_repo


@pytest.fixture
def history(repo: Path) -> dict[str, str]:
    """main: v1 then v2 of ``m.safetensors`` (head 1.0, 2.0); the sha256 of each."""
    save(repo, M, 1.0, "v1")
    v1 = sha256(repo / M)
    save(repo, M, 2.0, "v2")
    return {"v1": v1, "v2": sha256(repo / M)}


def status(repo: Path) -> str:
    return run_snap("status", cwd=repo).stdout


def assert_outdated(repo: Path) -> None:
    """status names the checkpoint outdated, points at checkout, and never at save."""
    out = status(repo)
    assert f"outdated: {M}" in out, out
    assert 'use "git snap checkout <path>..."' in out
    assert "modified:" not in out and "git snap save" not in out


def test_switch_restores_the_weights_of_the_branch(repo: Path) -> None:
    save(repo, M, 1.0, "v1")
    v1 = sha256(repo / M)
    git("switch", "-q", "-c", "feature")
    save(repo, M, 2.0, "v2")
    proc = git("switch", "main", check=False)
    assert proc.returncode == 0 and f"gitsnap: restored {M}" in proc.stderr
    assert sha256(repo / M) == v1
    assert status(repo).startswith("clean")


def test_cherry_pick_restores_the_picked_weights(repo: Path) -> None:
    save(repo, M, 1.0, "v1")
    git("switch", "-q", "-c", "feature")
    save(repo, M, 2.0, "v2")
    v2 = sha256(repo / M)
    picked = head(repo)
    git("switch", "-q", "main")
    proc = git("cherry-pick", picked, check=False)  # git runs post-commit, not post-rewrite
    assert proc.returncode == 0, proc.stderr
    assert f"gitsnap: restored {M}" in proc.stderr
    assert sha256(repo / M) == v2
    assert status(repo).startswith("clean")


def test_revert_restores_the_weights_of_the_reverted_to_state(
    repo: Path, history: dict[str, str]
) -> None:
    proc = git("revert", "--no-edit", "HEAD", check=False)
    assert proc.returncode == 0, proc.stderr
    assert sha256(repo / M) == history["v1"]


def test_rebase_restores_the_weights_of_the_new_tip(repo: Path) -> None:
    save(repo, M, 1.0, "v1")
    git("switch", "-q", "-c", "feature")
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    commit(repo, "code on feature")
    git("switch", "-q", "main")
    save(repo, M, 3.0, "v3 on main")
    v3 = sha256(repo / M)
    git("switch", "-q", "feature")  # back to v1's weights
    assert sha256(repo / M) != v3
    proc = git("rebase", "main", check=False)
    assert proc.returncode == 0, proc.stderr
    assert sha256(repo / M) == v3  # feature now sits on v3
    assert status(repo).startswith("clean")


def test_pull_rebase_restores_the_weights_of_the_new_tip(
    repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    save(repo, M, 1.0, "v1")
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", origin)
    git("remote", "add", "origin", origin)
    git("push", "-q", "-u", "origin", "main")
    other = tmp_path / "other"
    git("clone", "-q", str(origin), str(other))
    run_snap("install", cwd=other)
    run_snap("pull", cwd=other)
    save(other, M, 4.0, "v4 elsewhere")
    v4 = sha256(other / M)
    git("push", "-q", "origin", "main", cwd=other)  # pre-push uploads the weights
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    commit(repo, "local code")
    git("config", "gitsnap.autoFetch", "true")
    proc = git("pull", "--rebase", "-q", "origin", "main", check=False)
    assert proc.returncode == 0, proc.stderr
    assert sha256(repo / M) == v4


def test_rebase_never_overwrites_unsaved_work(repo: Path) -> None:
    save(repo, M, 1.0, "v1")
    git("switch", "-q", "-c", "feature")
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    commit(repo, "code on feature")
    git("switch", "-q", "main")
    save(repo, M, 3.0, "v3 on main")
    git("switch", "-q", "feature")
    ckpt(repo / M, 9.0)  # trained on, not saved
    mine = sha256(repo / M)
    proc = git("rebase", "main", check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: kept {M}: it has changes that are not saved" in proc.stderr
    assert f"hint: git snap save {M} to keep them" in proc.stderr
    assert sha256(repo / M) == mine
    assert f"modified: {M}" in status(repo)


def test_amend_with_an_older_pointer_restores_its_weights(
    repo: Path, history: dict[str, str]
) -> None:
    git("checkout", "HEAD~1", "--", f"{M}.snap")  # the pointer goes back to v1; the file stays v2
    assert_outdated(repo)
    (repo / "train.py").write_text("lr = 0.1\n")
    git("add", "train.py")
    proc = git("commit", "-q", "--amend", "--no-edit", check=False)
    assert proc.returncode == 0, proc.stderr
    # pre-commit: the commit records v1, whose objects are stored; it says how to follow
    assert f"hint: git snap checkout {M}" in proc.stderr
    assert "git snap save" not in proc.stderr
    assert sha256(repo / M) == history["v1"]  # post-commit / post-rewrite restored it
    assert status(repo).startswith("clean")


def test_reset_hard_then_checkout(repo: Path, history: dict[str, str]) -> None:
    proc = git("reset", "--hard", "HEAD~1", check=False)  # git runs no hook here
    assert proc.returncode == 0 and "gitsnap" not in proc.stderr
    assert sha256(repo / M) == history["v2"]
    assert_outdated(repo)
    assert run_snap("status", "--json").stdout.count('"outdated"') == 1
    run_snap("checkout", M)
    assert sha256(repo / M) == history["v1"]
    assert status(repo).startswith("clean")


def test_checkout_of_a_pointer_file_then_checkout(repo: Path, history: dict[str, str]) -> None:
    git("checkout", "HEAD~1", "--", f"{M}.snap")
    assert_outdated(repo)
    run_snap("checkout", M)
    assert sha256(repo / M) == history["v1"]
    git("checkout", "HEAD", "--", f"{M}.snap")  # and back to HEAD's pointer
    assert_outdated(repo)
    run_snap("checkout", M)
    assert sha256(repo / M) == history["v2"]


def test_stash_and_stash_pop_then_checkout(repo: Path, history: dict[str, str]) -> None:
    save(repo, M, 3.0)  # saved, not committed
    v3 = sha256(repo / M)
    git("stash", "-q")  # the pointer goes back to v2; the checkpoint is ignored, so stays v3
    assert sha256(repo / M) == v3
    assert_outdated(repo)
    run_snap("checkout", M)
    assert sha256(repo / M) == history["v2"]
    git("stash", "pop", "-q")
    assert_outdated(repo)
    run_snap("checkout", M)
    assert sha256(repo / M) == v3
    assert status(repo).startswith("clean")


def test_conflict_resolved_with_theirs_commits_and_restores_theirs(repo: Path) -> None:
    save(repo, M, 1.0, "v1")
    git("switch", "-q", "-c", "feature")
    save(repo, M, 2.0, "theirs")
    theirs = sha256(repo / M)
    git("switch", "-q", "main")
    save(repo, M, 3.0, "ours")  # the same tensor on both sides: a conflict
    ours = sha256(repo / M)
    proc = git("merge", "feature", check=False)
    assert proc.returncode != 0 and "CONFLICT" in proc.stdout
    git("checkout", "--theirs", "--", f"{M}.snap")
    git("add", f"{M}.snap")
    assert sha256(repo / M) == ours
    assert_outdated(repo)
    proc = commit(repo, "merged, theirs")
    assert proc.returncode == 0, proc.stderr
    assert f"hint: git snap checkout {M}" in proc.stderr and "git snap save" not in proc.stderr
    assert sha256(repo / M) == theirs  # post-commit restored the resolution's weights
    assert status(repo).startswith("clean")


def test_conflict_resolved_with_ours_keeps_ours(repo: Path) -> None:
    save(repo, M, 1.0, "v1")
    git("switch", "-q", "-c", "feature")
    save(repo, M, 2.0, "theirs")
    git("switch", "-q", "main")
    save(repo, M, 3.0, "ours")
    ours = sha256(repo / M)
    assert git("merge", "feature", check=False).returncode != 0
    git("checkout", "--ours", "--", f"{M}.snap")
    git("add", f"{M}.snap")
    assert status(repo).startswith("clean")
    proc = commit(repo, "merged, ours")
    assert proc.returncode == 0, proc.stderr
    assert sha256(repo / M) == ours


def test_a_foreign_post_rewrite_hook_is_chained_with_its_input(dvc_repo: Path) -> None:
    log = dvc_repo / "rewrite.log"
    foreign = dvc_repo / ".git" / "hooks" / "post-rewrite"
    foreign.parent.mkdir(exist_ok=True)
    foreign.write_text(f'#!/bin/sh\necho "$1" >> {log}\ncat >> {log}\n')
    foreign.chmod(0o755)
    assert "chained" in run_snap("install", cwd=dvc_repo).stdout
    save(dvc_repo, M, 1.0, "v1")
    old = head(dvc_repo)
    proc = git("commit", "-q", "--amend", "-m", "v1 again", check=False)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "amend"
    assert lines[1].split()[:2] == [old, head(dvc_repo)]


def test_the_docs_table_names_only_tests_that_exist() -> None:
    import re

    from tests import test_workspace
    from tests.hooks import test_git_operations, test_hooks

    docs = (Path(__file__).resolve().parents[2] / "docs" / "hooks.md").read_text()
    table = docs.split("## Git operations", 1)[1].split("\n\n", 2)[1]
    named = re.findall(r"`(test_\w+)\.py::(test_\w+)`", table)
    modules = {
        "test_git_operations": test_git_operations,
        "test_hooks": test_hooks,
        "test_workspace": test_workspace,
    }
    assert len(table.splitlines()) >= 14 and len(named) >= 14
    missing = [f"{m}::{t}" for m, t in named if not hasattr(modules[m], t)]
    assert not missing
