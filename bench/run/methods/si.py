"""Scale-invariant loss (SI): the sum of log losses (Navon et al., Nash-MTL, ICML 2022, baseline)."""

from __future__ import annotations

import torch

from mtlbench.bench.run.methods.base import LossWeighting


class ScaleInvariant(LossWeighting):
    """L = sum_k log(L_k + eps): invariant to a constant rescaling of any task's loss, since
    d log(c L_k) = d L_k / L_k. torchjd has no scalarizer for it, hence this file.

    Example:
        >>> method = ScaleInvariant(); method.bind(2)
        >>> round(method(torch.tensor([1.0, torch.e])).item(), 4)
        1.0
    """

    short_name = "SI"

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.log(losses + self.eps).sum()

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
