"""Nash-MTL, Navon et al., ICML 2022: multi-task learning as a bargaining game. Wraps torchjd's NashMTL."""

from __future__ import annotations

import torch
import torchjd.aggregation as jd

from bench.methods.base import Space
from bench.methods.state import Slot, Value
from bench.methods.torchjd_adapter import TorchJDAggregator


class NashMTL(TorchJDAggregator):
    """Weights alpha solving (G^T G) alpha = 1 / alpha (the Nash bargaining solution) by a sequence of
    convex problems (cvxpy); the update is G^T alpha, rescaled to norm at most max_norm.
    Stateful: warm starts from the previous weights; update_weights_every > 1 reuses them.
    """

    short_name = "Nash-MTL"
    non_conflicting = True
    gramian_determined = True  # torchjd solves on G G^T and rescales by ||alpha G||
    hyper_names = ("max_norm", "update_weights_every", "optim_niter")

    def __init__(self, max_norm: float = 1.0, update_weights_every: int = 1, optim_niter: int = 20, space: Space = "parameters") -> None:
        super().__init__(space)
        self.max_norm = max_norm
        self.update_weights_every = update_weights_every
        self.optim_niter = optim_niter

    def make_inner(self) -> jd.Aggregator:
        return jd.NashMTL(
            n_tasks=self.num_tasks, max_norm=self.max_norm, update_weights_every=self.update_weights_every, optim_niter=self.optim_niter
        )

    def state_slots(self) -> dict[str, Slot]:
        return {"step": Slot("number"), "prvs_alpha": Slot("tensor", ("T",)), "normalization_factor": Slot("tensor", (1,))}

    def state_values(self) -> dict[str, Value]:
        weighting = self.bound_inner().weighting
        return {
            "step": float(weighting.step),
            "prvs_alpha": torch.from_numpy(weighting.prvs_alpha).clone(),
            "normalization_factor": torch.from_numpy(weighting.normalization_factor).clone(),
        }

    def load_state_values(self, values: dict[str, Value]) -> None:
        weighting = self.bound_inner().weighting
        weighting.step = values["step"]
        weighting.prvs_alpha = values["prvs_alpha"].cpu().numpy().copy()
        weighting.normalization_factor = values["normalization_factor"].cpu().numpy().copy()
        if weighting.step > 0:  # torchjd builds its convex problem at step 0 only: rebuild it
            weighting._init_optim_problem()
