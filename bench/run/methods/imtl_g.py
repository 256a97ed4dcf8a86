"""IMTL-G, the gradient-balancing half of Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021. Wraps torchjd's IMTLG."""

from __future__ import annotations

import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.gramian import equilibrate
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator

EQUAL_PROJECTIONS = 1e-9  # relative spread of the projections C b, in float64, below which they are equal


class IMTLG(TorchJDAggregator):
    """Weights such that the update has equal projections onto every task's unit gradient,
    computed in closed form from the Gramian.

    torchjd computes ``w ∝ G^+ sqrt(diag G)``. With ``G = D C D`` (:func:`~mtlbench.bench.run.methods.gramian.equilibrate`)
    that is ``w ∝ D^{-1} C^+ 1``, which is what is solved here: on the cosines, in float64,
    so neither the tasks' relative scales (a pseudo-inverse drops the Gramian's small
    eigenvalues) nor their overall scale (torchjd's absolute 1e-12 test of ``sum v``) matter.
    A zero task gradient gets no weight.

    Where no update with equal, non-zero projections exists (``C b = k 1`` has no solution with
    ``k != 0``: exactly opposite tasks, 0 in the convex hull of the unit gradients, more tasks
    than the gradients span), the paper's condition holds only for ``d = 0``, which is the update
    there (weights 0).

    Example (an update with equal projections onto both unit gradients):
        >>> import torch
        >>> method = IMTLG(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.6667, 0.6667])
    """

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        cosines, scale = equilibrate(gramian)
        weights = self.bound_inner().gramian_weighting(cosines)  # C^+ 1, normalised
        projections = (cosines @ weights)[gramian.diagonal() > 0]
        if projections.numel() == 0 or bool(projections.max() - projections.min() > EQUAL_PROJECTIONS * projections.abs().max()):
            return torch.zeros_like(weights)  # C^+ 1 does not solve C b = k 1: only d = 0 projects equally
        weights = weights / scale
        total = weights.sum()
        return weights / total if bool(total != 0) else weights

    short_name = "IMTL-G"

    def make_inner(self) -> jd.Aggregator:
        return jd.IMTLG()
