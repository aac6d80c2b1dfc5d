"""DESIGN D3: our objects live outside files/md5, so `dvc gc` never deletes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import MakeCheckpoint, RunSnap, dvc, git


@pytest.mark.parametrize("gc_args", [("-w", "-f"), ("-w", "-f", "--all-commits")])
def test_dvc_gc_keeps_every_snapshot(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap, gc_args: tuple[str, ...]
) -> None:
    (dvc_repo / "data.csv").write_text("a,b\n1,2\n")
    dvc("add", "data.csv")
    ckpt = make_checkpoint(dvc_repo / "model.safetensors", seed=0)
    v1 = ckpt.read_bytes()
    run_snap("save", "model.safetensors", "-m", "v1")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    make_checkpoint(ckpt, seed=0, modify=("head", "blocks.0"))
    v2 = ckpt.read_bytes()
    run_snap("save", "model.safetensors", "-m", "v2")
    git("add", "-A")
    git("commit", "-q", "-m", "v2")
    # An old DVC-tracked version that gc may legitimately drop:
    (dvc_repo / "data.csv").write_text("a,b\n3,4\n")
    dvc("add", "data.csv")

    dvc("gc", *gc_args)

    assert (
        dvc_repo / ".dvc" / "cache" / "files" / "md5"
    ).is_dir()  # dvc gc did run on its own objects
    run_snap("checkout", "HEAD~1")
    assert ckpt.read_bytes() == v1
    run_snap("checkout", "HEAD")
    assert ckpt.read_bytes() == v2
    assert run_snap("status").stdout.startswith("clean")
