"""Concurrent gitsnap commands are safe (issue 14, point 6): real processes, a real lock."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

from gitsnap.workspace import Workspace
from tests import helpers
from tests.helpers import git, run_snap


def _ckpt(path: Path, seed: int, layers: int = 2) -> bytes:
    rng = np.random.default_rng(seed)
    tensors = {f"layers.{i}.weight": rng.standard_normal((96, 64)).astype(np.float32)
               for i in range(layers)}  # fmt: skip
    helpers.write_safetensors(path, tensors)
    return path.read_bytes()


def test_a_second_writer_waits_then_stops_with_a_clear_message(dvc_repo: Path) -> None:
    _ckpt(dvc_repo / "m.safetensors", 0)
    with Workspace.discover(dvc_repo).lock("save"):
        proc = run_snap(
            "save", "m.safetensors", cwd=dvc_repo, check=False,
            env={"GITSNAP_LOCK_TIMEOUT": "0.3"},
        )  # fmt: skip
        assert proc.returncode == 3, proc.stderr
        assert f"another gitsnap process is working here (pid {os.getpid()}: git snap save)" in (
            proc.stderr
        )
        assert "hint: wait for it to finish" in proc.stderr
        assert not (dvc_repo / "m.safetensors.snap").exists()  # it stopped before writing
        # Read-only commands take no lock.
        assert run_snap("status", cwd=dvc_repo, env={"GITSNAP_LOCK_TIMEOUT": "0"}).returncode == 0
    run_snap("save", "m.safetensors", cwd=dvc_repo)  # released: it goes through
    assert (dvc_repo / "m.safetensors.snap").is_file()


def test_the_lock_is_reentrant_within_a_process(dvc_repo: Path) -> None:
    ws = Workspace.discover(dvc_repo)
    with ws.lock("pull"), Workspace.discover(dvc_repo).lock("checkout"):
        lock = ws.store.root.parent / "lock"
        assert lock.read_text().startswith(f"{os.getpid()} pull")
    assert lock.read_text() == ""


def test_concurrent_commands_lose_and_corrupt_nothing(
    dvc_repo: Path, local_remote: Path, tmp_path: Path
) -> None:
    _ckpt(dvc_repo / "m.safetensors", 0)
    run_snap("save", "m.safetensors", cwd=dvc_repo)
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "m", cwd=dvc_repo)
    run_snap("push", cwd=dvc_repo)
    m_bytes = (dvc_repo / "m.safetensors").read_bytes()
    env = {**os.environ, "GITSNAP_LOCK_TIMEOUT": "300"}
    for round_ in range(3):
        # Many tensors: a save writes objects for a while before its pointer names them,
        # the window in which an unlocked gc --grace 0 deletes them.
        a_bytes = _ckpt(dvc_repo / "a.safetensors", 100 + round_, layers=400)
        commands = [
            ["save", "a.safetensors", "-m", f"round {round_}"],
            ["save", "a.safetensors", "-m", f"round {round_}"],
            ["gc", "--grace", "0s"],  # deletes what no pointer names: the lock keeps it off
            # a.safetensors is being saved: a pull of it would rightly refuse (unsaved)
            ["pull", "m.safetensors"],
            ["pull", "m.safetensors"],
            ["checkout", "m.safetensors"],
        ]
        procs = []
        for c in commands:
            procs.append(
                subprocess.Popen(
                    ["git", "snap", *c],
                    cwd=dvc_repo,
                    env=env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
            time.sleep(0.2)  # let the first save get going
        for c, p in zip(commands, procs, strict=True):
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, (c, out, err)
        fsck = run_snap("fsck", cwd=dvc_repo, check=False)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        # Every pointer restores, byte for byte, to what was saved.
        out = tmp_path / f"out{round_}"
        run_snap("checkout", "a.safetensors", "m.safetensors", "--to", out, cwd=dvc_repo)
        assert (out / "a.safetensors").read_bytes() == a_bytes
        assert (out / "m.safetensors").read_bytes() == m_bytes
        assert (dvc_repo / "m.safetensors").read_bytes() == m_bytes
