"""A teammate's first clone is one command (issue 14, point 4): install, init, doctor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tests import helpers
from tests.helpers import git, run_snap


def _origin(dvc_repo: Path, local_remote: Path) -> None:
    """A project set up with gitsnap, a local-folder remote and one pushed snapshot."""
    run_snap("init", "--hooks", cwd=dvc_repo)
    helpers.write_safetensors(
        dvc_repo / "m.safetensors", {"w": np.arange(256, dtype=np.float32).reshape(16, 16)}
    )
    run_snap("save", "m.safetensors", cwd=dvc_repo)
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "m", cwd=dvc_repo)
    run_snap("push", cwd=dvc_repo)


def _doctor(cwd: Path, *args: str) -> tuple[int, dict]:
    proc = run_snap("doctor", "--json", *args, cwd=cwd, check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_a_fresh_clone_is_set_up_by_install_and_doctor_says_what_was_missing(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    _origin(dvc_repo, local_remote)
    clone = tmp_path / "clone"
    git("clone", "-q", dvc_repo, clone)
    code, report = _doctor(clone)
    assert code == 1 and report["ok"] is False
    missing = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert set(missing) == {"hooks", "diff driver", "merge driver"}
    assert {c["fix"] for c in missing.values()} == {"git snap install"}
    text = run_snap("doctor", cwd=clone, check=False).stdout
    assert "MISSING hooks: not installed: pre-commit" in text
    assert "fix: git snap install" in text
    # One command sets up everything, and says what it did.
    out = run_snap("install", cwd=clone).stdout
    assert "installed pre-commit" in out.replace("  ", " ").replace("  ", " ")
    assert "configured diff driver: diff.gitsnap.textconv = git snap textconv" in out
    assert "configured merge driver: merge.gitsnap.driver = git snap merge-driver" in out
    code, report = _doctor(clone)
    assert code == 0 and report["ok"] is True, report
    names = [c["name"] for c in report["checks"]]
    assert names[:3] == ["hooks", "diff driver", "merge driver"]
    assert {"dvc project", "store", "remote", "remote reachable"} <= set(names)
    assert "everything this clone needs is set up" in run_snap("doctor", cwd=clone).stdout
    # The drivers work: git diff shows the textconv summary, not raw YAML.
    run_snap("pull", cwd=clone)
    helpers.write_safetensors(clone / "m.safetensors", {"w": np.ones((16, 16), dtype=np.float32)})
    run_snap("save", "m.safetensors", cwd=clone)
    diff = git("diff", "m.safetensors.snap", cwd=clone).stdout
    assert "oid:" not in diff and diff.strip()


def test_init_reports_the_hook_state_it_finds(git_repo: Path) -> None:
    assert "git hooks not installed; " in run_snap("init", cwd=git_repo).stdout
    run_snap("install", "pre-push", cwd=git_repo)
    out = run_snap("init", cwd=git_repo).stdout
    assert "git hooks not installed (pre-commit, post-checkout, post-merge" in out
    run_snap("install", cwd=git_repo)
    out = run_snap("init", cwd=git_repo).stdout
    assert "git hooks installed: pre-commit, pre-push" in out
    assert "not installed" not in out
    state = json.loads(run_snap("init", "--json", cwd=git_repo).stdout)["hook_states"]
    assert set(state.values()) == {"current"}


def test_doctor_names_the_remote_plugin_and_reachability_with_their_fixes(
    dvc_repo: Path, tmp_path: Path
) -> None:
    run_snap("install", cwd=dvc_repo)
    code, report = _doctor(dvc_repo)
    remote = next(c for c in report["checks"] if c["name"] == "remote")
    assert code == 1 and not remote["ok"] and remote["fix"].startswith("dvc remote add -d")
    # A remote whose folder is gone: it does not answer, and the hint says why.
    helpers.add_dvc_remote(dvc_repo, "gone", os.fspath(tmp_path / "no-such-folder"))
    code, report = _doctor(dvc_repo)
    reach = next(c for c in report["checks"] if c["name"] == "remote reachable")
    assert code == 1 and not reach["ok"] and reach["fix"]
    assert _doctor(dvc_repo, "--offline")[0] == 0  # the same setup, offline: all else is there
    # An s3:// remote: dvc-s3 is installed here, so the plugin check passes by name.
    helpers.add_dvc_remote(dvc_repo, "s3", "s3://bucket/path")
    helpers.dvc("remote", "default", "s3", cwd=dvc_repo)
    _, report = _doctor(dvc_repo, "--offline")
    plugin = next(c for c in report["checks"] if c["name"] == "dvc plugin")
    assert plugin["ok"] and "dvc-s3" in plugin["detail"]
