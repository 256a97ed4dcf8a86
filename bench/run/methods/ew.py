"""Equal weighting (EW): the plain sum of task losses, the baseline every method must beat."""

from __future__ import annotations

import torch

from mtlbench.bench.run.methods.base import LossWeighting


class EqualWeighting(LossWeighting):
    """L = sum_k L_k (every weight 1; LibMTL's ``EW``).

    Example:
        >>> EqualWeighting()(torch.tensor([1.0, 2.0, 3.0]))
        tensor(6.)
    """

    short_name = "EW"

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return losses.sum()

    def extra_repr(self) -> str:
        return ""
