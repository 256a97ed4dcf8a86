"""Gradient vaccine (GradVac), Wang et al., ICLR 2021. torchjd's GradVac, solved on the cosines."""

from __future__ import annotations

import math

import numpy as np
import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.gramian import equilibrate
from mtlbench.bench.run.methods.state import Slot, Value
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class GradVac(TorchJDAggregator):
    """Like PCGrad but aligns each pair of task gradients towards an exponential moving average
    of their cosine similarity instead of only removing conflicts, visiting the other tasks in
    a random order (torch's global generator). Stateful (the EMA).

    Where the cosine ``phi`` of ``g_i`` with ``g_j`` is below its target ``phi_T``, ``g_i``
    gains ``|g_i| (phi_T sqrt(1 - phi^2) - phi sqrt(1 - phi_T^2)) / (|g_j| sqrt(1 - phi_T^2)) g_j``
    (the paper's Eq. 3); the update is the sum of the altered gradients. The target of every
    ordered pair (i, j) is updated at every step, whether or not the pair was altered, from the
    cosine of g_i as already altered earlier in the step with g_j (torchjd 0.18.0's reading, with
    its order of random draws, and LibMTL's current repository's; LibMTL 1.1.5 updates only the
    altered pairs); the paper also applies the method per layer, here it acts on all shared
    parameters (or features) at once. A zero ``g_j`` alters nothing (its cosine counts
    as 0 in the EMA).

    Solved in float64 on the cosines of the tasks (``G = D C D``, :func:`~mtlbench.bench.run.methods.gramian.equilibrate`):
    the alterations are invariant to each task's scale, so norm ratios of 10^6 cost no accuracy.

    Args:
        beta: EMA coefficient of the target similarities.
        eps: floor of the denominators ``|g_i| |g_j|`` and ``|g_j| sqrt(1 - phi_T^2)``, relative to
            the norms of the pair's unaltered gradients (torchjd adds an absolute ``eps`` to them;
            added, even a relative one moves the update at exactly opposite tasks by up to
            ``sqrt(2 eps)`` of the gradients' norms).

    Example (the first step, whose cosine targets start at 0: PCGrad's projection):
        >>> import torch
        >>> method = GradVac(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.8000, 1.4000])
    """

    short_name = "GradVac"
    randomized = True
    hyper_names = ("beta", "eps")

    def __init__(self, beta: float = 0.5, eps: float = 1e-8, space: Space = "parameters") -> None:
        super().__init__(space)
        self.beta = beta
        self.eps = eps

    def make_inner(self) -> jd.Aggregator:
        return jd.GradVac(beta=self.beta, eps=self.eps)  # holds the targets (its weighting's state)

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        # g_i altered = s_i sum_k a_ik u_k (u_k = g_k / s_k): GradVac on the unit gradients, then scaled
        cosines, scale = equilibrate(gramian)
        scale = scale.cpu().numpy()
        alterations = self._vaccinate(cosines.cpu().numpy())
        return torch.from_numpy((scale[:, None] * alterations / scale[None, :]).sum(axis=0)).to(gramian.device)

    def _vaccinate(self, cosines: np.ndarray) -> np.ndarray:
        """``A`` with ``sum_k A_ik u_k`` the i-th altered unit gradient; updates the targets."""
        tasks = len(cosines)
        weighting = self.inner_part(jd.GradVacWeighting)
        weighting._ensure_state(tasks, torch.float64)
        targets = weighting._phi_t.detach().cpu().numpy().copy()
        live = cosines.diagonal() > 0  # u_k has norm 1, or is a zero gradient
        alterations = np.eye(tasks)
        for i in range(tasks):
            dots = cosines[i].copy()  # <altered u_i, u_k> for every k
            others = [j for j in range(tasks) if j != i]
            for j in (others[k] for k in torch.randperm(tasks - 1).tolist()):
                norm_i = math.sqrt(max(dots @ alterations[i], 0.0))
                phi = dots[j] / max(norm_i, self.eps) if live[j] else 0.0
                target = targets[i, j]
                if live[j] and phi < target:
                    root_target = math.sqrt(max(1.0 - target * target, 0.0))
                    step = norm_i * (target * math.sqrt(max(1.0 - phi * phi, 0.0)) - phi * root_target) / max(root_target, self.eps)
                    alterations[i, j] += step
                    dots += step * cosines[j]
                targets[i, j] = (1.0 - self.beta) * target + self.beta * phi
        weighting._phi_t = torch.from_numpy(targets)
        return alterations

    def state_slots(self) -> dict[str, Slot]:
        return {"phi": Slot("tensor", ("T", "T"), optional=True)}  # the EMA of pairwise cosines

    def state_values(self) -> dict[str, Value]:
        return {"phi": self.inner_part(jd.GradVacWeighting)._phi_t}

    def load_state_values(self, values: dict[str, Value]) -> None:
        weighting = self.inner_part(jd.GradVacWeighting)
        phi = values["phi"]
        weighting._phi_t = phi
        weighting._state_key = None if phi is None else (self.num_tasks, phi.dtype)
