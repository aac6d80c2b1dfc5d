"""``checkout --to DIR`` (issue 14, point 5): one layout in every form.

Each checkpoint goes to its repository-relative path below DIR, however it
was selected: one path, several paths, a folder, no path, a registry
reference, from a subdirectory. Real git, real dvc, real stored objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gitsnap
from tests.helpers import git, make_checkpoint, run_snap

# Two checkpoints share a file name in different folders: a basename layout would clash.
CKPTS = ("models/a.safetensors", "models/sub/b.safetensors", "other/a.safetensors", "c.safetensors")


@pytest.fixture
def two_commits(dvc_repo: Path) -> dict[str, bytes]:
    """Every checkpoint saved and committed twice; the v1 bytes (HEAD~1) by path."""
    v1: dict[str, bytes] = {}
    for n in (1, 2):
        for i, rel in enumerate(CKPTS):
            ckpt = make_checkpoint(dvc_repo / rel, seed=i, modify=("head",) if n == 2 else ())
            if n == 1:
                v1[rel] = ckpt.read_bytes()
        run_snap("save", *CKPTS, "-m", f"v{n}")
        git("add", "-A")
        git("commit", "-q", "-m", f"v{n}")
    return v1


def _written(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_every_form_writes_the_repository_path_below_dir(
    dvc_repo: Path, two_commits: dict[str, bytes], tmp_path: Path
) -> None:
    v1 = two_commits
    head = {rel: (dvc_repo / rel).read_bytes() for rel in CKPTS}
    forms = {
        "one": (["models/a.safetensors"], ["models/a.safetensors"]),
        "several": (["models/sub/b.safetensors", "c.safetensors"],
                    ["models/sub/b.safetensors", "c.safetensors"]),
        "folder": (["models"], ["models/a.safetensors", "models/sub/b.safetensors"]),
        "folder-slash": (["models/sub/"], ["models/sub/b.safetensors"]),
        "none": ([], list(CKPTS)),
    }  # fmt: skip
    for form, (paths, expected) in forms.items():
        out = tmp_path / form
        res = json.loads(run_snap("checkout", "HEAD~1", *paths, "--to", out, "--json").stdout)
        assert _written(out) == {rel: v1[rel] for rel in expected}, form
        assert sorted(e["target"] for e in res) == sorted(str(out / rel) for rel in expected)
    # "--" between revision and paths is the same form
    run_snap("checkout", "HEAD~1", "--to", tmp_path / "dashdash", "--", "other/a.safetensors")
    assert _written(tmp_path / "dashdash") == {"other/a.safetensors": v1["other/a.safetensors"]}
    # the work tree's own pointers (no revision) export the same way
    run_snap("checkout", "models/a.safetensors", "--to", tmp_path / "worktree")
    assert _written(tmp_path / "worktree") == {"models/a.safetensors": head["models/a.safetensors"]}
    assert {rel: (dvc_repo / rel).read_bytes() for rel in CKPTS} == head  # work tree untouched


def test_from_a_subdirectory_dir_is_relative_to_it_paths_stay_the_repositorys(
    dvc_repo: Path, two_commits: dict[str, bytes]
) -> None:
    sub = dvc_repo / "models"
    run_snap("checkout", "HEAD~1", "sub/b.safetensors", "--to", "exp", cwd=sub)
    assert _written(sub / "exp") == {
        "models/sub/b.safetensors": two_commits["models/sub/b.safetensors"]
    }


def test_a_registry_reference_and_export_use_the_same_layout(
    dvc_repo: Path, two_commits: dict[str, bytes], tmp_path: Path
) -> None:
    git("tag", "-a", "b@v1.0.0", "-m", "b v1", "HEAD~1")  # GTO's tag: model b = models/sub/b
    run_snap("checkout", "b@v1.0.0", "--to", tmp_path / "ref")
    want = {"models/sub/b.safetensors": two_commits["models/sub/b.safetensors"]}
    assert _written(tmp_path / "ref") == want
    res = gitsnap.export("models/sub/b.safetensors", "HEAD~1", to=tmp_path / "api")
    assert _written(tmp_path / "api") == want
    assert res.target == str(tmp_path / "api" / "models/sub/b.safetensors")
