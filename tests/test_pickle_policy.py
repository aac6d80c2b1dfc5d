"""Pickle globals recorded in the pointer and judged: save, the pre-commit check, diff.

A checkpoint whose pickle would call ``os.system`` is built with torch.save of
an object whose ``__reduce__`` returns ``(os.system, ("touch MARKER",))``:
nothing gitsnap does may create the marker (DESIGN D16, docs/security.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsnap import pointer
from gitsnap.errors import PointerError
from gitsnap.pointer import Entry, PickleRecord, Pointer, dumps, loads
from tests.helpers import git, run_snap


class Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def write_pt(path: Path, *, marker: Path | None = None, seed: float = 1.0) -> None:
    import torch

    state: dict[str, Any] = {"w": torch.full((4, 4), seed), "b": torch.zeros(4)}
    if marker is not None:
        state["hook"] = Exploit(f"touch {marker}")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


@pytest.fixture
def repo(dvc_repo: Path) -> Path:
    run_snap("install", cwd=dvc_repo)
    return dvc_repo


def commit(repo: Path, *paths: str, check: bool = False) -> Any:
    git("add", *paths, cwd=repo)
    return git("commit", "-q", "-m", "c", cwd=repo, check=check)


# ------------------------------------------------------------------ the pointer field


def _file_ptr(pickle: dict[str, PickleRecord]) -> Pointer:
    e = Entry(0, 8, "a" * 64, role="file")
    return Pointer(
        id="b" * 64, path="m.pt", format="torch-zip", size=8, tensors=[], blobs=[e], pickle=pickle
    )


def test_the_pickle_record_is_canonical_and_read_alike_by_both_readers() -> None:
    rec = PickleRecord(
        {"torch._utils._rebuild_tensor_v2": "weights_only", "posix.system": "unsafe"}, True
    )
    text = dumps(_file_ptr({"": rec}))
    assert (
        "pickle:\n  allowed_unsafe: true\n  globals:\n    posix.system: unsafe\n"
        "    torch._utils._rebuild_tensor_v2: weights_only\n" in text
    )
    fast, slow = loads(text), pointer.load_yaml(text)
    assert fast.pickle == slow.pickle == {"": rec}
    assert dumps(fast) == text
    # The field sits in the header, which the line reader reads without YAML.
    assert yaml.safe_load(text)["pickle"]["globals"]["posix.system"] == "unsafe"


def test_a_pointer_without_the_field_dumps_as_before() -> None:
    text = dumps(_file_ptr({}))
    assert "pickle" not in text and loads(text).pickle == {}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("    posix.system: unsafe\n", "    posix.system: harmless\n"),
        ("  allowed_unsafe: true\n", "  allowed_unsafe: 3\n"),
        ("  globals:\n", "  other: 1\n  globals:\n"),
    ],
)
def test_a_bad_pickle_record_is_refused_by_both_readers(edit: str, message: str) -> None:
    rec = PickleRecord({"posix.system": "unsafe"}, True)
    text = dumps(_file_ptr({"": rec})).replace(edit, message)
    with pytest.raises(PointerError) as fast:
        loads(text, "p.snap")
    with pytest.raises(PointerError) as slow:
        pointer.load_yaml(text, "p.snap")
    assert str(fast.value) == str(slow.value)
    assert "pickle record" in str(fast.value) or "records global" in str(fast.value)


def test_the_number_of_globals_is_bounded() -> None:
    from gitsnap.pointer.limits import MAX_PICKLE_GLOBALS

    many = {f"m.g{i}": "unknown" for i in range(MAX_PICKLE_GLOBALS + 1)}
    with pytest.raises(PointerError, match="more than"):
        dumps(_file_ptr({"": PickleRecord(many)}))


# ------------------------------------------------------------------ save


def test_save_refuses_a_code_executing_pickle_and_never_runs_it(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    write_pt(repo / "models/x.pt", marker=marker)
    proc = run_snap("save", "models/x.pt", cwd=repo, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "models/x.pt: its pickle calls posix.system when loaded with torch.load" in proc.stderr
    assert "hint:" in proc.stderr and "--allow-unsafe-pickle" in proc.stderr
    assert not (repo / "models/x.pt.snap").exists()
    assert not marker.exists()

    proc = run_snap("save", "models/x.pt", "--allow-unsafe-pickle", cwd=repo)
    assert "warning:" in proc.stderr and "posix.system" in proc.stderr
    ptr = loads((repo / "models/x.pt.snap").read_bytes())
    rec = ptr.pickle[""]
    assert rec.allowed_unsafe is True
    assert rec.globals["posix.system"] == "unsafe"
    assert rec.globals["torch._utils._rebuild_tensor_v2"] == "weights_only"
    assert not marker.exists()


def test_save_records_the_globals_of_a_clean_checkpoint(repo: Path) -> None:
    write_pt(repo / "m.pt")
    proc = run_snap("save", "m.pt", cwd=repo)
    assert "warning" not in proc.stderr
    rec = loads((repo / "m.pt.snap").read_bytes()).pickle[""]
    assert rec.allowed_unsafe is False
    assert set(rec.globals.values()) == {"weights_only"}


def test_the_python_api_takes_allow_unsafe_pickle(repo: Path, tmp_path: Path) -> None:
    from gitsnap import api
    from gitsnap.errors import UnsafePickle

    marker = tmp_path / "MARKER"
    write_pt(repo / "x.pt", marker=marker)
    with pytest.raises(UnsafePickle, match=r"posix\.system"):
        api.save(["x.pt"], cwd=repo)
    [res] = api.save(["x.pt"], cwd=repo, allow_unsafe_pickle=True)
    assert any("posix.system" in w for w in res.warnings)
    assert not marker.exists()


# ------------------------------------------------------------------ pre-commit


def test_precommit_refuses_an_unsafe_pointer_unless_the_path_is_allowed(
    repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    write_pt(repo / "models/x.pt", marker=marker)
    run_snap("save", "models/x.pt", "--allow-unsafe-pickle", cwd=repo)
    proc = commit(repo, "models/x.pt.snap", ".gitignore")
    assert proc.returncode != 0
    assert "models/x.pt: its pickle calls posix.system" in proc.stderr
    assert "gitsnap-allow-unsafe-pickle" in proc.stderr

    (repo / ".gitattributes").write_text("models/x.pt gitsnap-allow-unsafe-pickle\n")
    proc = commit(repo, ".gitattributes", "models/x.pt.snap", ".gitignore")
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()


def test_precommit_accepts_a_path_allowed_in_gitsnap_yaml(repo: Path, tmp_path: Path) -> None:
    write_pt(repo / "legacy/a.pt", marker=tmp_path / "MARKER")
    run_snap("save", "legacy/a.pt", "--allow-unsafe-pickle", cwd=repo)
    (repo / ".gitsnap.yaml").write_text("allow_unsafe_pickle: ['legacy/*.pt']\n")
    proc = commit(repo, ".gitsnap.yaml", "legacy/a.pt.snap", ".gitignore")
    assert proc.returncode == 0, proc.stderr


def test_glob_matching_follows_gitattributes() -> None:
    from gitsnap.pickle_policy import glob_matches

    assert glob_matches("legacy/*.pt", "legacy/a.pt")
    assert not glob_matches("legacy/*.pt", "legacy/sub/a.pt")
    assert glob_matches("*.pt", "deep/er/a.pt")
    assert not glob_matches("", "a.pt")


# ------------------------------------------------------------------ diff


def test_diff_shows_the_security_section_when_the_newer_side_brings_code(
    repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    write_pt(repo / "models/x.pt")
    run_snap("save", "models/x.pt", cwd=repo)
    assert commit(repo, "models/x.pt.snap", ".gitignore").returncode == 0
    write_pt(repo / "models/x.pt", marker=marker, seed=2.0)
    run_snap("save", "models/x.pt", "--allow-unsafe-pickle", cwd=repo)

    table = run_snap("diff", cwd=repo, check=False).stdout
    assert "⚠ models/x.pt: this checkpoint runs posix.system when loaded with torch.load" in table

    doc = json.loads(run_snap("diff", "--format", "json", cwd=repo, check=False).stdout)
    [ck] = doc["checkpoints"]
    assert ck["security"] == [
        {
            "path": "models/x.pt",
            "global": "posix.system",
            "kind": "unsafe",
            "allowed": True,
            "message": "models/x.pt: this checkpoint runs posix.system when loaded with "
            "torch.load (saved with --allow-unsafe-pickle)",
        }
    ]

    md = run_snap("diff", "--format", "markdown", cwd=repo, check=False).stdout
    assert "**Security**" in md
    assert "⚠ this checkpoint runs `posix.system` when loaded with `torch.load`" in md

    # The older side introduces nothing: no section the other way round.
    (repo / ".gitattributes").write_text("models/x.pt gitsnap-allow-unsafe-pickle\n")
    assert commit(repo, ".gitattributes", "models/x.pt.snap").returncode == 0
    back = json.loads(
        run_snap("diff", "HEAD", "HEAD~1", "--format", "json", cwd=repo, check=False).stdout
    )
    assert back["checkpoints"][0]["security"] == []
    assert not marker.exists()


def test_a_hand_edited_record_cannot_hide_an_unsafe_global() -> None:
    from gitsnap.pickle_policy import introduced

    lying = _file_ptr({"": PickleRecord({"posix.system": "weights_only"})})
    [finding] = introduced(None, lying)
    assert (finding.name, finding.kind) == ("posix.system", "unsafe")


def test_security_text_is_escaped_in_every_renderer(repo: Path) -> None:
    from gitsnap.diff import CheckpointDiff, DiffResult, summarize
    from gitsnap.pickle_policy import SecurityFinding
    from gitsnap.render import json as rjson
    from gitsnap.render import markdown, table

    evil = SecurityFinding("m.pt", "__main__.x\x1b[31mred\u202e", "unknown")
    ck = CheckpointDiff("m.pt", "modified", None, None, [], [], summarize([]), [], [], [evil])
    r = DiffResult("HEAD", "working tree", None, None, False, None, [ck])
    for text in (table.diff(r), markdown.diff(r)):
        assert "\x1b" not in text and "\u202e" not in text
    assert "\x1b" not in rjson.dumps(rjson.diff_dict(r))  # JSON writes it as \u001b


class Sqrt:
    def __reduce__(self) -> tuple[Any, tuple[float]]:
        import math

        return (math.sqrt, (4.0,))


def test_an_unknown_global_is_saved_with_a_warning(repo: Path) -> None:
    import torch

    torch.save({"w": torch.ones(2), "x": Sqrt()}, repo / "u.pt")
    proc = run_snap("save", "u.pt", cwd=repo)
    assert "warning: u.pt: its pickle calls math.sqrt" in proc.stderr
    rec = loads((repo / "u.pt.snap").read_bytes()).pickle[""]
    assert rec.globals["math.sqrt"] == "unknown" and not rec.allowed_unsafe
    doc = json.loads(run_snap("diff", "--format", "json", cwd=repo, check=False).stdout)
    [finding] = doc["checkpoints"][0]["security"]
    assert (finding["global"], finding["kind"]) == ("math.sqrt", "unknown")


def test_a_folder_records_each_pickled_file_and_is_refused_by_file(
    repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    write_pt(repo / "ck/model.pt")
    write_pt(repo / "ck/optimizer.pt", marker=marker)
    (repo / "ck/config.json").write_text("{}")
    proc = run_snap("save", "ck", cwd=repo, check=False)
    assert proc.returncode == 3
    assert "ck/optimizer.pt: its pickle calls posix.system" in proc.stderr
    run_snap("save", "ck", "--allow-unsafe-pickle", cwd=repo)
    ptr = loads((repo / "ck.snap").read_bytes())
    assert set(ptr.pickle) == {"model.pt", "optimizer.pt"}
    assert ptr.pickle["optimizer.pt"].allowed_unsafe
    assert not ptr.pickle["model.pt"].allowed_unsafe
    proc = commit(repo, "ck.snap", ".gitignore")
    assert proc.returncode != 0 and "ck/optimizer.pt: its pickle calls posix.system" in proc.stderr
    assert not marker.exists()
