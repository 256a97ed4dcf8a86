"""ExcessMTL, He et al., ICML 2024: robust multi-task learning with excess risks. Wraps torchjd's ExcessMTL."""

from __future__ import annotations

import torchjd.aggregation as jd

from bench.methods.base import Space
from bench.methods.torchjd_adapter import TorchJDAggregator


class ExcessMTL(TorchJDAggregator):
    """Task weights updated multiplicatively from each task's estimated excess risk (a
    diagonal-Hessian estimate from accumulated squared gradients), so tasks far from their
    own optimum get more weight and noisy tasks do not dominate. Stateful.

    Under DDP in feature space it is not of the form J^T w(J J^T), so the representation Jacobian
    is gathered from every rank (T x the global representation size, per step).
    """

    short_name = "ExcessMTL"
    hyper_names = ("robust_step_size", "n_warmup_steps")

    def __init__(self, robust_step_size: float = 1.0, n_warmup_steps: int = 0, space: Space = "parameters") -> None:
        super().__init__(space)
        self.robust_step_size = robust_step_size
        self.n_warmup_steps = n_warmup_steps

    def make_inner(self) -> jd.Aggregator:
        return jd.ExcessMTL(robust_step_size=self.robust_step_size, n_warmup_steps=self.n_warmup_steps)
