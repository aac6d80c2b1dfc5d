"""Paths from pointers are hostile: never into a .git or .dvc, never out of the work tree.

Each attack is played the way it reaches a user: a pointer (or a symlink)
committed on a branch, then the real ``git snap`` CLI in a subprocess. The
property test drives the one rule (:mod:`gitsnap.paths`) with generated
relative paths over a real tree holding symlinks out of the repository and
into ``.git``, and writes every path it allows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitsnap import paths
from gitsnap.errors import PathError
from gitsnap.pointer import dumps, layout_id, loads
from tests.helpers import commit_all, git, run_snap

PLANTED = "[core]\n\tfsmonitor = touch PWNED\n"


def forge(text: str, replacements: dict[str, str]) -> bytes:
    """What an attacker commits: a pointer with paths replaced and its id made consistent."""
    for old, new in replacements.items():
        text = text.replace(old, new)
    ptr = loads(text)
    entries = [*ptr.tensors, *ptr.blobs]
    new_id = layout_id(entries, ptr.size, ptr.files or None)
    return dumps(dataclasses.replace(ptr, id=new_id)).encode()


def refused(proc: object, *words: str) -> None:
    import subprocess

    assert isinstance(proc, subprocess.CompletedProcess)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "error:" in proc.stderr and "hint:" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def git_is_intact(repo: Path) -> None:
    assert (repo / ".git").is_dir()
    assert "PWNED" not in (repo / ".git" / "config").read_text()
    git("rev-parse", "--verify", "HEAD", cwd=repo)


# ------------------------------------------------------------------ the rule itself


@pytest.mark.parametrize(
    "name",
    [".git", ".GIT", ".Git.", ".git ", ".git. . ", "git~1", "GIT~1", ".git::$INDEX_ALLOCATION",
     ".g\u200cit", "\ufeff.git", ".gi\u200dt.", ".dvc", ".DVC ", "dvc~1"],
)  # fmt: skip
def test_every_spelling_of_dotgit_and_dotdvc_is_refused(name: str) -> None:
    for rel in (name, f"{name}/config", f"models/{name}/HEAD"):
        with pytest.raises(PathError) as err:
            paths.check_relpath(rel, "test")
        assert err.value.hint


@pytest.mark.parametrize("rel", ["", "/etc/passwd", "a/../b", "..", "a//b", "./a", "a/", "a\\b"])
def test_paths_that_leave_the_work_tree_are_refused(rel: str) -> None:
    with pytest.raises(PathError):
        paths.check_relpath(rel, "test")


@pytest.mark.parametrize("rel", [".gitignore", "git", ".gitx/a", "a/.github/b", "models/x.pt"])
def test_ordinary_names_pass(rel: str) -> None:
    assert paths.check_relpath(rel, "test") == rel


# ------------------------------------------------------------------ attacks through the CLI


def test_folder_pointer_naming_dotgit_config_is_never_restored(dvc_repo: Path) -> None:
    """A folder's ``files:`` naming ``.git/config`` would plant core.fsmonitor: refused."""
    (dvc_repo / "m").mkdir()
    (dvc_repo / "m" / "gitcfg").write_text(PLANTED)
    (dvc_repo / "m" / "w.bin").write_bytes(os.urandom(64))
    run_snap("save", "m")
    good = (dvc_repo / "m.snap").read_text()
    commit_all(dvc_repo, "good")
    for spelling in (".git/config", ".GIT./config", ".g\u200cit/config"):
        (dvc_repo / "m.snap").write_bytes(forge(good, {"gitcfg": spelling}))
        evil = commit_all(dvc_repo, f"evil {spelling}")
        git("reset", "-q", "--hard", "HEAD~1", cwd=dvc_repo)
        attempts = (["checkout", evil], ["checkout", "-f", evil], ["checkout", "--to", "o", evil])
        for args in attempts:
            refused(run_snap(*args, check=False), "m")
        assert not any(p.name.casefold().startswith(".g") for p in (dvc_repo / "m").iterdir())
        assert not (dvc_repo / "o").exists() or not list((dvc_repo / "o").rglob("config"))
        git_is_intact(dvc_repo)


def test_pointer_named_dotgit_snap_is_refused_even_with_force(dvc_repo: Path) -> None:
    """``.git.snap`` has checkpoint path ``.git``: the real .git must never be moved aside."""
    (dvc_repo / "w.bin").write_bytes(os.urandom(64))
    run_snap("save", "w.bin")
    good = (dvc_repo / "w.bin.snap").read_text()
    (dvc_repo / ".git.snap").write_bytes(forge(good, {"path: w.bin": "path: .git"}))
    (dvc_repo / "w.bin.snap").unlink()
    git("add", "-f", ".git.snap", cwd=dvc_repo)
    evil = commit_all(dvc_repo, "evil")
    for args in (["checkout", evil], ["checkout", "--force", evil], ["checkout", "--force"],
                 ["checkout", "--force", evil, ".git"], ["pull", "--force"]):  # fmt: skip
        proc = run_snap(*args, check=False)
        refused(proc, ".git")
        assert "git snap save .git" not in proc.stderr
        git_is_intact(dvc_repo)
    refused(run_snap("status", check=False), ".git.snap")  # never hashes the real .git
    refused(run_snap("save", ".git", check=False), ".git")
    refused(run_snap("save", ".GIT.", check=False), ".git")


def test_directory_symlink_out_of_the_repository_is_not_followed(
    dvc_repo: Path, tmp_path: Path
) -> None:
    """``models -> /anywhere`` from a branch: checkout must not write into /anywhere."""
    outside = tmp_path / "anywhere"
    outside.mkdir()
    (dvc_repo / "models").mkdir()
    (dvc_repo / "models" / "evil.bin").write_bytes(os.urandom(4096))
    run_snap("save", "models/evil.bin")
    with_pointer = commit_all(dvc_repo, "pointer")
    git("rm", "-rq", "--cached", "models", cwd=dvc_repo)
    (dvc_repo / "models" / "evil.bin").unlink()
    (dvc_repo / "models" / "evil.bin.snap").unlink()
    (dvc_repo / "models").rmdir()
    (dvc_repo / "models").symlink_to(outside)
    commit_all(dvc_repo, "symlink")
    for args in (["checkout", with_pointer], ["checkout", "--force", with_pointer],
                 ["checkout", with_pointer, "models/evil.bin"]):  # fmt: skip
        refused(run_snap(*args, check=False), "symlink", "outside the work tree")
        assert list(outside.iterdir()) == []
    # a symlink into .git is refused the same way
    (dvc_repo / "models").unlink()
    (dvc_repo / "models").symlink_to(".git")
    refused(run_snap("checkout", "--force", with_pointer, check=False), ".git")
    git_is_intact(dvc_repo)


def test_checkpoint_that_is_a_symlink_out_of_the_repository_is_not_read(
    dvc_repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"private key material")
    (dvc_repo / "model.bin").symlink_to(secret)
    refused(run_snap("save", "model.bin", check=False), "outside the work tree")
    assert not (dvc_repo / "model.bin.snap").exists()


def test_symlinked_gitignore_is_neither_read_nor_written(dvc_repo: Path, tmp_path: Path) -> None:
    """A committed ``.gitignore -> /outside`` must not be copied into a regular file."""
    outside = tmp_path / "outside-ignore"
    outside.write_text("secret line\n")
    (dvc_repo / ".gitignore").symlink_to(outside)
    commit_all(dvc_repo, "symlinked .gitignore")
    (dvc_repo / "w.bin").write_bytes(os.urandom(64))
    refused(run_snap("save", "w.bin", check=False), ".gitignore", "symlink")
    assert (dvc_repo / ".gitignore").is_symlink()
    assert outside.read_text() == "secret line\n"


def test_symlinked_gitattributes_is_refused_by_init(git_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside-attributes"
    outside.write_text("* text\n")
    (git_repo / ".gitattributes").symlink_to(outside)
    refused(run_snap("init", check=False), ".gitattributes", "symlink")
    assert (git_repo / ".gitattributes").is_symlink()
    assert outside.read_text() == "* text\n"


def test_pointer_into_the_dvc_folder_is_refused(dvc_repo: Path) -> None:
    (dvc_repo / "w.bin").write_bytes(os.urandom(64))
    run_snap("save", "w.bin")
    good = (dvc_repo / "w.bin.snap").read_text()
    (dvc_repo / ".dvc" / "cache").mkdir(exist_ok=True)
    # the attacker names the pointer file itself .dvc/cache/x.snap
    (dvc_repo / ".dvc" / "cache" / "x.snap").write_bytes(
        forge(good, {"path: w.bin": "path: .dvc/cache/x"})
    )
    git("add", "-f", ".dvc/cache/x.snap", cwd=dvc_repo)
    evil = commit_all(dvc_repo, "evil")
    (dvc_repo / ".dvc" / "cache" / "x.snap").unlink()
    refused(run_snap("checkout", "--force", evil, check=False), ".dvc")
    assert not (dvc_repo / ".dvc" / "cache" / "x").exists()


# ------------------------------------------------------------------ property


COMPONENTS = st.sampled_from(
    ["a", "b", "models", "out", "into_git", "..", ".", "", ".git", ".GIT.", "git~1", ".git ",
     ".g\u200cit", ".dvc", "config", "HEAD", "x.pt", "/"]
)  # fmt: skip


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("hostile")
    root = base / "repo"
    outside = base / "outside"
    outside.mkdir()
    git("init", "-q", root)
    root = root.resolve()
    (root / "models").mkdir()
    (root / "out").symlink_to(outside)
    (root / "models" / "out").symlink_to(outside)
    (root / "into_git").symlink_to(".git")
    (root / "a").mkdir()
    (root / "a" / "up").symlink_to("..")  # inside the repository: allowed
    return root, outside


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(COMPONENTS, min_size=1, max_size=5))
def test_no_generated_path_lands_outside_or_in_dotgit(
    hostile_tree: tuple[Path, Path], parts: list[str]
) -> None:
    root, outside = hostile_tree
    rel = "/".join(parts)
    try:
        target = paths.safe_target(root, rel, "generated")
    except PathError:
        return
    git_before = sorted(p.name for p in (root / ".git").iterdir())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            return  # an existing folder: a restore swaps it whole, inside the repository
        tmp = target.parent / (target.name + ".probe")
        tmp.write_bytes(b"x")
        tmp.replace(target)
    except (FileExistsError, NotADirectoryError):
        return  # an earlier example made a file where this one needs a folder
    real = target.resolve()
    assert root in real.parents
    assert ".git" not in real.relative_to(root).parts
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (root / ".git").iterdir()) == git_before


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A real repository with a saved two-file folder checkpoint and hostile symlinks."""
    from gitsnap import api

    base = tmp_path_factory.mktemp("restore")
    root = base / "repo"
    outside = base / "outside"
    outside.mkdir()
    git("init", "-q", root)
    root = root.resolve()
    from tests.helpers import init_dvc_repo

    git("commit", "-q", "--allow-empty", "-m", "start", cwd=root)
    init_dvc_repo(root)
    (root / "m").mkdir()
    (root / "m" / "a.bin").write_bytes(b"a" * 100)
    (root / "m" / "b.bin").write_bytes(b"b" * 100)
    api.save(["m"], cwd=root)
    (root / "out").symlink_to(outside)
    (root / "into_git").symlink_to(".git")
    return root, outside, (root / "m.snap").read_text()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    dest=st.lists(COMPONENTS, min_size=1, max_size=3),
    member=st.lists(COMPONENTS, min_size=1, max_size=3),
)
def test_no_restore_of_a_hostile_folder_pointer_lands_outside_or_in_dotgit(
    saved_folder: tuple[Path, Path, str], dest: list[str], member: list[str]
) -> None:
    from gitsnap import snapshot
    from gitsnap.errors import GitsnapError
    from gitsnap.workspace import Workspace

    root, outside, text = saved_folder
    dest_rel, member_rel = "/".join(dest), "/".join(member)
    try:
        evil = loads(forge(text, {"a.bin": member_rel, "path: m": f"path: {dest_rel}"}))
    except GitsnapError:
        return  # the pointer reader already refuses it
    git_before = {p: p.read_bytes() for p in (root / ".git").rglob("*") if p.is_file()}
    store = Workspace.discover(root).store
    with contextlib.suppress(GitsnapError):  # refused, with a message and a hint
        snapshot.restore(evil, store, root / dest_rel, root=root, force=True)
    assert list(outside.iterdir()) == []
    git_after = {p: p.read_bytes() for p in (root / ".git").rglob("*") if p.is_file()}
    changed = {p for p in git_after if git_before.get(p) != git_after[p]}
    ours = {"gitsnap", "exclude"}  # the temp area, and the temp names listed in info/exclude
    assert all(ours & set(p.relative_to(root / ".git").parts) for p in changed), changed
    for p in root.rglob("*"):
        if ".git" not in p.relative_to(root).parts and not p.is_symlink():
            assert root in p.resolve().parents


def test_post_checkout_hook_does_not_restore_into_dotgit(dvc_repo: Path) -> None:
    """A plain ``git checkout`` of a hostile branch, with the hooks installed."""
    run_snap("install")
    (dvc_repo / "m").mkdir()
    (dvc_repo / "m" / "gitcfg").write_text(PLANTED)
    run_snap("save", "m")
    good = (dvc_repo / "m.snap").read_text()
    commit_all(dvc_repo, "good")
    git("checkout", "-q", "-b", "evil", cwd=dvc_repo)
    (dvc_repo / "m.snap").write_bytes(forge(good, {"gitcfg": ".git/config"}))
    (dvc_repo / ".git.snap").write_bytes(forge(good, {"path: m": "path: .git"}))
    git("add", "-f", ".git.snap", cwd=dvc_repo)
    git("commit", "-q", "--no-verify", "-am", "evil", cwd=dvc_repo)  # the attacker's own hooks
    git("checkout", "-q", "main", cwd=dvc_repo)
    switched = git("checkout", "evil", cwd=dvc_repo)  # the hook warns; git's checkout stands
    assert "m not restored" in switched.stderr, switched.stderr
    assert ".git not restored" in switched.stderr, switched.stderr
    assert not (dvc_repo / "m" / ".git").exists()
    assert (dvc_repo / "m" / "gitcfg").read_text() == PLANTED  # the old folder, untouched
    git_is_intact(dvc_repo)
