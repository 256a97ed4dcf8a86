"""Kill points for resume tests: a run stops where a kill should land, says so, and waits to be
SIGKILLed from outside (:func:`run_until_killed`); or it fails with a genuine error.

Each kill point fires once: it creates its ``marker`` file (named ``*.kill``) first, and a rerun
of the same command (the marker present) goes through it.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from pytorch_lightning.callbacks import Callback

from mtlbench.bench.run.checkpoints import AtomicCheckpointIO


def _wait_for_the_kill(marker: Path) -> None:
    marker.touch()
    while True:
        time.sleep(1)


class PauseAt(Callback):
    """Wait to be killed before training step ``step`` (the number of steps taken), or at batch
    ``val_batch`` of the validation of epoch ``val_epoch``."""

    def __init__(self, marker: str, step: int | None = None, val_epoch: int | None = None, val_batch: int = 0) -> None:
        self.marker, self.step, self.val_epoch, self.val_batch = Path(marker), step, val_epoch, val_batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            _wait_for_the_kill(self.marker)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        at = trainer.current_epoch == self.val_epoch and batch_idx == self.val_batch
        if at and not trainer.sanity_checking and not self.marker.exists():
            _wait_for_the_kill(self.marker)


class PausingCheckpointIO(AtomicCheckpointIO):
    """mtlbench's checkpoint writer, which waits to be killed halfway through writing the
    ``save``-th checkpoint of this process taken at training step ``from_step`` or later: the
    real writer's temporary file holds half the bytes when the kill lands."""

    def __init__(self, marker: str, save: int, from_step: int = 0) -> None:
        super().__init__()
        self.marker, self.save, self.from_step, self.saved = Path(marker), save, from_step, 0

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        self.saved += checkpoint.get("global_step", 0) >= self.from_step
        if self.saved != self.save or self.marker.exists():
            return super().save_checkpoint(checkpoint, path, storage_options)
        save = torch.save

        def half(obj: Any, stream) -> None:
            buffer = io.BytesIO()
            save(obj, buffer)
            stream.write(buffer.getvalue()[: buffer.tell() // 2])
            stream.flush()
            _wait_for_the_kill(self.marker)

        with mock.patch("torch.save", half):
            super().save_checkpoint(checkpoint, path, storage_options)


def run_until_killed(command: list[str], marker: Path, log: Path, cwd: Path, timeout: float = 300) -> None:
    """Start ``command`` in a process group of its own, wait until it reaches the kill point
    that writes ``marker``, then SIGKILL the group (the run and its loader workers) from here.
    Any other kill point reached first (a marker beside ``marker``) is a failure."""
    before = set(marker.parent.iterdir())
    with open(log, "a") as stream:
        process = subprocess.Popen(command, cwd=cwd, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not marker.exists():
            reached = [path.name for path in set(marker.parent.iterdir()) - before if path.suffix == ".kill"]
            if reached:
                raise AssertionError(f"the run reached kill point {reached} before {marker.name}")
            if process.poll() is not None:
                raise AssertionError(f"the run ended ({process.returncode}) before kill point {marker.name}: {log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no kill point within {timeout} s: {log.read_text()[-3000:]}")
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class FailAt(Callback):
    """Raise a genuine error (not a user's) at training step ``step``: a run that crashes."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"injected failure at step {self.step}")
