"""Conflict-averse gradient descent (CAGrad), Liu et al., NeurIPS 2021. Wraps torchjd's CAGrad."""

from __future__ import annotations

import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.gramian import equilibrate
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


def active_set_weights(gramian: torch.Tensor, support: torch.Tensor, c: float) -> torch.Tensor | None:
    """CAGrad's weights solved exactly on the active set ``S`` its solver found, or ``None``
    where the KKT conditions do not hold there.

    The dual is ``min_{w in simplex} <g_w, g0> + r |g_w|`` (``r = c |g0|``) and the update
    ``d = g0 + r g_w / |g_w|``. On ``S`` every task improves by the same ``λ = <g_i, d>``, which
    with ``b = G 1 / T`` gives ``w_S = (λ G_SS^{-1} 1 - G_SS^{-1} b_S) / μ``,
    ``λ = (p + μ) / q`` and ``μ = sqrt(p^2 - q (b_S^T G_SS^{-1} b_S - r^2))`` (``q = 1^T G_SS^{-1} 1``,
    ``p = 1^T G_SS^{-1} b_S``). The solves go through the cosines, so the tasks' scales cost
    no accuracy. Returned as the weights of ``d = sum_i weight_i g_i``.
    """
    tasks = len(gramian)
    b = gramian.sum(dim=1) / tasks
    radius = c * (b.sum() / tasks).clamp(min=0).sqrt()
    cosines, scale = equilibrate(gramian[support][:, support])
    try:
        solved = torch.linalg.solve(cosines, torch.stack([1 / scale, b[support] / scale], dim=1)) / scale[:, None]
    except torch.linalg.LinAlgError:
        return None
    inv_one, inv_b = solved[:, 0], solved[:, 1]
    q, p = inv_one.sum(), inv_b.sum()
    discriminant = p * p - q * (b[support] @ inv_b - radius**2)
    if discriminant <= 0 or q <= 0:
        return None
    mu = discriminant.sqrt()
    level = (p + mu) / q
    dual = torch.zeros_like(b)
    dual[support] = (level * inv_one - inv_b) / mu
    direction_norm = (dual @ gramian @ dual).clamp(min=0).sqrt()
    if bool((dual < 0).any()) or direction_norm <= 0:
        return None
    weights = 1.0 / tasks + radius / direction_norm * dual
    improvements = gramian @ weights
    if bool((improvements < level - 1e-9 * improvements.abs().max()).any()):
        return None
    return weights


class CAGrad(TorchJDAggregator):
    """Maximises the worst local improvement of any task within a ball of radius c ||g_0|| around
    the average gradient g_0; c = 0 gives the mean, large c approaches MGDA.

    The update is ``g_0 + c |g_0| g_w / |g_w|`` as in the paper's Algorithm 1, without the
    official code's optional rescale by ``1 / (1 + c^2)`` (a constant step-size factor).

    torchjd solves the dual with CLARABEL, to about 1e-5 relative; the active set its answer
    points to is then solved exactly (:func:`active_set_weights`: the tasks by decreasing part
    of ``g_w``, the first prefix whose solution meets the optimality conditions).

    torchjd returns no update when ``|g_w|`` falls below ``norm_eps``: it is given the Gramian
    divided by its trace, so that threshold is relative to the Jacobian's Frobenius norm, and
    below it (0 in the tasks' hull, a Pareto-stationary point) the update is the mean gradient
    g_0, the limit of the official code there.

    Args:
        c: ball radius relative to the mean gradient norm (0.4 on NYUv2 in the paper).
        norm_eps: ``|g_w|`` below this fraction of the Jacobian's Frobenius norm counts as 0.

    Example (two conflicting gradients: a step that helps the worse-off task):
        >>> import torch
        >>> method = CAGrad(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.4256, 0.6384])
    """

    short_name = "CAGrad"
    hyper_names = ("c", "norm_eps")

    def __init__(self, c: float = 0.4, norm_eps: float = 1e-10, space: Space = "parameters") -> None:
        super().__init__(space)
        self.c = c
        self.norm_eps = norm_eps

    def make_inner(self) -> jd.Aggregator:
        return jd.CAGrad(c=self.c, norm_eps=self.norm_eps)

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        gramian = gramian / gramian.trace()
        weights = self.bound_inner().gramian_weighting(gramian)
        if not bool(weights.any()):  # |g_w| below norm_eps: 0 is in the tasks' hull
            return torch.full_like(weights, 1.0 / len(weights))
        if self.c == 0:
            return weights
        share = (weights - 1.0 / len(weights)) * gramian.diagonal().clamp(min=0).sqrt()  # each task's part of g_w
        order = share.argsort(descending=True)
        for size in range(1, len(order) + 1):  # the first support, by the solver's shares, that is optimal
            support = torch.zeros_like(share, dtype=torch.bool)
            support[order[:size]] = True
            exact = active_set_weights(gramian, support, self.c)
            if exact is not None:
                return exact
        return weights
