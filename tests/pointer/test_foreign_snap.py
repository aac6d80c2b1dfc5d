"""Other tools' ``*.snap`` files (Jest snapshot tests) are not gitsnap pointers.

gitsnap reads a ``.snap`` file as a pointer only when it starts with
``gitsnap:`` (:func:`gitsnap.pointer.is_pointer`); every command leaves the
others alone. A file that does start like a pointer and is broken stays an
error.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import MakeCheckpoint, RunSnap, git

JEST = "__snapshots__/x.test.js.snap"
JEST_TEXT = """\
// Jest Snapshot v1, https://goo.gl/fbAQLP

exports[`renders the model card 1`] = `
<div>
  model: 0.91
</div>
`;
"""


def _repo_with_jest(dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap) -> Path:
    (dvc_repo / JEST).parent.mkdir()
    (dvc_repo / JEST).write_text(JEST_TEXT, encoding="utf-8")
    make_checkpoint(dvc_repo / "m.safetensors")
    run_snap("save", "m.safetensors", "-m", "v1")
    git("add", "-A")
    git("commit", "-q", "-m", "v1 and a Jest snapshot")
    return dvc_repo


def test_commands_skip_jest_snapshots(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    repo = _repo_with_jest(dvc_repo, make_checkpoint, run_snap)

    status = json.loads(run_snap("status", "--json").stdout)
    assert [e["path"] for e in status["entries"]] == ["m.safetensors"]
    assert status["clean"]
    assert "x.test.js" not in run_snap("status").stdout

    log = json.loads(run_snap("log", "--json").stdout)
    assert {e["path"] for e in log} == {"m.safetensors"}

    want = (repo / "m.safetensors").read_bytes()
    (repo / "m.safetensors").unlink()
    run_snap("checkout", "HEAD")
    assert (repo / "m.safetensors").read_bytes() == want
    assert (repo / JEST).read_text(encoding="utf-8") == JEST_TEXT

    assert "x.test.js" not in run_snap("diff", "HEAD").stdout
    storage = run_snap("gc", "--dry-run").stdout + run_snap("du").stdout + run_snap("fsck").stdout
    assert "x.test.js" not in storage and "cannot parse pointer" not in storage
    assert (repo / JEST).read_text(encoding="utf-8") == JEST_TEXT


def test_push_skips_jest_snapshots(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap, local_remote: Path
) -> None:
    _repo_with_jest(dvc_repo, make_checkpoint, run_snap)
    pushed = json.loads(run_snap("push", "--json").stdout)
    assert pushed["snapshots"] == 1


def test_jest_snapshot_passes_the_commit_hooks(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    repo = _repo_with_jest(dvc_repo, make_checkpoint, run_snap)
    run_snap("install")
    (repo / JEST).write_text(JEST_TEXT.replace("0.91", "0.93"), encoding="utf-8")
    git("add", JEST)
    proc = git("commit", "-q", "-m", "update the Jest snapshot", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "gitsnap" not in proc.stderr


def test_a_broken_gitsnap_pointer_is_still_an_error(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    _repo_with_jest(dvc_repo, make_checkpoint, run_snap)
    pointer = dvc_repo / "m.safetensors.snap"
    pointer.write_text("gitsnap: 1\nid: not-a-snapshot-id\n", encoding="utf-8")
    proc = run_snap("status", check=False)
    assert proc.returncode == 3
    assert "m.safetensors.snap" in proc.stderr and "hint:" in proc.stderr
    assert "x.test.js" not in proc.stderr
