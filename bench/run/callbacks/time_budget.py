"""The enclosing parts of a run's time budget (:mod:`mtlbench.bench.run.budget`)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from mtlbench.bench.run import budget as run_budget


class TimeBudget(Callback):
    """Set-up (from the command's start to the first training step), training steps, validation
    and test passes, each less the probe, checkpoint and record time nested in it; the run
    record takes the budget at each write (``budget``)."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[float, float]] = {}
        self._set_up = False

    def _start(self, name: str) -> None:
        budget = run_budget.current()
        if budget is not None:
            self._open[name] = (run_budget.clock(), budget.nested())

    def _end(self, name: str) -> None:
        budget, opened = run_budget.current(), self._open.pop(name, None)
        if budget is not None and opened is not None:
            started, nested = opened
            budget.seconds[name] += max(0.0, run_budget.clock() - started - (budget.nested() - nested))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        budget = run_budget.current()
        if budget is not None and not self._set_up:
            self._set_up = True
            measured = sum(seconds for name, seconds in budget.seconds.items() if name != "start_up")
            budget.seconds["setup"] += max(0.0, run_budget.clock() - budget.began - measured)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._start("training_steps")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._end("training_steps")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("validation")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end("validation")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("test")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end("test")

    def record_fields(self) -> dict[str, Any]:
        budget = run_budget.current()
        return {} if budget is None else {"budget": budget.fields()}
