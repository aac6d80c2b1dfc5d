"""A Lightning ``Callback`` that snapshots the model while it trains.

Example::

    import lightning.pytorch as L
    from gitsnap.integrations.lightning import SnapshotCallback

    snap = SnapshotCallback("checkpoints/step-{step}.ckpt", every_n_train_steps=500)
    L.Trainer(callbacks=[snap]).fit(model, data)
    print([r.snapshot_id for r in snap.results])

Every ``every_n_train_steps`` steps, or every ``every_n_epochs`` epochs (the
default: each epoch), the callback writes a full checkpoint with
``trainer.save_checkpoint(path)`` (every rank takes part, as Lightning
requires) and then, on global rank zero, saves its snapshot with
:func:`gitsnap.save`: metrics from ``trainer.callback_metrics`` (the values
logged with ``self.log``), params from the module's hyper-parameters
(``save_hyperparameters()``), and a message such as ``epoch 2 step 300``.

``path`` may hold ``{epoch}`` and ``{step}``: each snapshot then has its own
checkpoint and pointer, all listed by ``git snap status`` and kept by a
commit. A fixed path is snapshotted again and again; its pointer holds the
newest, whose ``parent`` is the one before. Commit the pointers that should
stay in the history.

With ``on_train_end=True`` (the default) the last state is snapshotted when
training ends, unless that step was just snapshotted. ``pytorch_lightning``
(the older package name) works too when ``lightning`` is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from lightning.pytorch import Callback
except ImportError:  # the standalone package of Lightning 1.x / 2.x
    from pytorch_lightning import Callback  # type: ignore[assignment]

from gitsnap.integrations import _values

if TYPE_CHECKING:
    from gitsnap.commands.save import SaveResult


class SnapshotCallback(Callback):
    """Write ``path`` with ``trainer.save_checkpoint`` and snapshot it every N steps or epochs.

    ``path`` (relative to ``cwd``, default the current folder) may hold ``{epoch}`` and
    ``{step}``; ``message`` too. ``results`` lists the :class:`~gitsnap.SaveResult` of each
    snapshot taken.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "model.ckpt",
        *,
        every_n_train_steps: int | None = None,
        every_n_epochs: int | None = None,
        on_train_end: bool = True,
        message: str = "epoch {epoch} step {step}",
        weights_only: bool = False,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        for name, n in (
            ("every_n_train_steps", every_n_train_steps),
            ("every_n_epochs", every_n_epochs),
        ):
            if n is not None and n < 1:
                raise ValueError(f"{name} must be at least 1, not {n}")
        self.path = Path(path)
        self.every_n_train_steps = every_n_train_steps
        self.every_n_epochs = every_n_epochs if every_n_epochs or every_n_train_steps else 1
        self.snapshot_on_train_end = on_train_end
        self.message = message
        self.weights_only = weights_only
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.results: list[SaveResult] = []
        self._last_step: int | None = None

    # ---------------------------------------------------------------- Lightning's hooks

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *_: Any) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step > 0 and trainer.global_step % n == 0:
            self.snapshot(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        n = self.every_n_epochs
        if n and (trainer.current_epoch + 1) % n == 0:
            self.snapshot(trainer, pl_module)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.snapshot_on_train_end:
            self.snapshot(trainer, pl_module)

    # ---------------------------------------------------------------- the work

    def snapshot(self, trainer: Any, pl_module: Any) -> SaveResult | None:
        """Write the checkpoint and save its snapshot now (once per training step)."""
        if self._last_step == trainer.global_step:
            return None
        self._last_step = trainer.global_step
        path = Path(str(self.path).format(epoch=trainer.current_epoch, step=trainer.global_step))
        target = path if path.is_absolute() else self.cwd / path
        trainer.save_checkpoint(target, weights_only=self.weights_only)
        if not trainer.is_global_zero:
            return None
        import gitsnap

        hparams = getattr(pl_module, "hparams", None) or {}
        res = gitsnap.save(
            target,
            message=self.message.format(epoch=trainer.current_epoch, step=trainer.global_step),
            metrics=_values.numbers(trainer.callback_metrics),
            params=_values.params(hparams, source="the module's hyper-parameters"),
            cwd=self.cwd,
        )
        self.results.append(res)
        return res
