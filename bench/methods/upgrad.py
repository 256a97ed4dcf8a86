"""Unconflicting projection of gradients (UPGrad), Quinton & Rey, 2024 (arXiv:2406.16232). Wraps torchjd's UPGrad."""

from __future__ import annotations

import torchjd.aggregation as jd

from bench.methods.gramian import EquilibratedProjector
from bench.methods.torchjd_adapter import TorchJDAggregator


class UPGrad(TorchJDAggregator):
    """Projects every task gradient onto the dual cone of all task gradients (a quadratic program
    on the Gramian) and averages the projections: the update never conflicts with any task
    gradient, and equals their mean when they do not conflict.
    """

    short_name = "UPGrad"
    non_conflicting = True

    def make_inner(self) -> jd.Aggregator:
        return jd.UPGrad(projector=EquilibratedProjector())
