"""A callback that SIGKILLs its own process at a given training step, once (for resume tests)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from pytorch_lightning.callbacks import Callback


class KillAt(Callback):
    """SIGKILL the process when ``global_step`` reaches ``step``, unless ``marker`` exists (it is
    created first, so a rerun with the same configuration trains through)."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, Path(marker)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


class FailAt(Callback):
    """Raise a genuine error (not a user's) at training step ``step``: a run that crashes."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"injected failure at step {self.step}")
