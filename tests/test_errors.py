"""Bad input: each gets a clear message, a hint, and the exit code of DESIGN §3."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import MakeCheckpoint, RunSnap, git


def write_raw_safetensors(
    path: Path, header: dict[str, Any], data: bytes, *, length: int | None = None
) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def snap_fails(run_snap: RunSnap, *args: str, code: int = 3, cwd: Path | None = None) -> str:
    proc = run_snap(*args, check=False, cwd=cwd)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    assert "\nhint: " in proc.stderr
    return str(proc.stderr)


def test_not_a_git_repository(tmp_path: Path, run_snap: RunSnap) -> None:
    err = snap_fails(run_snap, "status", cwd=tmp_path, code=128)
    assert "not a git repository" in err


def test_not_initialized(
    git_repo: Path, run_snap: RunSnap, make_checkpoint: MakeCheckpoint
) -> None:
    make_checkpoint(git_repo / "m.safetensors")
    err = snap_fails(run_snap, "save", "m.safetensors")
    assert "hint: run: git snap init" in err


def test_path_does_not_exist(dvc_repo: Path, run_snap: RunSnap) -> None:
    err = snap_fails(run_snap, "save", "nope.safetensors")
    assert "nope.safetensors: no such file" in err


def test_usage_error_is_exit_2(dvc_repo: Path, run_snap: RunSnap) -> None:
    assert run_snap("save", check=False).returncode == 2
    assert run_snap("save", "x", "-M", "novalue", check=False).returncode in (2, 3)
    assert run_snap("frobnicate", check=False).returncode == 2


GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(
    ("header", "data", "length", "message"),
    [
        (GOOD, b"\0" * 4, None, "ends at byte 8 of a 4-byte data area"),
        (GOOD, b"\0" * 8, 10_000, "runs past the end of the file"),
        (GOOD, b"\0" * 8, 200 * 1024 * 1024, "exceeds the"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            None,
            "overlaps",
        ),
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},
            b"\0" * 8,
            None,
            "out-of-order",
        ),
        (
            {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
            b"\0" * 8,
            None,
            "needs 12 bytes",
        ),
        (
            {"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},
            b"\0" * 8,
            None,
            "bad shape",
        ),
        ({"w": "nope"}, b"", None, "not an object"),
    ],
)
def test_malformed_safetensors_is_refused(
    dvc_repo: Path, run_snap: RunSnap, *, header: Any, data: bytes, length: int | None, message: str
) -> None:
    # keyword-only: pytest passes fixtures and parameters by name
    write_raw_safetensors(dvc_repo / "bad.safetensors", header, data, length=length)
    err = snap_fails(run_snap, "save", "bad.safetensors")
    assert "not a valid safetensors file" in err and message in err
    assert not (dvc_repo / "bad.safetensors.snap").exists()


def test_truncated_file_and_garbage_header(
    dvc_repo: Path, run_snap: RunSnap, make_checkpoint: MakeCheckpoint
) -> None:
    ckpt = make_checkpoint(dvc_repo / "m.safetensors")
    ckpt.write_bytes(ckpt.read_bytes()[:-100])
    assert "past end of file" in snap_fails(run_snap, "save", "m.safetensors")
    (dvc_repo / "g.safetensors").write_bytes(struct.pack("<Q", 5) + b"{nope")
    assert "not valid JSON" in snap_fails(run_snap, "save", "g.safetensors")
    (dvc_repo / "t.safetensors").write_bytes(b"abc")
    assert "too short" in snap_fails(run_snap, "save", "t.safetensors")


def test_pointer_naming_a_path_outside_the_repository(
    dvc_repo: Path, run_snap: RunSnap, make_checkpoint: MakeCheckpoint
) -> None:
    make_checkpoint(dvc_repo / "m.safetensors")
    run_snap("save", "m.safetensors")
    pointer = dvc_repo / "m.safetensors.snap"
    pointer.write_text(pointer.read_text().replace("path: m.safetensors", "path: ../../outside"))
    err = snap_fails(run_snap, "checkout", "--force")
    assert "outside the repository" in err
    assert not (dvc_repo.parent.parent / "outside").exists()


def test_malformed_pointer_yaml(
    dvc_repo: Path, run_snap: RunSnap, make_checkpoint: MakeCheckpoint
) -> None:
    make_checkpoint(dvc_repo / "m.safetensors")
    run_snap("save", "m.safetensors")
    (dvc_repo / "m.safetensors.snap").write_text("gitsnap: 1\ntensors: [\n  {name: oops\n")
    for cmd in (("status",), ("checkout",), ("show", "m.safetensors"), ("save", "m.safetensors")):
        err = snap_fails(run_snap, *cmd)
        assert "m.safetensors.snap" in err and "malformed pointer YAML" in err


def test_unknown_revision(dvc_repo: Path, run_snap: RunSnap) -> None:
    err = snap_fails(run_snap, "show", "nosuchrev:m.safetensors")
    assert "unknown revision: nosuchrev" in err


def test_checkpoint_tracked_by_git_itself(
    dvc_repo: Path, run_snap: RunSnap, make_checkpoint: MakeCheckpoint
) -> None:
    make_checkpoint(dvc_repo / "m.safetensors")
    git("add", "-f", "m.safetensors")
    err = snap_fails(run_snap, "save", "m.safetensors")
    assert "tracked by git" in err and "git rm --cached m.safetensors" in err


def test_path_outside_the_repository(
    dvc_repo: Path, run_snap: RunSnap, tmp_path: Path, make_checkpoint: MakeCheckpoint
) -> None:
    outside = make_checkpoint(tmp_path / "elsewhere.safetensors")
    err = snap_fails(run_snap, "save", str(outside))
    assert "outside the repository" in err
