"""The loss-weighting protocol: per-task losses ``[T]`` -> one scalar to differentiate.

Methods never call backward and never touch ``.grad``: the training step does, in one place.
State that must survive a checkpoint lives in buffers or parameters created by ``bind``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class LossWeighting(nn.Module, ABC):
    """Base of every loss weighting. Subclasses implement ``forward(losses) -> scalar``.

    ``bind(num_tasks)`` is called once by the LightningModule (before any checkpoint is loaded)
    so a method can size its state; ``reset()`` restores the state of a fresh run.
    ``str(method)`` is the short name used in tables and logs.
    """

    short_name: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.num_tasks = 0

    def bind(self, num_tasks: int) -> None:
        """Size the method's state for ``num_tasks`` tasks."""
        if num_tasks < 1:
            raise ValueError(f"{type(self).__name__} needs at least one task, got {num_tasks}")
        self.num_tasks = num_tasks
        self.reset()

    def reset(self) -> None:
        """Restore the state of a fresh run (stateless methods have nothing to do)."""

    @abstractmethod
    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """``losses``: shape ``[T]``, still attached to the graph; returns a scalar."""

    def __str__(self) -> str:
        return self.short_name or type(self).__name__
