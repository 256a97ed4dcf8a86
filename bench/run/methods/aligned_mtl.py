"""Aligned-MTL, Senushkin et al., CVPR 2023: independent component alignment. torchjd's AlignedMTL, solved with relative accuracy."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.gramian import equilibrate
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator

RANK_TOLERANCE = 1e-10  # an eigenvalue of the cosine matrix below this is a linear dependence
JACOBI_SWEEPS = 50  # Jacobi converges quadratically: 5 to 10 sweeps in practice


def jacobi_eigh(gramian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of a positive semi-definite matrix by the cyclic Jacobi method,
    which finds every eigenvalue of ``G = D C D`` to a relative accuracy set by the conditioning
    of ``C`` alone, whatever the scales ``D`` (Demmel & Veselić, "Jacobi's method is more accurate
    than QR", SIAM J. Matrix Anal. Appl. 1992): a rotation is skipped once
    ``|G_pq| <= eps sqrt(G_pp G_qq)``. LAPACK's ``eigh`` is accurate only relative to the largest
    eigenvalue, 10^12 times the smallest at a norm ratio of 10^6.

    Example (tasks of norms 10^3, 1 and 10^6; LAPACK's smallest eigenvalue is 0.106523):
        >>> scales = np.array([1e3, 1.0, 1e6])
        >>> cosines = np.array([[1.0, 0.9, 0.5], [0.9, 1.0, 0.7], [0.5, 0.7, 1.0]])
        >>> values, vectors = jacobi_eigh(scales[:, None] * cosines * scales)
        >>> round(float(values.min()), 12)
        0.106666609304
    """
    matrix = np.array(gramian, dtype=np.float64)
    tasks = len(matrix)
    vectors = np.eye(tasks)
    tolerance = float(np.finfo(np.float64).eps)
    for _ in range(JACOBI_SWEEPS):
        rotated = False
        for p in range(tasks - 1):
            for q in range(p + 1, tasks):
                off, first, second = float(matrix[p, q]), float(matrix[p, p]), float(matrix[q, q])
                if abs(off) <= tolerance * math.sqrt(abs(first * second)):
                    continue
                rotated = True
                theta = (second - first) / (2.0 * off)
                tangent = math.copysign(1.0, theta) / (abs(theta) + math.hypot(theta, 1.0))
                cosine = 1.0 / math.sqrt(tangent * tangent + 1.0)
                sine = tangent * cosine
                row_p, row_q = matrix[p].copy(), matrix[q].copy()
                matrix[p] = matrix[:, p] = cosine * row_p - sine * row_q
                matrix[q] = matrix[:, q] = sine * row_p + cosine * row_q
                # the new pivots from the rotation's definition (not from the products above)
                matrix[p, p], matrix[q, q] = first - tangent * off, second + tangent * off
                matrix[p, q] = matrix[q, p] = 0.0
                vector_p = vectors[:, p].copy()
                vectors[:, p] = cosine * vector_p - sine * vectors[:, q]
                vectors[:, q] = sine * vector_p + cosine * vectors[:, q]
        if not rotated:
            break
    return matrix.diagonal().copy(), vectors


class AlignedMTL(TorchJDAggregator):
    """Replaces the task gradients by the closest orthogonal system with equal singular values
    (condition number 1, via the Gramian's eigendecomposition) scaled by the smallest
    (scale_mode="min") singular value, and averages it: weights ``B 1 / T`` (torchjd's
    convention; the paper's Algorithm 1 and LibMTL sum, a step-size factor of T).

    ``B = sqrt(scale) V L^{-1/2} V^T`` needs every eigenvalue ``L`` of the Gramian to relative
    accuracy, the smallest included: they come from :func:`jacobi_eigh`, in float64, so a norm
    ratio of 10^6 between tasks costs no accuracy. The rank is read from the cosines of the task
    gradients (:func:`~mtlbench.bench.run.methods.gramian.equilibrate`), not from the Gramian's
    eigenvalues: a duplicated task leaves an eigenvalue of float64 rounding noise that a
    threshold relative to the largest can keep, and inverting it blows the update up by 10^15.

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
        if scale_mode not in ("min", "median", "rmse"):
            raise ValueError(f"AlignedMTL: scale_mode must be 'min', 'median' or 'rmse', got '{scale_mode}'")
        self.scale_mode = scale_mode

    def make_inner(self) -> jd.Aggregator:
        return jd.AlignedMTL(scale_mode=self.scale_mode)

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        tasks = len(gramian)
        cosines, _ = equilibrate(gramian)
        rank = int((torch.linalg.eigvalsh(cosines) > RANK_TOLERANCE).sum())
        values, vectors = jacobi_eigh(gramian.cpu().numpy())
        kept = np.argsort(values)[tasks - rank :]  # the range: the largest eigenvalues
        values, vectors = values[kept], vectors[:, kept]
        # torchjd's scales of the aligned system: the smallest, median or root-mean-square singular value
        scale = {"min": values.min(), "median": torch.from_numpy(values).median().item(), "rmse": values.mean()}[self.scale_mode]
        balance = np.sqrt(scale) * (vectors / np.sqrt(values)) @ vectors.T
        return torch.from_numpy(balance.sum(axis=1) / tasks).to(gramian.device)
