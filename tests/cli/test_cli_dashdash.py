"""``--`` on the command line: split once, before any command parses its options.

Through the real ``git snap`` in real repositories: what follows the first
``--`` is a path for checkout, pull and diff (never a revision, even when a
folder of the revision's name exists), and the end of the options elsewhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tests.helpers import git, run_snap, write_safetensors


def _weights(path: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    tensors = {f"layer.{i}.weight": rng.standard_normal(256, dtype=np.float32) for i in range(3)}
    write_safetensors(path, tensors)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _release_and_head(repo: Path) -> tuple[str, str]:
    """m.safetensors: v1 tagged ``release``, v2 at HEAD; a folder ``release/`` in the work tree.

    The folder makes ``release`` a word that names both a revision and a path:
    only ``--`` tells them apart (as for git).
    """
    v1 = _weights(repo / "m.safetensors", seed=1)
    run_snap("save", "m.safetensors", "-m", "v1")
    (repo / "release").mkdir()
    (repo / "release" / "NOTES.txt").write_text("release notes\n")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    git("tag", "release")
    v2 = _weights(repo / "m.safetensors", seed=2)
    run_snap("save", "m.safetensors", "-m", "v2")
    git("add", "-A")
    git("commit", "-q", "-m", "v2")
    return v1, v2


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkout_rev_dashdash_path_restores_that_revision(dvc_repo: Path) -> None:
    v1, v2 = _release_and_head(dvc_repo)
    assert _sha(dvc_repo / "m.safetensors") == v2
    run_snap("checkout", "release", "--", "m.safetensors")
    assert _sha(dvc_repo / "m.safetensors") == v1
    assert "message: v1" in (dvc_repo / "m.safetensors.snap").read_text()
    # back to the work tree's pointer (HEAD's), with the path after "--" only
    git("checkout", "--", "m.safetensors.snap")
    (dvc_repo / "m.safetensors").unlink()
    run_snap("checkout", "--", "m.safetensors")
    assert _sha(dvc_repo / "m.safetensors") == v2


def test_checkout_dashdash_word_is_never_a_revision(dvc_repo: Path) -> None:
    _release_and_head(dvc_repo)
    proc = run_snap("checkout", "--", "gone.safetensors", check=False)
    assert proc.returncode == 3 and "gone.safetensors" in proc.stderr
    assert "unknown revision" not in proc.stderr, proc.stderr
    # without "--", a word that names no path is a revision, as in git
    proc = run_snap("checkout", "nosuchrev", check=False)
    assert proc.returncode == 3 and "unknown revision: nosuchrev" in proc.stderr


def test_pull_rev_dashdash_path_in_a_fresh_clone(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    v1, v2 = _release_and_head(dvc_repo)
    run_snap("push", "--all")
    clone = tmp_path / "clone"
    git("clone", "-q", dvc_repo, clone)
    assert not (clone / "m.safetensors").exists()

    run_snap("pull", "release", "--", "m.safetensors", cwd=clone)
    assert _sha(clone / "m.safetensors") == v1
    git("checkout", "--", "m.safetensors.snap", cwd=clone)
    (clone / "m.safetensors").unlink()
    run_snap("pull", "--", "m.safetensors", cwd=clone)
    assert _sha(clone / "m.safetensors") == v2


def test_pull_dashdash_word_is_never_a_revision(dvc_repo: Path, local_remote: Path) -> None:
    _release_and_head(dvc_repo)
    run_snap("push")
    # "HEAD" after "--" is a path: there is no checkpoint of that name
    proc = run_snap("pull", "--", "HEAD", check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("error: ") and "HEAD" in proc.stderr
    assert "unknown revision" not in proc.stderr


def test_diff_dashdash_keeps_revisions_and_paths_apart(dvc_repo: Path) -> None:
    _release_and_head(dvc_repo)
    # "release" before "--" is a revision although a folder has that name
    proc = run_snap("diff", "release", "HEAD", "--", "m.safetensors", "--json")
    assert '"m.safetensors"' in proc.stdout or "m.safetensors" in proc.stdout
    # and options after "--" are paths, not options: no such checkpoint
    proc = run_snap("diff", "release", "HEAD", "--", "--json", check=False)
    assert not proc.stdout.lstrip().startswith("{")


def test_dashdash_ends_the_options_of_commands_without_paths_after_it(
    dvc_repo: Path,
) -> None:
    _weights(dvc_repo / "-odd.safetensors", seed=3)
    run_snap("save", "-m", "odd name", "--", "-odd.safetensors")
    assert (dvc_repo / "-odd.safetensors.snap").exists()
    out = run_snap("status", "--json", "--", "-odd.safetensors").stdout
    assert "-odd.safetensors" in out
    proc = run_snap("du", "--", "x", check=False)
    assert proc.returncode == 2
    assert proc.stderr == "error: git snap du takes no arguments after --\nhint: git snap du -h\n"
