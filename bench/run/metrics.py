"""The pooled loss of a split as a torchmetrics Metric with summed states: exact over a split
and under DDP. The benchmark metrics of each task are its kind's (:mod:`mtlbench.tasks`):
mIoU from a confusion matrix accumulated over the whole split, depth errors pooled over all
valid pixels of the split (not averaged per batch), normal angles in degrees.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class PooledLoss(Metric):
    """A task's loss over every valid pixel of a split: summed per-pixel losses over their count,
    the loss of the whole split taken as one batch. It does not depend on how the split is cut
    into batches or shared among processes (summed float64 states).

    Example:
        >>> metric = PooledLoss()
        >>> metric.update(torch.tensor(3.0), torch.tensor(3))  # a batch: 3 valid pixels, losses summing to 3
        >>> metric.update(torch.tensor(5.0), torch.tensor(1))
        >>> metric.compute().item()
        2.0
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, loss_sum: torch.Tensor, valid_pixels: torch.Tensor) -> None:
        """``loss_sum``: the summed loss of a batch's valid pixels; ``valid_pixels``: their number."""
        self.total += loss_sum.detach().double()
        self.count += valid_pixels

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()
