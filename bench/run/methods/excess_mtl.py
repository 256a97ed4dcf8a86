"""ExcessMTL, He et al., ICML 2024: robust multi-task learning with excess risks. Wraps torchjd's ExcessMTL."""

from __future__ import annotations

import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.state import MethodStateError, Slot, Value
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class ExcessMTL(TorchJDAggregator):
    """Task weights updated multiplicatively from each task's estimated excess risk (a
    diagonal-Hessian estimate from accumulated squared gradients), so tasks far from their
    own optimum get more weight and noisy tasks do not dominate. Stateful.

    Under DDP in feature space it is not of the form J^T w(J J^T), so the representation Jacobian
    is gathered from every rank (T x the global representation size, per step).

    Example (the first step, from equal task weights):
        >>> import torch
        >>> method = ExcessMTL(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.2689, 1.4621])
    """

    short_name = "ExcessMTL"
    hyper_names = ("robust_step_size", "n_warmup_steps")

    def __init__(self, robust_step_size: float = 1.0, n_warmup_steps: int = 0, space: Space = "parameters") -> None:
        super().__init__(space)
        self.robust_step_size = robust_step_size
        self.n_warmup_steps = n_warmup_steps

    def make_inner(self) -> jd.Aggregator:
        return jd.ExcessMTL(robust_step_size=self.robust_step_size, n_warmup_steps=self.n_warmup_steps)

    _TENSORS = {"weights": "_weights", "sq_grad_sum": "_sq_grad_sum", "initial_w": "_initial_w", "warmup_w_sum": "_warmup_w_sum"}

    def state_slots(self) -> dict[str, Slot]:
        return {
            "weights": Slot("tensor", ("T",), optional=True),
            "sq_grad_sum": Slot("tensor", ("T", "*"), optional=True),  # T x the number of shared parameters
            "initial_w": Slot("tensor", ("T",), optional=True),
            "warmup_w_sum": Slot("tensor", ("T",), optional=True),
            "steps": Slot("count"),
        }

    def state_values(self) -> dict[str, Value]:
        weighting = self.inner_part(jd.ExcessMTLWeighting)
        return {slot: getattr(weighting, name) for slot, name in self._TENSORS.items()} | {"steps": weighting._n_steps}

    def load_state_values(self, values: dict[str, Value]) -> None:
        created = [values[slot] is not None for slot in ("weights", "sq_grad_sum", "warmup_w_sum")]
        if any(created) and not all(created):
            raise MethodStateError("holds ExcessMTL state with part of weights, sq_grad_sum, warmup_w_sum; the run expects all or none")
        weighting = self.inner_part(jd.ExcessMTLWeighting)
        for slot, name in self._TENSORS.items():
            setattr(weighting, name, values[slot])
        weighting._n_steps = values["steps"]
        grads = values["sq_grad_sum"]
        weighting._state_key = None if grads is None else (*grads.shape, grads.dtype, grads.device)
