"""FairGrad, Ban & Ji, ICML 2024: fair resource allocation in multi-task learning. Wraps torchjd's FairGrad."""

from __future__ import annotations

import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.fairness import alpha_fair_weights
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class FairGrad(TorchJDAggregator):
    """Weights solving (G^T G) w = w^(-1/alpha) (alpha-fair utility maximisation): alpha = 1 is
    proportional fairness (Nash-MTL's solution), large alpha approaches max-min fairness.

    torchjd's ``least_squares`` answer (float64 Gramian) is polished by Newton's method on the
    same equation (:func:`~mtlbench.bench.run.methods.fairness.alpha_fair_weights`): alone it stops far from
    the solution when the tasks' norms differ by 10^6.

    Args:
        alpha: fairness parameter (1 to 2 in the paper's NYUv2 experiments).

    Example (alpha = 1 on orthogonal gradients of norms 1 and 2: weights 1 and 1/2, equal progress):
        >>> import torch
        >>> method = FairGrad(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0]))
        tensor([1., 1.])
    """

    short_name = "FairGrad"
    non_conflicting = True
    hyper_names = ("alpha", "max_iters")

    def __init__(self, alpha: float = 1.0, max_iters: int | None = None, space: Space = "parameters") -> None:
        super().__init__(space)
        self.alpha = alpha
        self.max_iters = max_iters

    def make_inner(self) -> jd.Aggregator:
        return jd.FairGrad(alpha=self.alpha, max_iters=self.max_iters)

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        start = self.bound_inner().gramian_weighting(gramian).double()
        if self.alpha == 0:  # linear scalarisation: torchjd's uniform weights are the answer
            return start
        return alpha_fair_weights(gramian, self.alpha, start.clamp(min=1e-12))
