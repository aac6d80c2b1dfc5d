"""A transformers ``TrainerCallback`` that snapshots each checkpoint the ``Trainer`` writes.

Example::

    from transformers import Trainer
    from gitsnap.integrations.transformers import SnapshotCallback

    snap = SnapshotCallback()
    Trainer(model=model, args=args, train_dataset=data, callbacks=[snap]).train()
    print([r.path for r in snap.results])     # runs/checkpoint-500, runs/checkpoint-1000, ...

In ``on_save`` -- called once the Trainer has written
``args.output_dir/checkpoint-{global_step}`` -- the main process saves that
folder's snapshot with :func:`gitsnap.save`: metrics from the newest value
of each number in ``state.log_history`` (``loss``, ``learning_rate``,
``eval_loss``, ...), params from the run's ``TrainingArguments``
(``args.to_sanitized_dict()``; ``params=False`` leaves them out), and the
message ``checkpoint-{step}``. ``output_dir`` must be inside the git work
tree (gitsnap git-ignores the checkpoint folders). Folders the Trainer
rotates away (``save_total_limit``) keep their snapshots:
``git snap checkout PATH`` brings one back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from gitsnap.integrations import _values

if TYPE_CHECKING:
    from gitsnap.commands.save import SaveResult
    from gitsnap.metrics import Scalar

# transformers.trainer_utils.PREFIX_CHECKPOINT_DIR, stable since the Trainer exists.
CHECKPOINT_PREFIX = "checkpoint"


class SnapshotCallback(TrainerCallback):
    """Snapshot ``checkpoint-{global_step}`` each time the Trainer saves one."""

    def __init__(
        self,
        *,
        message: str = "checkpoint-{step}",
        params: bool = True,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.message = message
        self.with_params = params
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.results: list[SaveResult] = []

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> Any:
        if not state.is_world_process_zero:
            return control
        import gitsnap

        out = Path(args.output_dir)
        folder = (out if out.is_absolute() else self.cwd / out) / (
            f"{CHECKPOINT_PREFIX}-{state.global_step}"
        )
        params = (
            _values.params(args.to_sanitized_dict(), source="the TrainingArguments")
            if self.with_params
            else None
        )
        res = gitsnap.save(
            folder,
            message=self.message.format(step=state.global_step, epoch=state.epoch),
            metrics=latest_metrics(state.log_history),
            params=params,
            cwd=self.cwd,
        )
        self.results.append(res)
        return control


def latest_metrics(log_history: Sequence[Mapping[str, Any]]) -> dict[str, Scalar]:
    """The newest value of every number the Trainer logged (``step``/``epoch`` included)."""
    latest: dict[str, Scalar] = {}
    for entry in reversed(log_history):
        for name, value in _values.numbers(entry).items():
            latest.setdefault(name, value)
    return dict(sorted(latest.items()))
