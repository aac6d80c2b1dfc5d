"""``gitsnap.integrations.transformers``: the real transformers ``Trainer`` (with accelerate)
training a tiny BERT for a few steps with the ``SnapshotCallback`` -- the example of
``docs/python-api.md``, as written --; the snapshots of its
``checkpoint-N`` folders are then read back and restored through ``git snap``.

The training runs in a subprocess, offline (the model is built from a config in code), on CPU,
in a real git + dvc repository.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from tests.helpers import git, run_snap, train_doc_example

REPO = Path(__file__).resolve().parents[2]


def _train(repo: Path) -> list[dict[str, str]]:
    return train_doc_example("transformers", repo)


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_snapshot_callback_records_each_checkpoint_with_metrics_and_params(
    dvc_repo: Path,
) -> None:
    results = _train(dvc_repo)

    # on_save: one snapshot per checkpoint-N folder the Trainer wrote.
    assert [r["path"] for r in results] == ["runs/checkpoint-2", "runs/checkpoint-4"]
    assert len({r["snapshot"] for r in results}) == 2
    # save_total_limit=1 rotated checkpoint-2 away; its pointer stays.
    assert not (dvc_repo / "runs/checkpoint-2").exists()
    assert (dvc_repo / "runs/checkpoint-2.snap").is_file()
    assert (dvc_repo / "runs/checkpoint-4.snap").is_file()

    for r, step in zip(results, (2, 4), strict=True):
        shown = json.loads(run_snap("show", r["path"], "--json", cwd=dvc_repo).stdout)
        pointer = shown["pointer"]
        assert pointer["id"] == r["snapshot"]
        assert pointer["message"] == f"checkpoint-{step}"
        # The newest value of each number in state.log_history at that step.
        metrics = pointer["metrics"]
        assert {"loss", "learning_rate", "grad_norm", "step", "epoch"} <= set(metrics)
        assert metrics["step"] == step
        assert isinstance(metrics["loss"], float)
        # The run's TrainingArguments (to_sanitized_dict) as params.
        params = pointer["params"]
        assert params["max_steps"] == 4
        assert params["save_steps"] == 2
        assert params["learning_rate"] == 1e-3
        assert params["output_dir"] == "runs"

    # Committed, both folders come back from the store: the rotated one with its own state,
    # the other byte for byte as the Trainer wrote it.
    last = _fingerprint(dvc_repo / "runs/checkpoint-4")
    assert "model.safetensors" in last and "trainer_state.json" in last
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "two checkpoints", cwd=dvc_repo)
    tracked = git("ls-files", "runs", cwd=dvc_repo).stdout.split()
    assert tracked == ["runs/checkpoint-2.snap", "runs/checkpoint-4.snap"]  # weights ignored
    shutil.rmtree(dvc_repo / "runs/checkpoint-4")
    run_snap("checkout", "HEAD", "--", "runs/checkpoint-2", "runs/checkpoint-4", cwd=dvc_repo)
    assert _fingerprint(dvc_repo / "runs/checkpoint-4") == last
    rotated = dvc_repo / "runs/checkpoint-2"
    assert set(_fingerprint(rotated)) == set(last)
    assert json.loads((rotated / "trainer_state.json").read_text())["global_step"] == 2
