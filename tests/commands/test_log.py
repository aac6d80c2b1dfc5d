"""``git snap log`` (issue 14, point 5): history through merges, notes beside the pointer's
metrics, registry tags and stages. Real git merges, real notes, real GTO-format tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import git, make_checkpoint, run, run_snap

CKPT = "models/model.safetensors"


def _commit(repo: Path, message: str, when: int, *args: str) -> str:
    """Commit at a fixed time (so the order by date is known), return its id."""
    date = f"@{1_700_000_000 + when * 3600} +0000"
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    run(["git", "commit", "-q", "-m", message, *args], cwd=repo, env=env)
    return git("rev-parse", "HEAD", cwd=repo).stdout.strip()


def _save(repo: Path, seed: int, message: str, *values: str) -> str:
    """Save a fine-tune; ``values``: ``-M name=v`` metrics, ``-P name=v`` params."""
    make_checkpoint(repo / CKPT, seed=0, modify=("head",) if seed else (), modify_seed=seed)
    run_snap("save", CKPT, "-m", message, *values, cwd=repo)
    git("add", "-A", cwd=repo)
    return json.loads(run_snap("show", CKPT, "--json", cwd=repo).stdout)["pointer"]["id"]


def _log(repo: Path, *args: str) -> Any:
    return json.loads(run_snap("log", *args, "--json", cwd=repo).stdout)


def test_log_follows_both_parents_of_a_merge(dvc_repo: Path) -> None:
    repo = dvc_repo
    s_base = _save(repo, 0, "base", "-M", "acc=0.8")
    c_base = _commit(repo, "base", 1)
    git("checkout", "-q", "-b", "feat", cwd=repo)
    s_feat = _save(repo, 2, "feat", "-M", "acc=0.9")
    c_feat = _commit(repo, "feat", 3)
    git("checkout", "-q", "main", cwd=repo)
    run_snap("checkout", cwd=repo)
    s_main = _save(repo, 1, "main", "-M", "acc=0.85")
    c_main = _commit(repo, "main", 2)
    # The merge keeps main's snapshot: git's default simplification would hide feat's commit.
    git("merge", "-q", "--no-commit", "-s", "ours", "feat", cwd=repo)
    c_merge = _commit(repo, "merge feat", 4)
    assert git("log", "--format=%H", "--", CKPT + ".snap", cwd=repo).stdout.split() == [
        c_main,
        c_base,
    ]  # what plain git log shows: feat is gone

    log = _log(repo, CKPT)
    assert [(e["commit"], e["snapshot_id"]) for e in log] == [
        (c_feat, s_feat),  # newest commit date first (--date-order), from either parent
        (c_main, s_main),
        (c_base, s_base),
    ]  # the merge itself made no snapshot (it kept main's): listed once, at main's commit
    assert c_merge not in {e["commit"] for e in log}
    assert [e["commit"] for e in _log(repo)] == [c_feat, c_main, c_base]  # all checkpoints

    # A registry tag on such a merge lists it (with main's snapshot), so no tag is hidden.
    run_snap("tag", "model", "v2.0.0", c_merge, cwd=repo)
    log = _log(repo, CKPT)
    assert [(e["commit"], e["snapshot_id"], e["tags"]) for e in log[:2]] == [
        (c_merge, s_main, ["model@v2.0.0"]),
        (c_feat, s_feat, []),
    ]

    # A merge that makes its own snapshot (re-saved after merging) is listed too.
    git("reset", "-q", "--hard", "HEAD~1", cwd=repo)
    git("merge", "-q", "--no-commit", "-s", "ours", "feat", cwd=repo)
    s_merged = _save(repo, 3, "merged")
    c_merged = _commit(repo, "merge feat, retrained", 5)
    log = _log(repo, CKPT)
    assert [(e["commit"], e["snapshot_id"]) for e in log] == [
        (c_merged, s_merged),
        (c_feat, s_feat),
        (c_main, s_main),
        (c_base, s_base),
    ]
    assert "merge feat, retrained" in run_snap("log", CKPT, cwd=repo).stdout


def test_log_shows_notes_by_source_and_registry_tags_and_stages(dvc_repo: Path) -> None:
    repo = dvc_repo
    _save(repo, 0, "v1", "-M", "acc=0.8", "-P", "lr=0.1")
    c1 = _commit(repo, "v1", 1)
    _save(repo, 1, "v2", "-M", "acc=0.85")
    c2 = _commit(repo, "v2", 2)
    # measured later, attached to the commits as notes
    run_snap("metrics", "add", "--rev", c1, "acc=0.81", "f1=0.7", cwd=repo)
    run_snap("metrics", "add", "--rev", c2, "--param", "eval.batch=64", "f1=0.75", cwd=repo)
    run_snap("tag", "model", "v1.0.0", c1, cwd=repo)
    run_snap("tag", "model", "v1.1.0", c2, cwd=repo)
    run_snap("tag", "model", "--stage", "prod", "model@v1.0.0", cwd=repo)
    run_snap("tag", "model", "--stage", "staging", "model@v1.1.0", cwd=repo)

    new, old = _log(repo, CKPT)
    assert (new["commit"], old["commit"]) == (c2, c1)
    assert old["metrics"] == {"acc": 0.8} and old["params"] == {"lr": 0.1}  # the pointer's
    assert old["note"] == {"metrics": {"acc": 0.81, "f1": 0.7}, "params": {}}
    assert new["note"] == {"metrics": {"f1": 0.75}, "params": {"eval.batch": 64}}
    assert old["tags"] == ["model@v1.0.0", "model#prod#1"] and old["stages"] == ["prod"]
    assert new["tags"] == ["model@v1.1.0", "model#staging#2"] and new["stages"] == ["staging"]

    text = run_snap("log", CKPT, cwd=repo).stdout
    block = text.split("\n\n")[1]  # the older snapshot
    assert "metrics (pointer): acc=0.8" in block
    assert "metrics (note):    acc=0.81  f1=0.7" in block
    assert "params (pointer):  lr=0.1" in block
    assert "registry: model@v1.0.0  model#prod#1  stages: prod" in block
    assert "params (note):     eval.batch=64" in text.split("\n\n")[0]

    # The stage moves to v1.1.0: the old snapshot keeps its tags but no longer holds prod.
    run_snap("tag", "model", "--stage", "prod", "model@v1.1.0", cwd=repo)
    new, old = _log(repo, CKPT)
    assert old["stages"] == [] and new["stages"] == ["prod", "staging"]
    assert old["tags"] == ["model@v1.0.0", "model#prod#1"]

    page = run_snap("log", CKPT, "--format", "html", cwd=repo).stdout
    assert "acc=0.81 (note, pointer 0.8)" in page and "model#prod#3" in page
    assert "stage prod" in page


def test_a_note_that_does_not_parse_is_a_problem_not_a_failure(dvc_repo: Path) -> None:
    repo = dvc_repo
    _save(repo, 0, "v1", "-M", "acc=0.8")
    c1 = _commit(repo, "v1", 1)
    git("notes", "--ref=refs/notes/gitsnap", "add", "-m", "[1, 2", c1, cwd=repo)
    proc = run_snap("log", CKPT, "--json", cwd=repo, check=False)
    [entry] = json.loads(proc.stdout)
    assert entry["commit"] == c1 and entry["note"] is None and entry["metrics"] == {"acc": 0.8}
    assert proc.returncode == 3 and f"note on {c1[:12]}" in proc.stderr


def test_a_merge_by_the_tensor_merge_driver_lists_both_sides_and_the_merge(dvc_repo: Path) -> None:
    import numpy as np

    from tests.helpers import write_safetensors

    repo = dvc_repo
    run_snap("init", cwd=repo)  # the *.snap merge driver

    def save(head: float, body: float, message: str) -> str:
        write_safetensors(repo / CKPT, {
            "head.weight": np.full((4, 8), head, dtype=np.float32),
            "body.weight": np.full((8, 8), body, dtype=np.float32),
        })  # fmt: skip
        run_snap("save", CKPT, "-m", message, cwd=repo)
        git("add", "-A", cwd=repo)
        return json.loads(run_snap("show", CKPT, "--json", cwd=repo).stdout)["pointer"]["id"]

    s_base = save(0.0, 0.0, "base")
    c_base = _commit(repo, "base", 1)
    git("checkout", "-q", "-b", "head", cwd=repo)
    s_head = save(1.0, 0.0, "tune head")
    c_head = _commit(repo, "tune head", 2)
    git("checkout", "-q", "main", cwd=repo)
    run_snap("checkout", cwd=repo)
    s_body = save(0.0, 2.0, "tune body")
    c_body = _commit(repo, "tune body", 3)
    date = f"@{1_700_000_000 + 4 * 3600} +0000"
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    run(["git", "merge", "-q", "--no-edit", "head"], cwd=repo, env=env)  # tensor by tensor
    c_merge = git("rev-parse", "HEAD", cwd=repo).stdout.strip()

    log = _log(repo, CKPT)
    assert [e["commit"] for e in log] == [c_merge, c_body, c_head, c_base]
    merged = log[0]["snapshot_id"]
    assert merged not in {s_base, s_head, s_body}  # the merge's own snapshot
    assert [e["snapshot_id"] for e in log[1:]] == [s_body, s_head, s_base]
