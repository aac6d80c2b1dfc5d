"""The local object store under damage and lies, through the real CLI.

A store object that is a directory, a pointer that gives an intact object
another length (up to sizes ``ftruncate`` cannot take) or another dtype:
each ends in ``error:`` / ``hint:`` naming the snapshot, the tensor and the
object, and the blame falls where it belongs -- a lying pointer is never
answered with a hint to delete the object it names, which other snapshots
may need.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from gitsnap.pointer import Pointer, loads
from gitsnap.store import ObjectStore
from tests.helpers import git, make_checkpoint, run_snap

MODEL = "models/model.safetensors"
SNAP = MODEL + ".snap"


def _save_commit(repo: Path, message: str, **kwargs: Any) -> tuple[str, Pointer]:
    make_checkpoint(repo / MODEL, **kwargs)
    run_snap("save", MODEL, cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    commit = git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    return commit, loads((repo / SNAP).read_bytes())


def _object(repo: Path, oid: str) -> Path:
    return repo / ".dvc" / "cache" / "gitsnap" / "blake3" / oid[:2] / oid[2:]


def _last_tensor(ptr: Pointer) -> Any:
    return max((t for t in ptr.tensors if not t.view), key=lambda t: t.offset)


def _lie_about_size(repo: Path, delta: int, *, parses: bool = True) -> tuple[str, str, int]:
    """Rewrite the work tree's pointer: its last tensor (and the total) ``delta`` bytes longer.

    The layout still tiles the file, so the pointer parses; only the sizes lie.
    Returns (tensor name, its oid, its true size).
    """
    text = (repo / SNAP).read_text()
    ptr = loads(text.encode())
    last = _last_tensor(ptr)
    old_entry = f"size: {last.size}, oid: {last.oid}"
    assert old_entry in text
    text = text.replace(old_entry, f"size: {last.size + delta}, oid: {last.oid}")
    text = text.replace(f"\nsize: {ptr.size}\n", f"\nsize: {ptr.size + delta}\n")
    (repo / SNAP).write_text(text)
    if parses:
        assert loads(text.encode()).size == ptr.size + delta  # still a valid pointer
    return str(last.name), last.oid, last.size


def _directory_in_place_of(path: Path) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.unlink()
    path.mkdir()
    (path / "junk").write_bytes(b"x")


@pytest.fixture
def saved(dvc_repo: Path) -> dict[str, Any]:
    c1, p1 = _save_commit(dvc_repo, "v1", seed=0)
    c2, p2 = _save_commit(dvc_repo, "v2", seed=0, modify=("head",))
    return {"repo": dvc_repo, "c1": c1, "p1": p1, "c2": c2, "p2": p2}


def _oid(ptr: Pointer, name: str) -> str:
    return next(t.oid for t in ptr.tensors if t.name == name)


def test_object_that_is_a_directory_is_named_by_every_command(
    saved: dict[str, Any], local_remote: Path
) -> None:
    repo, c1, p2 = saved["repo"], saved["c1"], saved["p2"]
    oid = _oid(p2, "head.weight")  # only in v2, which the work tree holds
    obj = _object(repo, oid)
    _directory_in_place_of(obj)

    # checkout of a snapshot that needs it
    (repo / MODEL).unlink()
    proc = run_snap("checkout", "--force", "HEAD", MODEL, cwd=repo, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert f"object {oid[:12]}… (tensor 'head.weight')" in proc.stderr
    assert "is a directory" in proc.stderr and f"hint: remove it (rm -rf '{obj}')" in proc.stderr

    # push
    proc = run_snap("push", cwd=repo, check=False)
    assert proc.returncode in (1, 3), proc.stderr
    out = proc.stdout + proc.stderr
    assert "internal error" not in out and "Traceback" not in out
    assert "head.weight" in out and oid[:12] in out

    # fsck: a corrupt object, named by snapshot and tensor
    proc = run_snap("fsck", cwd=repo, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"\tcorrupt: tensor 'head.weight' (object {oid[:12]}…)" in proc.stdout.splitlines()

    # diff --values between the versions: the tensor is named
    proc = run_snap("diff", "--values", c1, "HEAD", cwd=repo, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "tensor 'head.weight'" in proc.stderr and "is a directory" in proc.stderr
    assert "internal error" not in proc.stderr

    # the hint is right: removing the directory and re-saving repairs the store
    shutil.rmtree(obj)
    make_checkpoint(repo / MODEL, seed=0, modify=("head",))
    run_snap("save", MODEL, cwd=repo)
    assert run_snap("fsck", cwd=repo).returncode == 0


def test_pointer_that_lies_about_a_size_is_blamed_not_the_object(saved: dict[str, Any]) -> None:
    repo = saved["repo"]
    name, oid, true_size = _lie_about_size(repo, 4)
    (repo / MODEL).unlink()
    proc = run_snap("checkout", MODEL, cwd=repo, check=False)
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr
    assert f"tensor {name!r}: the pointer says {true_size + 4} bytes" in err
    assert f"object {oid[:12]}… has {true_size}" in err
    hint = next(line for line in err.splitlines() if line.startswith("hint:"))
    assert "pointer" in hint and "delete" not in hint and "rm " not in hint
    assert not (repo / MODEL).exists()  # nothing restored
    # and fsck agrees that the object is fine
    assert _object(repo, oid).is_file()
    git("checkout", "--", SNAP, cwd=repo)
    assert run_snap("fsck", cwd=repo).returncode == 0
    run_snap("checkout", MODEL, cwd=repo)
    assert (repo / MODEL).stat().st_size == saved["p2"].size


def test_pointer_size_beyond_any_object_is_a_pointer_error(
    saved: dict[str, Any], local_remote: Path
) -> None:
    """A size the reader accepts but no stored object has: refused before any allocation."""
    repo = saved["repo"]
    huge = 2**62  # ftruncate would fail on it (EFBIG) long after a temp file exists
    name, oid, true_size = _lie_about_size(repo, huge)
    (repo / MODEL).unlink()
    proc = run_snap("checkout", MODEL, cwd=repo, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "internal error" not in proc.stderr and "Overflow" not in proc.stderr
    assert f"tensor {name!r}: the pointer says {true_size + huge} bytes" in proc.stderr

    # push of the lying snapshot: the pointer is blamed, nothing leaves
    git("add", SNAP, cwd=repo)
    git("commit", "-q", "-m", "lie", cwd=repo)
    proc = run_snap("push", cwd=repo, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "the pointer says" in proc.stderr and "internal error" not in proc.stderr
    assert not (local_remote / "gitsnap" / "blake3" / oid[:2] / oid[2:]).exists()


def test_pointer_size_of_2_63_is_refused_by_the_reader(saved: dict[str, Any]) -> None:
    """2**63 overflowed ftruncate ("internal error"): now no command even reads such a pointer."""
    repo = saved["repo"]
    _lie_about_size(repo, 2**63, parses=False)
    (repo / MODEL).unlink()
    for args in (("checkout", MODEL), ("status",), ("show", MODEL)):
        proc = run_snap(*args, cwd=repo, check=False)
        assert proc.returncode == 3, (args, proc.stdout + proc.stderr)
        assert "larger than any file can be" in proc.stderr and "hint:" in proc.stderr
        assert "internal error" not in proc.stderr


def test_download_of_an_intact_object_for_a_lying_pointer(
    saved: dict[str, Any], local_remote: Path
) -> None:
    """pull: the remote's object is intact, the pointer wrong -- kept, and the pointer blamed."""
    repo = saved["repo"]
    run_snap("push", cwd=repo)
    name, oid, true_size = _lie_about_size(repo, 8)
    _object(repo, oid).chmod(stat.S_IRUSR | stat.S_IWUSR)
    _object(repo, oid).unlink()
    (repo / MODEL).unlink()
    proc = run_snap("checkout", MODEL, cwd=repo, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"tensor {name!r}: the pointer says {true_size + 8} bytes" in proc.stderr
    assert "corrupt" not in proc.stderr
    # the intact object was stored (it is the real one, and other snapshots need it)
    assert ObjectStore(_object(repo, oid).parents[1]).digest(oid).oid == oid


def test_diff_values_pointer_dtype_lie_names_the_tensor(saved: dict[str, Any]) -> None:
    repo, c1 = saved["repo"], saved["c1"]
    text = (repo / SNAP).read_text()
    line = next(ln for ln in text.splitlines() if "name: head.weight" in ln)
    assert "dtype: F32" in line
    (repo / SNAP).write_text(text.replace(line, line.replace("dtype: F32", "dtype: F64")))
    git("commit", "-q", "-am", "dtype lie", cwd=repo)
    proc = run_snap("diff", "--values", c1, "HEAD", cwd=repo, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "tensor 'head.weight'" in proc.stderr and "the pointer says F64" in proc.stderr
    assert "internal error" not in proc.stderr
    hint = next(line for line in proc.stderr.splitlines() if line.startswith("hint:"))
    assert "delete" not in hint


def test_diff_values_size_lie_names_the_tensor(saved: dict[str, Any]) -> None:
    repo, c1, p1 = saved["repo"], saved["c1"], saved["p1"]
    _save_commit(repo, "v3", seed=0, modify=("head", "norm", "blocks", "embed"))
    name, oid, true_size = _lie_about_size(repo, 4)
    assert _oid(p1, name) != oid  # a tensor that changed: diff --values reads it
    git("commit", "-q", "-am", "size lie", cwd=repo)
    proc = run_snap("diff", "--values", c1, "HEAD", cwd=repo, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"tensor {name!r}" in proc.stderr and f"{true_size + 4} bytes" in proc.stderr
    assert "internal error" not in proc.stderr
