"""``gitsnap.integrations.lightning``: the real Lightning ``Trainer`` training a tiny model for a
few steps with the ``SnapshotCallback`` -- the example of ``docs/python-api.md``, as written --;
the snapshots are then read back through ``git snap``.

The training runs in a subprocess (Lightning's threads, warnings and seeds stay out of pytest),
offline, on CPU, in a real git + dvc repository.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import git, run_snap, train_doc_example

REPO = Path(__file__).resolve().parents[2]


def _train(repo: Path) -> list[dict[str, str]]:
    return train_doc_example("lightning", repo)


def test_snapshot_callback_records_each_step_with_metrics_and_params(dvc_repo: Path) -> None:
    results = _train(dvc_repo)

    # Every 2 steps of 4: two snapshots, each with its own checkpoint and pointer (the end of
    # training is step 4, just snapshotted, so not again).
    assert [r["path"] for r in results] == ["models/step-2.ckpt", "models/step-4.ckpt"]
    assert len({r["snapshot"] for r in results}) == 2
    for r in results:
        assert (dvc_repo / f"{r['path']}.snap").is_file()
    status = run_snap("status", "--json", cwd=dvc_repo).stdout
    assert "models/step-2.ckpt" in status and "models/step-4.ckpt" in status

    for r, step in zip(results, (2, 4), strict=True):
        shown = json.loads(run_snap("show", r["path"], "--json", cwd=dvc_repo).stdout)
        pointer = shown["pointer"]
        assert pointer["id"] == r["snapshot"]
        assert pointer["message"] == f"epoch {(step - 1) // 3} step {step}"
        # trainer.callback_metrics: what the module logged with self.log, as numbers.
        assert set(pointer["metrics"]) == {"train_loss"}
        assert isinstance(pointer["metrics"]["train_loss"], float)
        # save_hyperparameters(): the params.
        assert pointer["params"] == {"lr": 0.1, "hidden": 4}

    # Committed, the checkpoints come back byte for byte from the store.
    saved = {r["path"]: (dvc_repo / r["path"]).read_bytes() for r in results}
    git("add", "-A", cwd=dvc_repo)
    git("commit", "-q", "-m", "two snapshots", cwd=dvc_repo)
    tracked = git("ls-files", "models", cwd=dvc_repo).stdout.split()
    assert tracked == ["models/step-2.ckpt.snap", "models/step-4.ckpt.snap"]  # weights ignored
    for path in saved:
        (dvc_repo / path).unlink()
    run_snap("checkout", "HEAD", "--", *saved, cwd=dvc_repo)
    for path, data in saved.items():
        assert (dvc_repo / path).read_bytes() == data
