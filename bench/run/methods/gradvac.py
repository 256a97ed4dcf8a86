"""Gradient vaccine (GradVac), Wang et al., ICLR 2021. Wraps torchjd's GradVac."""

from __future__ import annotations

import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.state import Slot, Value
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class GradVac(TorchJDAggregator):
    """Like PCGrad but aligns each pair of task gradients towards an exponential moving average
    of their cosine similarity instead of only removing conflicts, visiting the other tasks in
    a random order (torch's global generator). Stateful (the EMA).

    The target of every ordered pair (i, j) is updated at every step, whether or not the pair
    was altered, from the cosine of g_i as already altered earlier in the step with g_j
    (torchjd's and LibMTL's reading); the paper applies the method per layer, here it acts on
    all shared parameters (or features) at once. Solved from the float64 Gramian.

    Args:
        beta: EMA coefficient of the target similarities.
        eps: added to norm products, relative to the Jacobian's squared Frobenius norm.

    Example (the first step, whose cosine targets start at 0: PCGrad's projection):
        >>> import torch
        >>> method = GradVac(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.8000, 1.4000])
    """

    short_name = "GradVac"
    randomized = True
    hyper_names = ("beta", "eps")

    def __init__(self, beta: float = 0.5, eps: float = 1e-8, space: Space = "parameters") -> None:
        super().__init__(space)
        self.beta = beta
        self.eps = eps

    def make_inner(self) -> jd.Aggregator:
        return jd.GradVac(beta=self.beta, eps=self.eps)

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        # its weights are ratios of norms: on the trace-normalised Gramian eps is relative
        return self.bound_inner().gramian_weighting(gramian / gramian.trace())

    def state_slots(self) -> dict[str, Slot]:
        return {"phi": Slot("tensor", ("T", "T"), optional=True)}  # the EMA of pairwise cosines

    def state_values(self) -> dict[str, Value]:
        return {"phi": self.inner_part(jd.GradVacWeighting)._phi_t}

    def load_state_values(self, values: dict[str, Value]) -> None:
        weighting = self.inner_part(jd.GradVacWeighting)
        phi = values["phi"]
        weighting._phi_t = phi
        weighting._state_key = None if phi is None else (self.num_tasks, phi.dtype)
