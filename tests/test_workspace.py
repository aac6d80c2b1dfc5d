"""Where the object store is: every worktree of a repository shares one (issue 14, point 3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from gitsnap.workspace import Workspace
from tests import helpers
from tests.helpers import git, run_snap


def _ckpt(path: Path, head: float) -> None:
    helpers.write_safetensors(
        path,
        {
            "body.weight": np.arange(64 * 64, dtype=np.float32).reshape(64, 64),
            "head.weight": np.full((8, 64), head, dtype=np.float32),
        },
    )


def _store_files(store: Path) -> dict[str, int]:
    return {
        p.relative_to(store).as_posix(): p.stat().st_size for p in store.rglob("*") if p.is_file()
    }


def _two_branches(repo: Path) -> bytes:
    """main holds one snapshot of m.safetensors, feature another; HEAD is main.
    Returns feature's checkpoint bytes."""
    run_snap("install", cwd=repo)
    _ckpt(repo / "m.safetensors", 0.0)
    run_snap("save", "m.safetensors", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "v1", cwd=repo)
    git("checkout", "-q", "-b", "feature", cwd=repo)
    _ckpt(repo / "m.safetensors", 1.0)
    run_snap("save", "m.safetensors", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "v2", cwd=repo)
    feature = (repo / "m.safetensors").read_bytes()
    git("checkout", "-q", "main", cwd=repo)
    return feature


def test_a_new_worktree_restores_from_the_main_store_without_a_remote(
    dvc_repo: Path, tmp_path: Path
) -> None:
    feature = _two_branches(dvc_repo)
    assert helpers.dvc("remote", "list", cwd=dvc_repo).stdout.strip() == ""  # no remote at all
    store = dvc_repo / ".dvc" / "cache" / "gitsnap" / "blake3"
    before = _store_files(store)
    wt = tmp_path / "wt"
    proc = git("worktree", "add", "-q", wt, "feature", cwd=dvc_repo)
    assert proc.returncode == 0
    # The post-checkout hook restored feature's weights, byte for byte, from the shared store.
    assert hashlib.sha256((wt / "m.safetensors").read_bytes()).digest() == (
        hashlib.sha256(feature).digest()
    )
    assert _store_files(store) == before  # nothing copied, nothing downloaded
    assert not (wt / ".dvc" / "cache" / "gitsnap").exists()  # no second store
    ws = Workspace.discover(wt)
    assert ws.store.root == store.resolve()
    assert ws.common_dir == (dvc_repo / ".git").resolve()
    assert run_snap("status", cwd=wt).stdout.startswith("clean")
    # A snapshot saved in the worktree lands in the one store, where main's worktree reads it.
    _ckpt(wt / "m.safetensors", 2.0)
    run_snap("save", "m.safetensors", "-m", "in the worktree", cwd=wt)
    git("add", "-A", cwd=wt)
    git("commit", "-q", "-m", "v3", cwd=wt)
    assert len(_store_files(store)) > len(before)
    run_snap("checkout", "feature", "m.safetensors", "--to", tmp_path / "out", cwd=dvc_repo)
    assert (tmp_path / "out" / "m.safetensors").read_bytes() == (wt / "m.safetensors").read_bytes()
    # gc from the linked worktree sees the cache as this repository's own, and keeps
    # what every worktree uses.
    run_snap("gc", cwd=wt)
    assert run_snap("fsck", cwd=dvc_repo).returncode == 0
    run_snap("checkout", "main", "m.safetensors", "--to", tmp_path / "main", cwd=wt)


def test_an_explicit_cache_dir_of_the_worktree_is_respected(dvc_repo: Path, tmp_path: Path) -> None:
    _two_branches(dvc_repo)
    wt = tmp_path / "wt"
    git("worktree", "add", "-q", "--no-checkout", wt, "feature", cwd=dvc_repo)
    git("checkout", "-q", "feature", "--", ".", cwd=wt)  # files only: no hook restores
    own = tmp_path / "own-cache"
    helpers.dvc("cache", "dir", "--local", own, cwd=wt)
    ws = Workspace.discover(wt)
    assert ws.cache_dir == own
    assert ws.store.root == own / "gitsnap" / "blake3"
    # The main worktree keeps its default cache.
    assert Workspace.discover(dvc_repo).cache_dir == dvc_repo / ".dvc" / "cache"
