"""The last k epochs' weights, for the record's ``test_last_epochs_mean`` (``--last_epochs``)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from torch import Tensor


def final_epoch(trainer: pl.Trainer) -> int | None:
    """The epoch the run's limits end it in (``max_epochs``, ``max_steps``), or None where
    something else may end it sooner (an early-stopping callback) or the limits say nothing."""
    if any(isinstance(callback, EarlyStopping) for callback in trainer.callbacks):
        return None
    ends = []
    if trainer.max_epochs is not None and trainer.max_epochs > 0:
        ends.append(trainer.max_epochs - 1)
    per_epoch = trainer.num_training_batches
    if trainer.max_steps > 0 and isinstance(per_epoch, int) and per_epoch > 0:
        steps_per_epoch = math.ceil(per_epoch / trainer.accumulate_grad_batches)
        ends.append(math.ceil(trainer.max_steps / steps_per_epoch) - 1)
    return min(ends) if ends else None


class LastEpochs(ModelCheckpoint):
    """Lightning's top-k checkpointing with the epoch as the monitored value (the last
    ``save_top_k`` epochs), writing only the epochs that can be among them: a 200-epoch run
    keeping 10 writes 10 files, not 200 of which 190 are deleted."""

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        end = final_epoch(trainer)
        if self.monitor == "epoch" and self.save_top_k > 0 and end is not None and trainer.current_epoch <= end - self.save_top_k:
            return  # an epoch the last save_top_k will not hold: its file would be deleted unused
        super()._save_topk_checkpoint(trainer, monitor_candidates)
