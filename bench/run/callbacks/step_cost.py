"""Seconds per training step and peak memory, for the cost columns of the leaderboard."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


def peak_memory(device: torch.device) -> tuple[float, str]:
    """(megabytes, what was measured): CUDA's peak allocation on a GPU, the process's peak
    resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_memory_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process_max_rss"


class StepCost(Callback):
    """Wall time of each training batch (data loading excluded) after ``warmup_steps``.

    On CUDA the device is synchronised at both ends of a step so the time is the step's own.

    Args:
        warmup_steps: first steps left out (allocator warm-up, cudnn autotuning).
    """

    def __init__(self, warmup_steps: int = 5) -> None:
        if warmup_steps < 0:
            raise ValueError(f"StepCost: warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.durations: list[float] = []
        self._started: float | None = None
        self._seen = 0
        self._device = torch.device("cpu")

    def _sync(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._device = pl_module.device
        self.durations.clear()
        self._seen = 0
        if self._device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self._device)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._sync()
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._started is None:
            return
        self._sync()
        self._seen += 1
        if self._seen > self.warmup_steps:
            self.durations.append(time.perf_counter() - self._started)
        self._started = None

    def record_fields(self) -> dict[str, Any]:
        """The ``cost`` section of the run record; on a GPU also what CUDA's caching allocator
        held at most (``peak_reserved_mb``) and the device's memory (``device_memory_mb``): what
        a sweep's ``--runs-per-gpu`` checks before it puts several runs on one device."""
        megabytes, kind = peak_memory(self._device)
        timing = None
        if self.durations:
            timing = {"median": statistics.median(self.durations), "mean": statistics.fmean(self.durations), "steps": len(self.durations)}
        cost = {"seconds_per_step": timing, "peak_memory_mb": round(megabytes, 1), "memory_kind": kind}
        if self._device.type == "cuda":
            cost["peak_reserved_mb"] = round(torch.cuda.max_memory_reserved(self._device) / 2**20, 1)
            cost["device_memory_mb"] = round(torch.cuda.get_device_properties(self._device).total_memory / 2**20, 1)
        return {"cost": cost}
