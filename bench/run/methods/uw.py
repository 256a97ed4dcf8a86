"""Uncertainty weighting (UW), Kendall, Gal & Cipolla, CVPR 2018, via torchjd's ``UW``."""

from __future__ import annotations

from torchjd.scalarization import UW as _UW

from mtlbench.bench.run.methods.torchjd_adapter import TorchJDScalarizer


class UncertaintyWeighting(TorchJDScalarizer):
    """L = sum_k 0.5 exp(-s_k) L_k + 0.5 s_k with learned log-variances s_k (trained by the
    model's optimizer; s = 0 at the start, torchjd's and the paper's choice, so the first step
    is EW at half the scale; LibMTL starts at s = -0.5).

    Example:
        >>> import torch
        >>> method = UncertaintyWeighting(); method.bind(2)
        >>> method(torch.tensor([1.0, 3.0]))
        tensor(2., grad_fn=<SumBackward0>)
    """

    short_name = "UW"

    def make_inner(self) -> _UW:
        return _UW(self.num_tasks)
