"""A teammate's first clone is one command (issue 14, point 4): install, init, doctor."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

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


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_doctor_judges_the_hook_git_runs(git_repo: Path) -> None:
    hooks = git_repo / ".git" / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    foreign = hooks / "pre-commit"
    foreign.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    foreign.chmod(0o755)
    hook = _check(_doctor(git_repo)[1], "hooks")
    assert not hook["ok"] and hook["fix"] == "git snap install"
    assert "another program's hook, gitsnap not chained: pre-commit" in hook["detail"]
    assert "not installed: pre-push, post-checkout, post-merge" in hook["detail"]
    run_snap("install", cwd=git_repo)  # chains the foreign hook
    assert _check(_doctor(git_repo)[1], "hooks")["ok"]
    # A shim edited by hand: only --force replaces it, and the fix says so.
    edited = hooks / "post-merge"
    edited.write_text(edited.read_text() + "echo mine\n", encoding="utf-8")
    hook = _check(_doctor(git_repo)[1], "hooks")
    assert not hook["ok"] and hook["fix"] == "git snap install --force"
    assert hook["detail"] == "gitsnap's shim edited by hand: post-merge"
    run_snap("install", "--force", cwd=git_repo)
    # The pre-commit framework in front of our shim runs it (its migration mode).
    (hooks / "pre-commit.legacy").unlink()
    (hooks / "pre-commit").replace(hooks / "pre-commit.legacy")
    framework = hooks / "pre-commit"
    framework.write_text("#!/bin/sh\n# File generated by pre-commit: https://pre-commit.com\n")
    framework.chmod(0o755)
    assert _check(_doctor(git_repo)[1], "hooks")["ok"]


def test_doctor_finds_a_driver_whose_gitattributes_line_is_missing(dvc_repo: Path) -> None:
    run_snap("init", "--hooks", cwd=dvc_repo)
    attrs = dvc_repo / ".gitattributes"
    attrs.write_text("*.snap diff=gitsnap\n", encoding="utf-8")  # an older project's file
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "set up", cwd=dvc_repo)
    _, report = _doctor(dvc_repo, "--offline")
    merge = _check(report, "merge driver")
    assert not merge["ok"] and _check(report, "diff driver")["ok"]
    assert merge["detail"] == (
        "model.snap has merge=unspecified: .gitattributes lacks '*.snap merge=gitsnap'"
    )
    assert merge["fix"] == "git snap install, then commit .gitattributes"
    out = run_snap("install", cwd=dvc_repo).stdout
    assert "configured .gitattributes: added *.snap merge=gitsnap (commit it)" in out
    assert ".gitattributes: added *.snap diff=gitsnap" not in out  # it had that one
    assert _check(_doctor(dvc_repo, "--offline")[1], "merge driver")["ok"]


def test_doctor_names_a_missing_dvc_plugin_with_its_pip_package(
    dvc_repo: Path, local_remote: Path
) -> None:
    run_snap("install", cwd=dvc_repo)
    helpers.add_dvc_remote(dvc_repo, "gcs", "gs://bucket/models")  # dvc-gs is not installed
    code, report = _doctor(dvc_repo)
    plugin = _check(report, "dvc plugin")
    assert code == 1 and not plugin["ok"]
    assert plugin["detail"] == (
        "the remote gs://bucket/models needs the DVC plugin dvc-gs, which is not installed"
    )
    assert plugin["fix"] == "pip install dvc-gs"
    # Nothing is asked of a remote that cannot be opened.
    assert "remote reachable" not in [c["name"] for c in report["checks"]]
    text = run_snap("doctor", cwd=dvc_repo, check=False).stdout
    assert "MISSING dvc plugin:" in text and "fix: pip install dvc-gs" in text


@pytest.mark.s3
def test_doctor_asks_an_s3_remote_with_the_configured_credentials(
    dvc_repo: Path, s3_remote: str, s3_server: str, tmp_path: Path
) -> None:
    run_snap("install", cwd=dvc_repo)
    code, report = _doctor(dvc_repo)
    assert code == 0, report
    assert _check(report, "dvc plugin")["detail"] == "dvc-s3 for s3://"
    assert _check(report, "remote reachable") == {
        "name": "remote reachable",
        "ok": True,
        "detail": "storage answered a listing",
        "fix": "",
    }
    # The bucket is gone: an empty listing must not pass for a reachable remote.
    bucket, _ = helpers.split_s3_url(s3_remote)
    helpers.s3_client(s3_server).delete_bucket(Bucket=bucket)
    code, report = _doctor(dvc_repo)
    reach = _check(report, "remote reachable")
    assert code == 1 and not reach["ok"] and "does not exist" in reach["detail"]
    assert reach["fix"] == "create it, or fix the url: dvc remote modify storage url URL"
    # A server that checks keys, and a wrong key: refused, and the fix names the credentials.
    with (tmp_path / "moto-auth.log").open("wb") as log:
        server, endpoint = helpers.start_moto_server(log)
        try:
            helpers.s3_client(endpoint).create_bucket(Bucket="locked-bucket")
            helpers.switch_moto_auth_on(endpoint)
            helpers.add_dvc_remote(dvc_repo, "locked", "s3://locked-bucket/m", endpointurl=endpoint)
            started = time.monotonic()
            proc = run_snap(
                "doctor",
                "--json",
                cwd=dvc_repo,
                check=False,
                env={**helpers.TEST_AWS_ENV, "AWS_ACCESS_KEY_ID": "wrong"},
            )
            assert time.monotonic() - started < 10
        finally:
            helpers.stop_process(server)
    reach = _check(json.loads(proc.stdout), "remote reachable")
    assert proc.returncode == 1 and not reach["ok"] and "refused access" in reach["detail"]
    assert reach["fix"].startswith("check the credentials for remote 'locked'")


def test_a_linked_worktree_shares_the_hooks_drivers_and_store(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    run_snap("init", "--hooks", cwd=dvc_repo)
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "set up", cwd=dvc_repo)
    wt = tmp_path / "wt"
    git("worktree", "add", "-q", "-b", "feature", wt, cwd=dvc_repo)
    code, report = _doctor(wt)
    assert code == 0, report
    store = _check(report, "store")["detail"]
    main_store = dvc_repo / ".dvc" / "cache" / "gitsnap" / "blake3"
    assert store == f"{main_store.resolve()} (shared with the main worktree)"
