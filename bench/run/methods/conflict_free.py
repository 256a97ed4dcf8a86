"""Conflict-free inverse gradients (ConFIG), Liu et al., ICLR 2025. Wraps torchjd's ConFIG."""

from __future__ import annotations

import torchjd.aggregation as jd

from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class ConFIG(TorchJDAggregator):
    """The direction with equal cosine to every unit task gradient (pseudo-inverse of the
    normalised gradients applied to the ones vector), scaled by the summed projections of the
    task gradients onto it: it conflicts with no task.

    Under DDP in feature space it is not of the form J^T w(J J^T), so the representation Jacobian
    is gathered from every rank (T x the global representation size, per step).

    Example (orthogonal gradients: the direction of the sum of their unit vectors, with the length of the summed projections):
        >>> import torch
        >>> method = ConFIG(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0]))
        tensor([1.5000, 1.5000])
    """

    short_name = "ConFIG"
    non_conflicting = True

    def make_inner(self) -> jd.Aggregator:
        return jd.ConFIG()
