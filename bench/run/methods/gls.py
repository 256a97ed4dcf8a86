"""Geometric loss strategy (GLS), Chennupati et al., CVPR-W 2019, via torchjd's ``GeometricMean``."""

from __future__ import annotations

from torchjd.scalarization import GeometricMean

from mtlbench.bench.run.methods.torchjd_adapter import TorchJDScalarizer


class GeometricLossStrategy(TorchJDScalarizer):
    """L = (prod_k L_k)^(1/T): each task's gradient is scaled by L / (T L_k), so tasks with small
    losses are not drowned out.

    Example:
        >>> import torch
        >>> method = GeometricLossStrategy(); method.bind(2)
        >>> method(torch.tensor([1.0, 4.0]))
        tensor(2.)
    """

    short_name = "GLS"

    def make_inner(self) -> GeometricMean:
        return GeometricMean()
