"""gitsnap.revisions: which snapshots at which revision, read once per command.

The git processes a command starts are counted from git's own trace
(``GIT_TRACE`` set to a file: every git process, including the ones gitsnap
starts with captured output, appends its command line there).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitsnap import api, pointer, revisions
from gitsnap.errors import PathError, UsageError
from gitsnap.workspace import Workspace
from tests import helpers


def _traced(trace: Path, needle: str) -> int:
    """How many git processes in the trace ran ``git NEEDLE`` (``needle`` ends the argv)."""
    lines = trace.read_text(encoding="utf-8", errors="replace").splitlines()
    return sum(1 for ln in lines if "built-in: git " + needle in ln and ln.endswith(needle))


def _two_commits(repo: Path, make_checkpoint: Callable[..., Path]) -> None:
    for name in ("a.safetensors", "b.safetensors"):
        make_checkpoint(repo / name)
    helpers.run_snap("save", "a.safetensors", "b.safetensors", "-m", "one", cwd=repo)
    helpers.git("add", "-A", cwd=repo)
    helpers.git("commit", "-qm", "one", cwd=repo)
    make_checkpoint(repo / "a.safetensors", seed=1)
    helpers.run_snap("save", "a.safetensors", "-m", "two", cwd=repo)
    helpers.git("add", "-A", cwd=repo)
    helpers.git("commit", "-qm", "two", cwd=repo)


def test_diff_of_two_commits_reads_each_side_with_one_cat_file(
    dvc_repo: Path, make_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    _two_commits(dvc_repo, make_checkpoint)
    trace = tmp_path / "trace.log"
    out = helpers.run_snap(
        "diff", "HEAD~1", "HEAD", cwd=dvc_repo, env={"GIT_TRACE": os.fspath(trace)}
    )
    assert "a.safetensors" in out.stdout
    # one `git cat-file --batch` per side: the blobs that told gitsnap's
    # pointers from other *.snap files are the ones parsed
    assert _traced(trace, "cat-file --batch") == 2
    assert _traced(trace, "rev-parse --show-toplevel --absolute-git-dir") == 1


def test_pointer_blobs_lists_only_gitsnap_pointers(
    dvc_repo: Path, make_checkpoint: Callable[..., Path]
) -> None:
    _two_commits(dvc_repo, make_checkpoint)
    (dvc_repo / "ui.test.js.snap").write_text("// Jest Snapshot v1\nexports[`x`] = `1`;\n")
    helpers.git("add", "ui.test.js.snap", cwd=dvc_repo)
    helpers.git("commit", "-qm", "jest", cwd=dvc_repo)
    ws = Workspace.discover(dvc_repo)
    blobs = ws.pointer_blobs("HEAD")
    assert sorted(blobs) == ["a.safetensors", "b.safetensors"]
    assert ws.pointer_paths("HEAD") == list(blobs)
    assert blobs["a.safetensors"] == (dvc_repo / "a.safetensors.snap").read_bytes()
    assert revisions.blobs_at(ws, "HEAD", ["b.safetensors"]).keys() == {"b.safetensors"}


def test_parser_parses_each_text_once(dvc_repo: Path, make_checkpoint: Callable[..., Path]) -> None:
    _two_commits(dvc_repo, make_checkpoint)
    ws = Workspace.discover(dvc_repo)
    parser = revisions.Parser()
    head = revisions.pointers_at(ws, "HEAD", "HEAD", parser=parser)
    work = parser.parse_all(revisions.worktree_blobs(ws), "")
    assert parser.parses == 2  # the work tree holds HEAD's pointers, byte for byte
    assert head == work
    older = revisions.pointers_at(ws, "HEAD~1", "HEAD~1", parser=parser)
    assert parser.parses == 3  # only a.safetensors differs at HEAD~1
    assert older["b.safetensors"] is head["b.safetensors"]


def test_registry_names_resolve_to_their_commit(
    dvc_repo: Path, make_checkpoint: Callable[..., Path]
) -> None:
    _two_commits(dvc_repo, make_checkpoint)
    helpers.run_snap("tag", "a", "v1.0.0", "HEAD~1", cwd=dvc_repo)
    ws = Workspace.discover(dvc_repo)
    first = helpers.git("rev-parse", "HEAD~1", cwd=dvc_repo).stdout.strip()
    assert revisions.commit_of(ws, "a@v1.0.0") == first
    assert revisions.to_git(ws, "a@v1.0.0") == first
    assert revisions.to_git(ws, "HEAD") == "HEAD"
    [ref] = [r for r in revisions.snapshots(ws, ["a@v1.0.0"]) if r.path == "a.safetensors"]
    assert ref.commit == first


def test_pull_discovers_once_and_parses_each_pointer_once(  # noqa: PLR0917 - fixtures
    local_remote: Path,
    bare_origin: Path,
    dvc_repo: Path,
    make_checkpoint: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _two_commits(dvc_repo, make_checkpoint)
    helpers.run_snap("push", cwd=dvc_repo)
    helpers.git("push", "-q", "origin", "main", cwd=dvc_repo)
    clone = tmp_path / "clone"
    helpers.git("clone", "-q", bare_origin, clone)

    # Count the real parser's calls (it still does all the work).
    calls: list[str] = []
    real = pointer.loads

    def counting(text: str | bytes, source: str = "<pointer>", **kw: Any) -> pointer.Pointer:
        calls.append(source)
        return real(text, source, **kw)

    monkeypatch.setattr(pointer, "loads", counting)
    trace = tmp_path / "pull-trace.log"
    monkeypatch.setenv("GIT_TRACE", os.fspath(trace))
    result = api.pull(cwd=clone)
    monkeypatch.delenv("GIT_TRACE")

    assert sorted(e.path for e in result.checkout) == ["a.safetensors", "b.safetensors"]
    assert {e.action for e in result.checkout} == {"restored"}
    assert (clone / "a.safetensors").read_bytes() == (dvc_repo / "a.safetensors").read_bytes()
    assert len(calls) == 2, calls  # two pointers, each parsed once
    assert _traced(trace, "rev-parse --show-toplevel --absolute-git-dir") == 1


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("HEAD:ckpts/checkpoint-500", ("HEAD", "ckpts/checkpoint-500")),
        ("HEAD~2:a:b", ("HEAD~2", "a:b")),  # the first colon, as git
        ("main@{2026-01-05 10:00}:m.pt", ("main@{2026-01-05 10:00}", "m.pt")),
        (":m.pt", ("", "m.pt")),  # git's index: locate() refuses it
        ("HEAD:", ("HEAD", "")),
        ("HEAD", None),
        ("main@{2026-01-05 10:00}", None),
        (":/fix: the head", None),  # git's :/TEXT names a commit by its message
    ],
)
def test_split_rev_path_as_git(word: str, expected: tuple[str, str] | None) -> None:
    assert revisions.split_rev_path(word) == expected


def test_locate_paths_as_git(git_repo: Path) -> None:
    sub = git_repo / "ckpts"
    sub.mkdir()
    ws = Workspace.discover(sub)
    assert revisions.locate(ws, "HEAD:ckpts/a.pt") == revisions.Located("HEAD", "ckpts/a.pt")
    assert revisions.locate(ws, "HEAD:./a.pt") == revisions.Located("HEAD", "ckpts/a.pt")
    assert revisions.locate(ws, "HEAD:../b.pt.snap") == revisions.Located("HEAD", "b.pt")
    assert revisions.locate(ws, "a.pt") == revisions.Located(None, "ckpts/a.pt")
    for bad in (":a.pt", "HEAD:"):
        with pytest.raises(UsageError):
            revisions.locate(ws, bad)
    with pytest.raises(PathError, match="outside the repository"):
        revisions.locate(ws, "HEAD:../../x.pt")


def test_a_path_inside_a_folder_checkpoint_selects_it_only_when_asked() -> None:
    paths = ["ckpt", "models/unet-pipeline", "other.safetensors"]
    wanted = ["ckpt/ema.safetensors", "models/unet-pipeline/unet/"]
    assert revisions.select(paths, wanted) == []  # checkout, status: a checkpoint or a folder
    assert revisions.select(paths, wanted, within=True) == ["ckpt", "models/unet-pipeline"]
    # What diff limits each checkpoint to; None where a path names the whole of it.
    assert revisions.inside("ckpt", wanted) == ["ema.safetensors"]
    assert revisions.inside("models/unet-pipeline", wanted) == ["unet/"]
    assert revisions.inside("ckpt", [*wanted, "ckpt"]) is None
    assert revisions.inside("ckpt", ["."]) is None
    assert revisions.inside("ckpt", []) is None
