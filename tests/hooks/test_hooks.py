"""The git hooks end to end (issue 6, points 2-4 and 6).

Every scenario installs the shims with ``git snap install`` and drives them
with the real ``git commit``, ``git push`` (to a bare repository, weights to a
local-folder DVC remote), ``git checkout`` and ``git merge``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests import helpers
from tests.helpers import git, run_snap

ZERO = "0" * 40


# --------------------------------------------------------------------------
# helpers


def ckpt(path: Path, head: float = 0.0, *, rows: int = 64) -> Path:
    """A small safetensors checkpoint: a fixed body and a head filled with ``head``."""
    return helpers.write_safetensors(
        path,
        {
            "body.weight": np.arange(rows * 64, dtype=np.float32).reshape(rows, 64),
            "head.weight": np.full((8, 64), head, dtype=np.float32),
        },
    )


def save(repo: Path, rel: str, head: float, message: str | None = None) -> str:
    """Write and ``git snap save`` checkpoint ``rel``, commit it if ``message``; its snapshot id."""
    ckpt(repo / rel, head)
    run_snap("save", rel, cwd=repo)
    if message is not None:
        git("add", rel + ".snap", ".gitignore", cwd=repo)
        git("commit", "-q", "-m", message, cwd=repo)
    return pointer(repo, rel)["id"]


def pointer(repo: Path, rel: str, rev: str | None = None) -> dict:
    raw = (
        git("show", f"{rev}:{rel}.snap", cwd=repo).stdout
        if rev
        else (repo / (rel + ".snap")).read_text()
    )
    return yaml.safe_load(raw)


def store(repo: Path) -> Path:
    return repo / ".dvc" / "cache" / "gitsnap" / "blake3"


def tensor(ptr: dict, name: str) -> dict:
    return next(t for t in ptr["tensors"] if t["name"] == name)


def oids(ptr: dict) -> set[str]:
    return {e["oid"] for e in [*ptr["tensors"], *ptr["blobs"]] if not e.get("view")}


def remote_oids(remote: Path) -> set[str]:
    root = remote / "gitsnap" / "blake3"
    return {p.parent.name + p.name for p in root.glob("??/*")} if root.is_dir() else set()


def drop_object(repo: Path, oid: str) -> None:
    path = store(repo) / oid[:2] / oid[2:]
    path.chmod(0o644)
    path.unlink()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def commit(repo: Path, message: str, *args: str) -> subprocess.CompletedProcess[str]:
    return git("commit", "-q", "-m", message, *args, cwd=repo, check=False)


def head(repo: Path, rev: str = "HEAD") -> str:
    return git("rev-parse", rev, cwd=repo).stdout.strip()


@pytest.fixture
def repo(dvc_repo: Path) -> Path:
    """A DVC project with gitsnap's hooks installed."""
    run_snap("install", cwd=dvc_repo)
    return dvc_repo


# --------------------------------------------------------------------------
# pre-commit


def test_commit_of_a_pointer_whose_objects_are_not_stored_is_refused(repo: Path) -> None:
    save(repo, "m.safetensors", 1.0)
    ptr = pointer(repo, "m.safetensors")
    drop_object(repo, tensor(ptr, "head.weight")["oid"])
    git("add", "m.safetensors.snap", ".gitignore")
    proc = commit(repo, "m")
    assert proc.returncode == 1
    assert "m.safetensors.snap: 1 of 3 object(s) of snapshot" in proc.stderr
    assert "not in the local store" in proc.stderr
    assert "hint: git snap fetch" in proc.stderr and "git snap save m.safetensors" in proc.stderr
    assert "git commit --no-verify" in proc.stderr
    assert git("log", "--format=%s").stdout.split() == ["init"]
    run_snap("save", "m.safetensors")  # the checkpoint is still here: re-saving stores it again
    assert commit(repo, "m").returncode == 0


def test_a_staged_pointer_older_than_its_checkpoint_is_refused(repo: Path) -> None:
    save(repo, "m.safetensors", 1.0)
    git("add", "m.safetensors.snap", ".gitignore")
    ckpt(repo / "m.safetensors", 2.0)  # trained on, not saved
    proc = commit(repo, "m")
    assert proc.returncode == 1
    assert "m.safetensors changed since its pointer was saved" in proc.stderr
    assert "hint: git snap save m.safetensors && git add m.safetensors.snap" in proc.stderr

    run_snap("save", "m.safetensors")  # saved, but the new pointer is not staged
    proc = commit(repo, "m")
    assert proc.returncode == 1
    assert "the pointer in the work tree records" in proc.stderr
    assert "hint: git add m.safetensors.snap" in proc.stderr

    git("add", "m.safetensors.snap")
    assert commit(repo, "m").returncode == 0
    assert tensor(pointer(repo, "m.safetensors", "HEAD"), "head.weight")["mean"] == 2.0


def test_the_check_reads_the_index_git_commits(repo: Path) -> None:
    """``git commit -a`` and ``git commit PATH`` commit a temporary index (GIT_INDEX_FILE)."""
    save(repo, "m.safetensors", 1.0, "v1")
    ckpt(repo / "m.safetensors", 2.0)
    run_snap("save", "m.safetensors")  # the new pointer is in the work tree only
    ckpt(repo / "m.safetensors", 3.0)  # and the checkpoint moved on again
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    # Only code.py is staged in the default index, and the pointer there is HEAD's:
    # a plain commit is consistent (it warns that the checkpoint changed).
    # `commit -a` stages the stale pointer into a temporary index: refused.
    proc = commit(repo, "all", "-a")
    assert proc.returncode == 1, proc.stderr
    assert "m.safetensors changed since its pointer was saved" in proc.stderr
    # `commit code.py` commits HEAD + code.py only: nothing stale in that index.
    proc = commit(repo, "code", "code.py")
    assert proc.returncode == 0, proc.stderr
    assert "warning: m.safetensors changed since its pointer was saved" in proc.stderr
    assert git("show", "--name-only", "--format=", "HEAD").stdout.split() == ["code.py"]


def test_raw_weight_files_are_refused_whatever_their_size(repo: Path) -> None:
    names = ["a.safetensors", "b.pt", "c.pth", "d.bin", "e.ckpt", "sub/f.PT"]
    for name in names:
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_bytes(b"\x01" * 2048)
    (repo / "ok.txt").write_text("fine\n")
    git("add", *names, "ok.txt")
    proc = commit(repo, "raw")
    assert proc.returncode == 1
    for name in names:
        assert f"{name} is a raw weight file" in proc.stderr
        assert f"hint: git rm --cached {name} && git snap save {name}" in proc.stderr
    assert "ok.txt" not in proc.stderr
    assert git("log", "--format=%s").stdout.split() == ["init"]


def test_large_files_are_refused_over_the_configured_size(repo: Path) -> None:
    (repo / "data.csv").write_bytes(b"1,2\n" * (3 * 1024 * 1024))  # 12 MiB
    git("add", "data.csv")
    proc = commit(repo, "big")
    assert proc.returncode == 1
    assert "data.csv is 12.0 MiB, over gitsnap.maxFileSize (10.0 MiB)" in proc.stderr
    assert "git config gitsnap.maxFileSize" in proc.stderr
    # `git -c` reaches the hook (GIT_CONFIG_PARAMETERS is kept); 0 turns the rule off.
    assert (
        git("-c", "gitsnap.maxFileSize=20m", "commit", "-q", "-m", "big", check=False).returncode
        == 0
    )
    (repo / "small.csv").write_bytes(b"x" * 2048)
    git("add", "small.csv")
    git("config", "gitsnap.maxFileSize", "1k")
    proc = commit(repo, "small")
    assert (
        proc.returncode == 1
        and "small.csv is 2.0 KiB, over gitsnap.maxFileSize (1.0 KiB)" in proc.stderr
    )
    git("config", "gitsnap.maxFileSize", "0")
    assert commit(repo, "small").returncode == 0
    git("config", "gitsnap.maxFileSize", "lots")
    (repo / "more.csv").write_text("x")
    git("add", "more.csv")
    proc = commit(repo, "bad config")
    assert proc.returncode != 0 and "gitsnap.maxFileSize is not a valid int" in proc.stderr


def test_exceptions_attribute_lfs_pointers_and_other_snap_files(repo: Path) -> None:
    (repo / "fixtures").mkdir()
    (repo / "fixtures" / "golden.bin").write_bytes(b"\x02" * 4096)
    (repo / ".gitattributes").write_text("fixtures/*.bin gitsnap-allow-raw\n")
    (repo / "lfs.bin").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 123456789\n"
    )
    (repo / "__snapshots__").mkdir()
    (repo / "__snapshots__" / "App.test.js.snap").write_text("exports[`renders 1`] = `<div />`;\n")
    git("add", ".gitattributes", "fixtures", "lfs.bin", "__snapshots__")
    proc = commit(repo, "allowed")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_a_checkpoint_gitsnap_tracks_cannot_be_added_to_git(repo: Path) -> None:
    save(repo, "models/final.weights", 1.0, "v1")  # an extension the raw rule does not know
    git("add", "-f", "models/final.weights")
    proc = commit(repo, "oops")
    assert proc.returncode == 1
    assert (
        "models/final.weights is a checkpoint that gitsnap tracks (models/final.weights.snap)"
        in proc.stderr
    )
    assert "git rm --cached -r models/final.weights" in proc.stderr


def test_a_clean_commit_is_quiet(repo: Path) -> None:
    save(repo, "m.safetensors", 1.0)
    git("add", "m.safetensors.snap", ".gitignore")
    proc = commit(repo, "m")
    assert proc.returncode == 0 and proc.stderr == ""


# --------------------------------------------------------------------------
# pre-push


@pytest.fixture
def pushing(repo: Path, local_remote: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(repo, DVC remote folder, bare origin) with the hooks installed."""
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", origin)
    git("remote", "add", "origin", origin, cwd=repo)
    return repo, local_remote, origin


def test_push_uploads_every_new_snapshot_and_the_notes_first(
    pushing: tuple[Path, Path, Path],
) -> None:
    repo, remote, origin = pushing
    save(repo, "m.safetensors", 1.0, "v1")
    v1 = pointer(repo, "m.safetensors")
    save(repo, "m.safetensors", 2.0, "v2")
    v2 = pointer(repo, "m.safetensors")
    save(repo, "other.safetensors", 5.0, "other")
    other = pointer(repo, "other.safetensors")
    run_snap("metrics", "add", "accuracy=0.91")
    ckpt(repo / "m.safetensors", 3.0)
    run_snap("save", "m.safetensors")  # saved, not committed: not part of the push
    unpushed = oids(pointer(repo, "m.safetensors")) - oids(v1) - oids(v2) - oids(other)

    proc = git("push", "origin", "main", check=False)
    assert proc.returncode == 0, proc.stderr
    want = oids(v1) | oids(v2) | oids(other)  # the intermediate v1 too, not only the tip
    assert remote_oids(remote) == want
    assert not unpushed & remote_oids(remote)
    assert f"uploaded {len(want)} object(s)" in proc.stderr
    assert "pushed the metrics notes (refs/notes/gitsnap)" in proc.stderr
    assert git("rev-parse", "main", cwd=origin).stdout.strip() == head(repo)
    note = git("notes", "--ref=refs/notes/gitsnap", "show", "main", cwd=origin).stdout
    assert "accuracy: 0.91" in note

    # The next push scans only the new commits: one new tensor object.
    save(repo, "m.safetensors", 4.0, "v4")
    proc = git("push", "origin", "main", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "uploaded 1 object(s)" in proc.stderr
    assert oids(pointer(repo, "m.safetensors")) <= remote_oids(remote)
    # Nothing new: quiet, and no remote is opened.
    proc = git("push", "origin", "main", check=False)
    assert proc.returncode == 0 and "gitsnap" not in proc.stderr


def test_push_is_stopped_when_the_upload_fails(pushing: tuple[Path, Path, Path]) -> None:
    repo, remote, origin = pushing
    save(repo, "m.safetensors", 1.0, "v1")
    git("push", "-q", "origin", "main")
    before = git("rev-parse", "main", cwd=origin).stdout.strip()
    save(repo, "m.safetensors", 2.0, "v2")
    lost = tensor(pointer(repo, "m.safetensors"), "head.weight")[
        "oid"
    ]  # the new head: on neither side
    drop_object(repo, lost)
    proc = git("push", "origin", "main", check=False)
    assert proc.returncode != 0
    assert "could not upload the weights of m.safetensors to the DVC remote" in proc.stderr
    assert "in neither the local store nor" in proc.stderr
    assert "push stopped" in proc.stderr and "git push --no-verify" in proc.stderr
    assert git("rev-parse", "main", cwd=origin).stdout.strip() == before  # git pushed nothing
    assert lost not in remote_oids(remote)


def test_push_without_a_weight_remote_is_stopped_with_a_hint(repo: Path, bare_origin: Path) -> None:
    save(repo, "m.safetensors", 1.0, "v1")
    proc = git("push", "origin", "main", check=False)
    assert proc.returncode != 0
    assert "no DVC remote is configured" in proc.stderr
    assert "hint: dvc remote add -d storage URL" in proc.stderr
    assert git("rev-parse", "--verify", "main", cwd=bare_origin, check=False).returncode != 0


def test_push_of_code_only_needs_no_weight_remote_and_no_dvc(repo: Path, bare_origin: Path) -> None:
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    commit(repo, "code")
    proc = git("push", "origin", "main", check=False)
    assert proc.returncode == 0 and proc.stderr.count("gitsnap") == 0
    # The same run in-process: nothing heavy was imported.
    line = f"refs/heads/main {head(repo)} refs/heads/main {head(repo)}\n"
    probe = (
        "import sys\nfrom gitsnap import hooks\n"
        f"r = hooks.run('pre-push', ['origin', 'x'], stdin={line.encode()!r})\n"
        "heavy = ('torch', 'dvc', 'numpy', 'yaml')\n"
        "print(r.exit_code, sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = helpers.run([sys.executable, "-c", probe], cwd=repo).stdout.strip()
    assert out == "0 []"


def test_pushing_a_branch_scans_only_commits_the_git_remote_lacks(
    pushing: tuple[Path, Path, Path],
) -> None:
    repo, remote, _ = pushing
    save(repo, "m.safetensors", 1.0, "v1")
    git("push", "-q", "origin", "main")
    # v1's head object vanishes from the weight remote. A push of a branch on top
    # of main must not scan main's commits again (git-lfs's range: LOCAL --not
    # --remotes=origin), so it stays missing -- proof of the range, not a wish.
    v1_head = tensor(pointer(repo, "m.safetensors"), "head.weight")["oid"]
    (remote / "gitsnap" / "blake3" / v1_head[:2] / v1_head[2:]).unlink()
    git("checkout", "-q", "-b", "feature")
    save(repo, "m.safetensors", 2.0, "feature head")
    proc = git("push", "origin", "feature", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "uploaded 1 object(s)" in proc.stderr and "2 already there" in proc.stderr
    assert oids(pointer(repo, "m.safetensors")) <= remote_oids(remote)
    assert v1_head not in remote_oids(remote)
    # Deleting a remote branch uploads nothing.
    proc = git("push", "origin", ":feature", check=False)
    assert proc.returncode == 0 and "uploaded" not in proc.stderr


# --------------------------------------------------------------------------
# post-checkout / post-merge


def branches(repo: Path) -> dict[str, str]:
    """main: v1 (head 1.0); feature: v2 (head 2.0); the sha256 of each checkpoint version."""
    save(repo, "m.safetensors", 1.0, "v1")
    v1 = sha256(repo / "m.safetensors")
    git("checkout", "-q", "-b", "feature")
    save(repo, "m.safetensors", 2.0, "v2")
    v2 = sha256(repo / "m.safetensors")
    return {"v1": v1, "v2": v2}


def test_branch_checkout_restores_the_checkpoint_of_the_new_head(repo: Path) -> None:
    sums = branches(repo)
    proc = git("checkout", "main", check=False)
    assert proc.returncode == 0
    assert sha256(repo / "m.safetensors") == sums["v1"]
    assert "gitsnap: restored m.safetensors (snapshot" in proc.stderr
    proc = git("checkout", "feature", check=False)
    assert sha256(repo / "m.safetensors") == sums["v2"]
    assert run_snap("status").stdout.startswith("clean")
    # Same commit again: nothing to do, nothing said.
    proc = git("checkout", "-b", "again", check=False)
    assert proc.returncode == 0 and "gitsnap" not in proc.stderr


def test_a_checkpoint_absent_from_the_work_tree_is_restored(repo: Path) -> None:
    sums = branches(repo)
    git("checkout", "-q", "main")
    (repo / "m.safetensors").unlink()
    git("checkout", "-q", "feature")
    assert sha256(repo / "m.safetensors") == sums["v2"]


def test_file_checkouts_do_not_restore(repo: Path) -> None:
    sums = branches(repo)
    proc = git("checkout", "main", "--", "m.safetensors.snap", check=False)  # flag 0: HEAD stays
    assert proc.returncode == 0 and "gitsnap" not in proc.stderr
    assert sha256(repo / "m.safetensors") == sums["v2"]


def test_unsaved_changes_are_never_overwritten(repo: Path) -> None:
    branches(repo)
    ckpt(repo / "m.safetensors", 9.0)  # training went on; not saved
    mine = sha256(repo / "m.safetensors")
    proc = git("checkout", "main", check=False)
    assert proc.returncode == 0  # git's checkout happened; the hook only warns
    assert "warning: kept m.safetensors: it has changes that are not saved" in proc.stderr
    assert "hint: git snap save m.safetensors" in proc.stderr and "--force" in proc.stderr
    assert sha256(repo / "m.safetensors") == mine


def test_merge_restores_the_merged_checkpoint(repo: Path) -> None:
    sums = branches(repo)
    git("checkout", "-q", "main")
    (repo / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    commit(repo, "code on main")
    proc = git("merge", "--no-edit", "feature", check=False)  # a real merge commit
    assert proc.returncode == 0, proc.stderr
    assert len(git("log", "-1", "--format=%P").stdout.split()) == 2
    assert sha256(repo / "m.safetensors") == sums["v2"]
    assert "gitsnap: restored m.safetensors" in proc.stderr
    git("checkout", "-q", "-b", "back", "HEAD~1")  # main before the merge: v1
    assert sha256(repo / "m.safetensors") == sums["v1"]
    proc = git("merge", "--ff-only", "main", check=False)  # a fast-forward
    assert proc.returncode == 0
    assert sha256(repo / "m.safetensors") == sums["v2"]


def test_missing_objects_are_fetched_only_with_auto_fetch(
    pushing: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo, _, origin = pushing
    sums = branches(repo)
    git("push", "-q", "origin", "main", "feature")
    clone = tmp_path / "clone"
    git("clone", "-q", "-b", "main", str(origin), str(clone))
    run_snap("install", cwd=clone)
    proc = git("checkout", "feature", cwd=clone, check=False)
    assert proc.returncode == 0
    assert "not restored (objects not in the local store): m.safetensors" in proc.stderr
    assert "hint: git snap pull" in proc.stderr and "gitsnap.autoFetch" in proc.stderr
    assert not (clone / "m.safetensors").exists()
    git("config", "gitsnap.autoFetch", "true", cwd=clone)
    proc = git("checkout", "main", cwd=clone, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "fetched 3 object(s)" in proc.stderr
    assert sha256(clone / "m.safetensors") == sums["v1"]
    proc = git("checkout", "feature", cwd=clone, check=False)
    assert "fetched 1 object(s)" in proc.stderr  # the body is shared with v1
    assert sha256(clone / "m.safetensors") == sums["v2"]


def test_nothing_to_restore_imports_nothing_heavy(repo: Path) -> None:
    branches(repo)
    run_snap("status")  # the stat cache knows the checkpoint
    sha = head(repo)
    probe = (
        "import sys\nfrom gitsnap.cli.main import main\n"
        f"code = main(['hook', 'post-checkout', '{sha}', '{sha}', '1'])\n"
        "code2 = main(['hook', 'post-merge', '0'])\n"
        "heavy = ('torch', 'dvc', 'numpy', 'safetensors', 'yaml')\n"
        "print(code, code2, sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = helpers.run([sys.executable, "-c", probe], cwd=repo)
    assert proc.stdout.strip() == "0 0 []"
    assert proc.stderr == ""
