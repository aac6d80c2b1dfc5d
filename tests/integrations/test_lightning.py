"""``gitsnap.integrations.lightning``: the real Lightning ``Trainer`` training a tiny model for a
few steps with the ``SnapshotCallback``; the snapshots are then read back through ``git snap``.

The training runs in a subprocess (Lightning's threads, warnings and seeds stay out of pytest),
offline, on CPU, in a real git + dvc repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import git, run_snap

REPO = Path(__file__).resolve().parents[2]

TRAIN = """
import argparse, json
import torch
import lightning.pytorch as L
from gitsnap.integrations.lightning import SnapshotCallback

class Model(L.LightningModule):
    def __init__(self, lr: float, args: argparse.Namespace):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 2)
    def training_step(self, batch, i):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train_loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

torch.manual_seed(0)
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(12, 4)), batch_size=4)
snap = SnapshotCallback("models/step-{step}.ckpt", every_n_train_steps=2)
trainer = L.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False, callbacks=[snap])
trainer.fit(Model(0.1, argparse.Namespace(hidden=4, name="tiny")), data)
print(json.dumps([{"path": r.path, "snapshot": r.snapshot_id, "parent": r.parent}
                  for r in snap.results]))
"""


def _train(repo: Path) -> list[dict[str, str]]:
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN],
        cwd=repo,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    results: list[dict[str, str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


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
        # save_hyperparameters(): the params, a Namespace opened into dotted names.
        assert pointer["params"] == {"lr": 0.1, "args.hidden": 4, "args.name": "tiny"}

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
