"""Priority-constrained descent (PCD), torchjd's ``PCD`` (TMLR 2026, arXiv:2606.29521)."""

from __future__ import annotations

import torch
import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.state import Slot, Value
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class PCD(TorchJDAggregator):
    """Follows the first task's (normalised) gradient as closely as possible subject to every
    other task receiving at least a fraction ``tau`` of the first-order progress of its own
    normalised gradient; gradient scales are EMAs of the squared norms (``beta``).

    Hierarchical by design: the first task of the datamodule is the primary one, so the
    method is not invariant to a permutation of the tasks. Stateful (the EMAs).

    Example (the first task leads; the second keeps a fraction tau = 0.02 of its own progress):
        >>> import torch
        >>> method = PCD(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.9998, 0.0200])
    """

    short_name = "PCD"
    priority_ordered = True
    hyper_names = ("tau", "beta", "eps")

    def __init__(self, tau: float = 0.02, beta: float = 0.999, eps: float = 1e-8, space: Space = "parameters") -> None:
        super().__init__(space)
        self.tau = tau
        self.beta = beta
        self.eps = eps

    def make_inner(self) -> jd.Aggregator:
        return jd.PCD(tau=self.tau, beta=self.beta, eps=self.eps)

    def state_slots(self) -> dict[str, Slot]:
        return {"sq_norm_ema": Slot("tensor", ("T",), optional=True), "steps": Slot("count")}

    def state_values(self) -> dict[str, Value]:
        weighting = self.inner_part(jd.PCDWeighting)
        steps = weighting._n_steps
        return {"sq_norm_ema": weighting._sq_norm_ema, "steps": 0 if steps is None else int(steps)}

    def load_state_values(self, values: dict[str, Value]) -> None:
        weighting = self.inner_part(jd.PCDWeighting)
        ema = values["sq_norm_ema"]
        weighting._sq_norm_ema = ema
        weighting._n_steps = None if ema is None else torch.tensor(values["steps"])
        weighting._state_key = None if ema is None else self.num_tasks
