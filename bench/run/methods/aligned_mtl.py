"""Aligned-MTL, Senushkin et al., CVPR 2023: independent component alignment. Wraps torchjd's AlignedMTL."""

from __future__ import annotations

from typing import Literal

import torch
import torchjd.aggregation as jd
from torchjd.aggregation._aligned_mtl import AlignedMTLWeighting

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.gramian import equilibrate
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator

RANK_TOLERANCE = 1e-10  # an eigenvalue of the cosine matrix below this is a linear dependence


class AlignedMTL(TorchJDAggregator):
    """Replaces the task gradients by the closest orthogonal system with equal singular values
    (condition number 1, via the Gramian's eigendecomposition) scaled by the smallest
    (scale_mode="min") singular value, and averages it: weights ``B 1 / T`` (torchjd's
    convention; the paper's Algorithm 1 and LibMTL sum, a step-size factor of T).

    The rank is read from the cosines of the task gradients (:func:`~mtlbench.bench.run.methods.gramian.equilibrate`),
    not from the Gramian's eigenvalues: a duplicated task leaves an eigenvalue of float64
    rounding noise that torchjd's relative threshold can keep, and inverting it blows the update
    up by 10^15. torchjd's balance transformation is applied to the Gramian restricted to its
    range.

    Example (orthogonal gradients of norms 1 and 2 are aligned to the smaller one's length):
        >>> import torch
        >>> method = AlignedMTL(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.5000, 0.5000])
    """

    short_name = "Aligned-MTL"
    hyper_names = ("scale_mode",)

    def __init__(self, scale_mode: Literal["min", "median", "rmse"] = "min", space: Space = "parameters") -> None:
        super().__init__(space)
        self.scale_mode = scale_mode

    def make_inner(self) -> jd.Aggregator:
        return jd.AlignedMTL(scale_mode=self.scale_mode)

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        tasks = len(gramian)
        cosines, _ = equilibrate(gramian)
        rank = int((torch.linalg.eigvalsh(cosines) > RANK_TOLERANCE).sum())
        vectors = torch.linalg.eigh(gramian).eigenvectors[:, tasks - rank :]  # the range: the largest eigenvalues
        balance = vectors @ AlignedMTLWeighting._compute_balance_transformation(vectors.T @ gramian @ vectors, self.scale_mode) @ vectors.T
        return balance @ torch.full((tasks,), 1.0 / tasks, dtype=gramian.dtype, device=gramian.device)
