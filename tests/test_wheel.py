"""The wheel built from this repository works in a clean virtual environment without torch or dvc.

DESIGN D15: torch and safetensors are the ``gitsnap[torch]`` extra, dvc the
``gitsnap[remote]`` / ``gitsnap[s3]`` extras; a pull-request check installs the
core (numpy, blake3, PyYAML, ...) and reviews pointers, and a user without a
remote saves, diffs and restores safetensors checkpoints. This test builds the
wheel the way a release would (``pip wheel``), installs it with ``-c
constraints.txt`` into a fresh ``python -m venv``, and drives a real repository
through that environment's ``git snap`` only: install (the hook shims shipped
in the wheel), save, status, diff, checkout, the pull-request review script of
examples/ (Markdown, HTML, gate), and the commands that need dvc, which fail
with the extra to install. Neither torch nor dvc is ever importable there.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gitsnap.hooks.result import GIT_HOOKS
from tests import helpers
from tests.helpers import VENV_BIN, git, run

REPO = Path(__file__).resolve().parent.parent
REVIEW_SCRIPT = REPO / "examples" / "gitsnap-pr-report.sh"

# pip's own cache of downloaded wheels, as the developer's or CI's pip has it:
# read at import, before the session fixture moves HOME and XDG_CACHE_HOME
# into a temp dir (an empty cache would download every dependency again).
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or os.fspath(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"
)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> bytes:
    """A safetensors file written by hand (the format is a JSON header and raw bytes)."""
    dtypes = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}
    header: dict[str, object] = {}
    data = b""
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": dtypes[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    blob = struct.pack("<Q", len(text)) + text + data
    path.write_bytes(blob)
    return blob


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, REPO],
        env={"PIP_CACHE_DIR": PIP_CACHE},
        timeout=600,
    )
    (built,) = out.glob("gitsnap-*.whl")
    return built


def test_wheel_ships_the_hook_shims_and_the_man_page_and_no_demo(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for hook in GIT_HOOKS:
        assert f"gitsnap/_hooks/{hook}" in names
    assert any(n.endswith(".data/data/share/man/man1/git-snap.1") for n in names)
    assert "gitsnap/_optional.py" in names
    assert not any("demo" in n for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    core = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith(("torch", "safetensors", "dvc")) for r in core), core
    assert any(r.startswith("torch") and "extra == 'torch'" in r for r in requires)
    for extra in ("remote", "s3"):
        assert any(r.startswith("dvc>=") and f"extra == '{extra}'" in r for r in requires)
    assert any(r.startswith("dvc-s3") and "extra == 's3'" in r for r in requires)


@pytest.mark.slow
def test_clean_venv_without_torch_or_dvc_saves_diffs_restores_and_reviews(
    wheel: Path, git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_dir = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", env_dir])
    py = env_dir / "bin" / "python"
    started = time.monotonic()
    # The pip of the test interpreter installs into the new environment
    # (`--python`), so the environment holds the core dependencies only.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            py,
            "install",
            "-q",
            "--no-compile",
            "-c",
            REPO / "constraints.txt",
            wheel,
        ],
        env={"PIP_CACHE_DIR": PIP_CACHE},
        timeout=900,
    )
    install_seconds = time.monotonic() - started
    print(f"clean install of the wheel and its core dependencies: {install_seconds:.1f} s")

    # From here on only the new environment: its bin first, the test
    # virtualenv's bin and the worktree's PYTHONPATH out of the way.
    path = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV_BIN]
    monkeypatch.setenv("PATH", os.pathsep.join([os.fspath(env_dir / "bin"), *path]))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    where = run([py, "-c", "import gitsnap; print(gitsnap.__file__)"]).stdout
    assert Path(where.strip()).is_relative_to(env_dir)
    absent = "import importlib.util as u; print([u.find_spec(m) for m in ('torch', 'dvc')])"
    assert run([py, "-c", absent]).stdout.strip() == "[None, None]"
    assert run(["git", "snap", "-h"]).returncode == 0

    def snap(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["git", "snap", *args], cwd=git_repo, check=check)

    def needs_dvc(proc: subprocess.CompletedProcess[str], extra: str) -> None:
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "needs dvc, which is not installed" in proc.stderr, proc.stderr
        assert f"hint: pip install 'gitsnap[{extra}]'" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr

    git("commit", "-q", "--allow-empty", "-m", "root")
    # Creating the DVC project is dvc's job: without it, one clear error.
    needs_dvc(snap("init", check=False), "remote")
    assert not (git_repo / ".dvc").exists()
    # The project as a teammate with the extra made it (this test's own dvc),
    # with a folder remote and an S3 one: a clone of it needs no dvc to set up.
    helpers.init_dvc_repo(git_repo)
    helpers.add_dvc_remote(git_repo, "storage", os.fspath(tmp_path / "dvc-remote"))
    helpers.dvc("remote", "add", "cloud", "s3://team-models/weights", cwd=git_repo)
    (git_repo / ".gitsnap.yaml").write_text("metrics:\n  accuracy: {better: higher}\n")
    snap("init")
    snap("install")  # the shims from the wheel; the commits below run them
    rng = np.random.default_rng(0)
    tensors = {
        "encoder.weight": rng.standard_normal((64, 32)).astype(np.float32),
        "head.weight": rng.standard_normal((4, 64)).astype(np.float32),
        "step": np.array([7], dtype=np.int64),
    }
    ckpt = git_repo / "model.safetensors"
    v1 = write_safetensors(ckpt, tensors)
    snap("save", "model.safetensors", "-m", "v1", "-M", "accuracy=0.91")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")

    tensors["head.weight"] = tensors["head.weight"] * 2
    v2 = write_safetensors(ckpt, tensors)
    assert "modified" in snap("status").stdout
    snap("save", "model.safetensors", "-m", "v2", "-M", "accuracy=0.88")
    git("add", "-A")
    git("commit", "-q", "-m", "v2")
    assert snap("status").stdout.startswith("clean")

    diff = snap("diff", "HEAD~1", "HEAD").stdout
    assert "head.weight" in diff
    assert "encoder.weight" not in diff  # unchanged tensors are not listed

    snap("checkout", "HEAD~1")  # every object is local: no remote, no dvc
    assert ckpt.read_bytes() == v1
    snap("checkout", "HEAD")
    assert ckpt.read_bytes() == v2

    # The pull-request review of examples/github-workflow.yml, as its job runs
    # it after `pip install gitsnap` (the comment itself: tests/test_workflow.py).
    base, head = git("rev-parse", "HEAD~1", "HEAD").stdout.split()
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"pull_request": {"number": 7, "base": {"sha": base}, "head": {"sha": head}}})
    )
    review = run(
        ["bash", REVIEW_SCRIPT],
        cwd=git_repo,
        check=False,
        env={
            "GITHUB_EVENT_PATH": os.fspath(event),
            "GITHUB_SHA": head,
            "GITHUB_REPOSITORY": "acme/models",
            "GITSNAP_REPORT_DIR": os.fspath(tmp_path / "report"),
            "GITSNAP_COMMENT": "0",
            "GITSNAP_FAIL_ON": "accuracy regresses by 0.01",
        },
    )
    assert review.returncode == 1, review.stdout + review.stderr  # 0.91 -> 0.88: the gate fails
    markdown = (tmp_path / "report" / "model-review.md").read_text(encoding="utf-8")
    assert markdown.startswith("<!-- gitsnap-diff -->") and "head.weight" in markdown
    assert "Gate failed" in markdown and "0.88" in markdown
    page = (tmp_path / "report" / "model-review.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "Gate failed" in page

    # What reaches a remote needs the extra, named after the remote's URL.
    needs_dvc(snap("push", check=False), "remote")
    needs_dvc(snap("push", "--remote", "cloud", check=False), "s3")
    needs_dvc(snap("status", "--remote", check=False), "remote")
    needs_dvc(snap("du", "--remote", check=False), "remote")
    doctor = snap("doctor", "--offline", check=False)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "reaching the DVC remote 'storage'" in doctor.stdout
    assert "needs dvc, which is not installed" in doctor.stdout
    assert "pip install 'gitsnap[remote]'" in doctor.stdout
    # A checkout whose objects are gone must fetch them: that needs dvc too...
    ckpt.unlink()
    shutil.rmtree(git_repo / ".dvc" / "cache" / "gitsnap")
    needs_dvc(snap("checkout", check=False), "remote")
    # ...and without a default remote (read without dvc) it says the objects are missing.
    helpers.dvc("remote", "default", "--unset", cwd=git_repo)
    missing = snap("checkout", check=False)
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert "missing" in missing.stderr and "dvc" not in missing.stderr, missing.stderr
    assert not ckpt.exists()

    probe = (
        "import importlib.util, sys\n"
        "from gitsnap._optional import require_torch\n"
        "from gitsnap.errors import MissingDependency\n"
        "print(importlib.util.find_spec('torch'), importlib.util.find_spec('safetensors'))\n"
        "try:\n"
        "    require_torch('handing tensors to torch')\n"
        "except MissingDependency as err:\n"
        "    print(err); print(err.hint)\n"
    )
    assert run([py, "-c", probe]).stdout.splitlines() == [
        "None None",
        "handing tensors to torch needs torch, which is not installed",
        "pip install 'gitsnap[torch]'",
    ]
