"""Unconflicting projection of gradients (UPGrad), Quinton & Rey, 2024 (arXiv:2406.16232). Wraps torchjd's UPGrad."""

from __future__ import annotations

import torchjd.aggregation as jd

from mtlbench.bench.run.methods.gramian import EquilibratedProjector
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class UPGrad(TorchJDAggregator):
    """Projects every task gradient onto the dual cone of all task gradients (a quadratic program
    on the Gramian) and averages the projections: the update never conflicts with any task
    gradient, and equals their mean when they do not conflict.

    Example (the mean of each gradient projected onto the dual cone of both):
        >>> import torch
        >>> method = UPGrad(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.4000, 0.7000])
    """

    short_name = "UPGrad"
    non_conflicting = True

    def make_inner(self) -> jd.Aggregator:
        return jd.UPGrad(projector=EquilibratedProjector())
