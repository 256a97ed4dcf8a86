"""DualProj, Quinton & Rey, 2024: the mean gradient projected onto the dual cone of the task gradients."""

from __future__ import annotations

import torchjd.aggregation as jd

from mtlbench.bench.run.methods.gramian import EquilibratedProjector
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class DualProj(TorchJDAggregator):
    """Projects the average of the task gradients onto the dual cone (the set of directions that
    conflict with no task gradient), so no task's loss increases to first order.

    Example (the mean of these two gradients already agrees with both: it is kept):
        >>> import torch
        >>> method = DualProj(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.2500, 0.5000])
    """

    short_name = "DualProj"
    non_conflicting = True

    def make_inner(self) -> jd.Aggregator:
        return jd.DualProj(projector=EquilibratedProjector())
