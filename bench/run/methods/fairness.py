"""The alpha-fair weights of Nash-MTL (alpha = 1) and FairGrad, solved exactly in float64.

Both methods' weights solve ``G w = w^(-1/alpha)`` elementwise (Navon et al., ICML 2022, for
alpha = 1, the Nash bargaining solution; Ban & Ji, ICML 2024, for any alpha > 0). That ``w``
minimises the strictly convex ``w^T G w / 2 - sum_i h(w_i)`` with ``h' = w^(-1/alpha)``, so
damped Newton's method converges to it from any positive start, quadratically near it.
torchjd's solvers (sequential convex programs for Nash-MTL, ``least_squares`` for FairGrad)
stop at residuals of about 1e-3 or fail on ill-conditioned Gramians; their answer is the start.
"""

from __future__ import annotations

import torch

from mtlbench.bench.run.methods.gramian import equilibrate

NEWTON_STEPS = 60


def alpha_fair_weights(gramian: torch.Tensor, alpha: float, start: torch.Tensor) -> torch.Tensor:
    """The ``w > 0`` with ``G w = w^(-1/alpha)``, by Newton's method from ``start`` (float64).

    Newton steps are taken in ``v = D w`` on the cosines (``G = D C D``), so the tasks' scales
    cost no accuracy. A task with a zero gradient has no solution: its weight stays ``start``'s.

    Example:
        >>> gramian = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> alpha_fair_weights(gramian, 1.0, torch.ones(2, dtype=torch.float64))
        tensor([0.5000, 1.0000], dtype=torch.float64)
    """
    cosines, scale = equilibrate(gramian.double())
    live = gramian.diagonal() > 0
    weights = start.double().clone()
    if not bool(live.any()):
        return weights
    matrix, norms = cosines[live][:, live], scale[live]
    v = (weights[live] * norms).clamp(min=1e-12)
    power = -1.0 / alpha

    def utility(point: torch.Tensor) -> torch.Tensor:
        w = point / norms
        return w.log().sum() if alpha == 1 else (w ** (1 + power)).sum() / (1 + power)

    def objective(point: torch.Tensor) -> torch.Tensor:
        return 0.5 * point @ matrix @ point - utility(point)

    def gradient(point: torch.Tensor) -> torch.Tensor:
        return matrix @ point - (point / norms) ** power / norms

    for _ in range(NEWTON_STEPS):
        slope = gradient(v)
        curvature = -power * (v / norms) ** (power - 1) / norms**2
        step = torch.linalg.solve(matrix + torch.diag(curvature), -slope)
        if not bool(step.abs().gt(1e-15 * v.abs()).any()):
            break
        t = 1.0
        # backtrack until the objective decreases enough, or (near the solution, where the
        # objective's rounding hides its decrease) the gradient shrinks
        while bool((v + t * step <= 0).any()) or (
            objective(v + t * step) > objective(v) + 0.25 * t * (slope @ step)
            and gradient(v + t * step).norm() > (1 - 0.25 * t) * slope.norm()
        ):
            t /= 2
        v = v + t * step
    weights[live] = v / norms
    return weights
