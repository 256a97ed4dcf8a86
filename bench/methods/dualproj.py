"""DualProj, Quinton & Rey, 2024: the mean gradient projected onto the dual cone of the task gradients."""

from __future__ import annotations

import torchjd.aggregation as jd

from bench.methods.gramian import EquilibratedProjector
from bench.methods.torchjd_adapter import TorchJDAggregator


class DualProj(TorchJDAggregator):
    """Projects the average of the task gradients onto the dual cone (the set of directions that
    conflict with no task gradient), so no task's loss increases to first order.
    """

    short_name = "DualProj"
    non_conflicting = True

    def make_inner(self) -> jd.Aggregator:
        return jd.DualProj(projector=EquilibratedProjector())
