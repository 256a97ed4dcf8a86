"""Gradient statistics of Elich, Kirchdorfer, Köhler & Schott (GCPR 2024), as pure functions.

All take task (or sub-batch) gradients as rows of a matrix ``G [m, n]`` on the shared
parameters. Pairs are the ``m (m - 1) / 2`` unordered pairs ``(i, j), i < j``.
"""

from __future__ import annotations

import itertools

import torch

EPS = 1e-20


def pairs(m: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(m), 2))


def cosine_similarity(grads: torch.Tensor) -> torch.Tensor:
    """S_cos(g_i, g_j) = g_i . g_j / (|g_i| |g_j|) for every pair, shape ``[P]``.

    Example:
        >>> cosine_similarity(torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]))
        tensor([ 0.7071, -1.0000, -0.7071])
    """
    unit = grads / grads.norm(dim=1, keepdim=True).clamp(min=EPS)
    gram = unit @ unit.T
    return torch.stack([gram[i, j] for i, j in pairs(len(grads))]) if len(grads) > 1 else grads.new_zeros(0)


def magnitude_similarity(grads: torch.Tensor) -> torch.Tensor:
    """S_mag(g_i, g_j) = 2 |g_i| |g_j| / (|g_i|^2 + |g_j|^2): 1 for equal norms, near 0 for very
    different ones.

    Example:
        >>> magnitude_similarity(torch.tensor([[3.0, 0.0], [0.0, 3.0], [0.0, 1.0]]))
        tensor([1.0000, 0.6000, 0.6000])
    """
    norms = grads.norm(dim=1)
    values = [2 * norms[i] * norms[j] / (norms[i] ** 2 + norms[j] ** 2).clamp(min=EPS) for i, j in pairs(len(grads))]
    return torch.stack(values) if values else grads.new_zeros(0)


def conflicting_coordinates(grads: torch.Tensor) -> torch.Tensor:
    """Fraction of coordinates whose signs disagree, among those where both are non-zero.

    Example:
        >>> conflicting_coordinates(torch.tensor([[1.0, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 5.0]]))
        tensor([0.6667])
    """
    signs = torch.sign(grads)
    values = []
    for i, j in pairs(len(grads)):
        both = (signs[i] != 0) & (signs[j] != 0)
        values.append(((signs[i] != signs[j]) & both).sum() / both.sum().clamp(min=1))
    return torch.stack(values).to(grads.dtype) if values else grads.new_zeros(0)


def gram_condition_number(grads: torch.Tensor) -> torch.Tensor:
    """lambda_max / lambda_min of the Gram matrix G G^T (inf when singular).

    Example:
        >>> gram_condition_number(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        tensor(4.)
    """
    eigenvalues = torch.linalg.eigvalsh((grads @ grads.T).double())
    smallest = eigenvalues[0].clamp(min=0)
    largest = eigenvalues[-1]
    if smallest <= largest * 1e-15:
        return torch.tensor(float("inf"))
    return (largest / smallest).float()


def cosine_to(grads: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """cos(direction, g_k) for every row. With ``direction`` the combined gradient (the step is
    along its negative), a negative value means the step increases task k's loss to first order.

    Example:
        >>> cosine_to(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([2.0, 0.0]))
        tensor([ 1., -1.])
    """
    return (grads @ direction) / (grads.norm(dim=1) * direction.norm()).clamp(min=EPS)


def realised_weights(grads: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares weights w with G^T w ~ direction, and the relative residual
    |direction - G^T w| / |direction| (0 when the method's update is a combination of the task
    gradients, as for every loss weighting and for MGDA, Nash-MTL, UPGrad ...).

    Example:
        >>> w, r = realised_weights(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0.5, 2.0]))
        >>> w, r
        (tensor([0.5000, 2.0000]), tensor(0.))
    """
    solution = torch.linalg.lstsq(grads.T.double(), direction.double().unsqueeze(1)).solution.squeeze(1)
    residual = (direction.double() - grads.T.double() @ solution).norm() / direction.double().norm().clamp(min=EPS)
    return solution.float(), residual.float()


def principal_angle_cosines(basis_a: torch.Tensor, basis_b: torch.Tensor) -> torch.Tensor:
    """Cosines of the principal angles between span(rows of a) and span(rows of b), descending.

    Example:
        >>> principal_angle_cosines(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
        tensor([0.7071])
    """
    qa = torch.linalg.qr(basis_a.T.double()).Q
    qb = torch.linalg.qr(basis_b.T.double()).Q
    return torch.linalg.svdvals(qa.T @ qb).clamp(max=1.0).float()


def summarise(values: list[float] | torch.Tensor) -> dict[str, float]:
    """Mean, std, 2.5 and 97.5 percentiles and count, as in the paper's per-epoch summaries
    (non-finite values are left out and counted apart).

    Example:
        >>> summarise([1.0, 2.0, 3.0])["mean"]
        2.0
    """
    tensor = torch.as_tensor(values, dtype=torch.float64).flatten()
    finite = tensor[torch.isfinite(tensor)]
    if finite.numel() == 0:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "p2_5": float("nan"),
            "p97_5": float("nan"),
            "n": 0,
            "non_finite": int(tensor.numel()),
        }
    quantiles = torch.quantile(finite, torch.tensor([0.025, 0.975], dtype=torch.float64))
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std(unbiased=False)),
        "p2_5": float(quantiles[0]),
        "p97_5": float(quantiles[1]),
        "n": int(finite.numel()),
        "non_finite": int(tensor.numel() - finite.numel()),
    }
