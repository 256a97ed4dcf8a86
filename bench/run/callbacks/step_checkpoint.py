"""``last.ckpt`` every N training steps, so a preempted run on long epochs loses at most N steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from mtlbench.bench.run.errors import MethodConfigError

LAST = "last.ckpt"


class MidEpochCheckpoint(Callback):
    """Writes the run's whole state (weights, optimizer, method state, generators, loops, the
    training loader's place in its epoch) to ``last.ckpt`` after every ``every_n_steps``-th
    training step but an epoch's last, beside the checkpoints of the epochs' ends. A run resumed from it continues
    with the next batch, as if it had not been stopped (:mod:`mtlbench.datamodules.sampling`).

    Args:
        every_n_steps: steps between two checkpoints.
    """

    def __init__(self, every_n_steps: int) -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise MethodConfigError(f"checkpoint_every_n_steps must be a positive integer, got {every_n_steps!r}")
        self.every_n_steps = every_n_steps
        self._folder: Path | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the checkpoint callbacks resolve their folder in their setup, which runs after this one's
        keeper = next((cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.save_last), None)
        if keeper is None or keeper.dirpath is None:
            raise MethodConfigError("checkpoint_every_n_steps writes last.ckpt beside the run's checkpoints; enable checkpointing")
        self._folder = Path(keeper.dirpath)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Not after an epoch's last batch: the epoch's validation and its own checkpoints follow,
        # and Lightning resumes such a checkpoint in the next epoch, without that validation.
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        if self._folder is not None and trainer.global_step % self.every_n_steps == 0 and not last_batch:
            trainer.save_checkpoint(self._folder / LAST)  # every process calls it; the first writes
