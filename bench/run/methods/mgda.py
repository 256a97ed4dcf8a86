"""Multiple-gradient descent (MGDA), Désidéri 2012; for MTL, Sener & Koltun, NeurIPS 2018."""

from __future__ import annotations

from typing import Literal

import numpy as np
import quadprog
import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import GradientAggregator, Space
from mtlbench.bench.run.methods.gramian import equilibrate, gramian64

RIDGE = 1e-12  # added to the cosine matrix (unit diagonal): rank-deficient Gramians stay solvable


def min_norm_weights(gramian: torch.Tensor) -> torch.Tensor:
    """argmin_{w in simplex} w^T G w, solved exactly as a quadratic program (quadprog), in float64.

    Solved on the cosines (:func:`~mtlbench.bench.run.methods.gramian.equilibrate`, ``G = D C D``): with
    ``y = D w`` the problem is ``min y^T C y`` subject to ``sum y_i / s_i = 1, y >= 0``, whose
    conditioning does not depend on the tasks' scales. A tiny ridge keeps rank-deficient
    Gramians well posed; a zero Gramian gives uniform weights, a zero task gradient all the
    weight (the hull then holds 0). The weights are returned in float64.

    Example:
        >>> min_norm_weights(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
        tensor([0.8000, 0.2000], dtype=torch.float64)
    """
    num_tasks = gramian.shape[0]
    if not bool(gramian.any()):
        return torch.full((num_tasks,), 1.0 / num_tasks, dtype=torch.float64, device=gramian.device)
    gramian = gramian.double()
    zero = gramian.diagonal() <= 0
    if bool(zero.any()):  # 0 is in the hull: the minimum norm is 0, whatever the other tasks' scales
        return zero.double() / zero.sum()
    cosines, scale = equilibrate(gramian / gramian.diagonal().max())  # the weights do not depend on G's scale
    matrix = cosines.cpu().numpy() + RIDGE * np.eye(num_tasks)
    inverse_scale = 1.0 / scale.cpu().numpy()
    constraints = np.concatenate([inverse_scale[:, None], np.eye(num_tasks)], axis=1)
    bounds = np.concatenate([[1.0], np.zeros(num_tasks)])
    weights = np.clip(quadprog.solve_qp(matrix, np.zeros(num_tasks), constraints, bounds, meq=1)[0], 0.0, None) * inverse_scale
    return torch.from_numpy(weights / weights.sum()).to(gramian.device)


class MGDA(GradientAggregator):
    """The minimum-norm point of the convex hull of the task gradients,
    d = sum_k w_k g_k with w = argmin_{w in simplex} ||sum_k w_k g_k||.
    With ``space="features"`` this is MGDA-UB.

    The task gradients are used as they are (the paper's problem); Sener & Koltun's code can
    normalise each one first (by its norm or its loss), which changes the point.

    ``solver="qp"`` (default) solves the T-variable problem on the Gramian exactly with
    quadprog. ``solver="frank_wolfe"`` uses torchjd's MGDA, the paper's Frank-Wolfe algorithm
    (Algorithm 2) from uniform weights, which stops once a step moves less than ``epsilon``.
    Frank-Wolfe's error grows with the spread of the task norms (its steps are invariant to a
    change of variables such as ``y = D w``, so equilibrating does not help). The norm of its
    update over the minimum norm, worst of 20 random conflicting Jacobians (50 dimensions) per
    setting:

    ==============================  ========  ======  ======  ======
    tasks, epsilon, max_iters       ratio 1   10^2    10^4    10^6
    ==============================  ========  ======  ======  ======
    3, 1e-3, 100 (the defaults)     1.00000   1.0014  1.0016  1.0010
    10, 1e-3, 100 (the defaults)    1.014     2.2     63      2.5e3
    10, 1e-9, 1000                  1.003     1.006   1.007   19
    10, 1e-12, 10^4                 1.0004    1.0007  1.0007  1.019
    ==============================  ========  ======  ======  ======

    (norm ratio: largest over smallest task gradient), hence the exact default. A zero task
    gradient takes all the weight (0 is in the hull).

    Example:
        >>> method = MGDA(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.ones(2))
        tensor([0.5000, 0.5000])
    """

    short_name = "MGDA"
    non_conflicting = True

    def __init__(
        self,
        solver: Literal["qp", "frank_wolfe"] = "qp",
        epsilon: float = 1e-3,
        max_iters: int = 100,
        space: Space = "parameters",
    ) -> None:
        super().__init__(space)
        if solver not in ("qp", "frank_wolfe"):
            raise ValueError(f"MGDA: solver must be 'qp' or 'frank_wolfe', got '{solver}'")
        self.solver = solver
        self.epsilon = epsilon
        self.max_iters = max_iters
        self.frank_wolfe = jd.MGDA(epsilon=epsilon, max_iters=max_iters)

    def forward(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        return self.weights(jacobian, losses).to(jacobian.dtype) @ jacobian

    @property
    def weighted(self) -> bool:
        return True

    def weights(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        if self.solver == "frank_wolfe":
            return self.frank_wolfe.gramian_weighting(gramian64(jacobian))
        return min_norm_weights(gramian64(jacobian))

    def weights_from_gramian(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        if self.solver == "frank_wolfe":
            return self.frank_wolfe.gramian_weighting(gramian.double())
        return min_norm_weights(gramian)

    def extra_repr(self) -> str:
        return f"solver='{self.solver}', epsilon={self.epsilon}, max_iters={self.max_iters}, {super().extra_repr()}"
