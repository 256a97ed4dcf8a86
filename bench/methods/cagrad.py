"""Conflict-averse gradient descent (CAGrad), Liu et al., NeurIPS 2021. Wraps torchjd's CAGrad."""

from __future__ import annotations

import torchjd.aggregation as jd

from bench.methods.base import Space
from bench.methods.torchjd_adapter import TorchJDAggregator


class CAGrad(TorchJDAggregator):
    """Maximises the worst local improvement of any task within a ball of radius c ||g_0|| around
    the average gradient g_0; c = 0 gives the mean, large c approaches MGDA.

    Args:
        c: ball radius relative to the mean gradient norm (0.4 on NYUv2 in the paper).
    """

    short_name = "CAGrad"
    hyper_names = ("c", "norm_eps")

    def __init__(self, c: float = 0.4, norm_eps: float = 1e-4, space: Space = "parameters") -> None:
        super().__init__(space)
        self.c = c
        self.norm_eps = norm_eps

    def make_inner(self) -> jd.Aggregator:
        return jd.CAGrad(c=self.c, norm_eps=self.norm_eps)
