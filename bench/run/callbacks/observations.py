"""Logging what a callback observes every k steps (the gradient probe, the task affinity)."""

from __future__ import annotations

import pytorch_lightning as pl


def log_observation(trainer: pl.Trainer, values: dict[str, float], step: int) -> None:
    """Give every logger (CSV, W&B ...) ``values`` at training step ``step``, from rank 0.

    Not ``LightningModule.log``: its per-step values reach the loggers only on steps that are
    multiples of ``log_every_n_steps``, so observations every k steps would be lost unless k is
    a multiple of it (the reference's probe every 125 steps with logging every 50 kept one
    probe in two)."""
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)
