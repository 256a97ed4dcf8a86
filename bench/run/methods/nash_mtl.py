"""Nash-MTL, Navon et al., ICML 2022: multi-task learning as a bargaining game. Wraps torchjd's NashMTL."""

from __future__ import annotations

import warnings

import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.fairness import alpha_fair_weights
from mtlbench.bench.run.methods.gramian import equilibrate
from mtlbench.bench.run.methods.state import Slot, Value
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator, gramian_factor


class NashMTL(TorchJDAggregator):
    """Weights alpha solving (G^T G) alpha = 1 / alpha (the Nash bargaining solution) by torchjd's
    sequence of convex problems (cvxpy, ECOS); the update is G^T alpha, rescaled to norm at most
    max_norm (0: no rescaling). Stateful: warm starts from the previous weights;
    update_weights_every > 1 reuses them.

    The bargaining solution is covariant under task rescaling: with ``K = D C D`` (``D`` the
    gradient norms, ``C`` their cosines), ``alpha = beta / D`` where ``C beta = 1 / beta``.
    torchjd is given a factor of ``C`` (float64), so its solver, whose stopping rule is absolute,
    meets a problem of unit scale whatever the tasks' norms. Its answer is then polished by
    Newton's method on the bargaining equation
    (:func:`~mtlbench.bench.run.methods.fairness.alpha_fair_weights`): torchjd's iterations stop at a
    residual of 1e-3, and where ECOS fails (nearly opposite tasks) they return their starting
    point unchanged. The clipping is applied here, on the float64
    Gramian, to the weights in the tasks' own scale.

    Example (orthogonal gradients of norms 1 and 2: weights 1 and 1/2 give (1, 1), rescaled to max_norm 1):
        >>> import torch
        >>> method = NashMTL(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.7071, 0.7071])
    """

    short_name = "Nash-MTL"
    non_conflicting = True
    gramian_determined = True  # torchjd solves on the factor's Gramian
    hyper_names = ("max_norm", "update_weights_every", "optim_niter")

    def __init__(self, max_norm: float = 1.0, update_weights_every: int = 1, optim_niter: int = 20, space: Space = "parameters") -> None:
        super().__init__(space)
        self.max_norm = max_norm
        self.update_weights_every = update_weights_every
        self.optim_niter = optim_niter

    def make_inner(self) -> jd.Aggregator:
        every = self.update_weights_every
        return jd.NashMTL(n_tasks=self.num_tasks, max_norm=0.0, update_weights_every=every, optim_niter=self.optim_niter)

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        weighting = self.bound_inner().weighting
        cosines, scale = equilibrate(gramian)
        solves = weighting.step % self.update_weights_every == 0  # else torchjd reuses its last weights
        with warnings.catch_warnings():  # cvxpy on torchjd's problem, which is not in DPP form: its re-solves are slower, not wrong
            warnings.filterwarnings("ignore", message="You are solving a parameterized problem that is not DPP", category=UserWarning)
            beta = weighting(gramian_factor(cosines)).double()
        if solves:
            self.solved_scale = scale.cpu()
            beta = alpha_fair_weights(cosines, 1.0, beta)
            weighting.prvs_alpha = beta.cpu().numpy()  # the next solve warm-starts from the exact solution
        alpha = beta / self.solved_scale.to(beta.device)
        if self.max_norm > 0:
            norm = (alpha @ gramian @ alpha).clamp(min=0).sqrt()
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)
        return alpha

    def reset(self) -> None:
        super().reset()
        self.solved_scale = torch.ones(self.num_tasks, dtype=torch.float64)

    def state_slots(self) -> dict[str, Slot]:
        return {
            "step": Slot("number"),
            "prvs_alpha": Slot("tensor", ("T",)),
            "normalization_factor": Slot("tensor", (1,)),
            "solved_scale": Slot("tensor", ("T",)),
        }

    def state_values(self) -> dict[str, Value]:
        weighting = self.bound_inner().weighting
        return {
            "step": float(weighting.step),
            "prvs_alpha": torch.from_numpy(weighting.prvs_alpha).clone(),
            "normalization_factor": torch.from_numpy(weighting.normalization_factor).clone(),
            "solved_scale": self.solved_scale.clone(),
        }

    def load_state_values(self, values: dict[str, Value]) -> None:
        weighting = self.bound_inner().weighting
        weighting.step = values["step"]
        weighting.prvs_alpha = values["prvs_alpha"].cpu().numpy().copy()
        weighting.normalization_factor = values["normalization_factor"].cpu().numpy().copy()
        self.solved_scale = values["solved_scale"].cpu().double()
        if weighting.step > 0:  # torchjd builds its convex problem at step 0 only: rebuild it
            weighting._init_optim_problem()
