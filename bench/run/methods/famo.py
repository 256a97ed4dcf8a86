"""Fast adaptive multitask optimisation (FAMO), Liu et al., NeurIPS 2023, via torchjd's ``FAMO``."""

from __future__ import annotations

import torch
from torchjd.scalarization import FAMO as _FAMO

from mtlbench.bench.run.methods.state import MethodStateError, Slot, Value
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDScalarizer


class FastAdaptiveMultitask(TorchJDScalarizer):
    """L = c sum_k z_k log(L_k + eps), z = softmax(w), c = (sum_k z_k / (L_k + eps))^-1: the
    update decreases all losses at about the same rate using loss values only. The logits w
    are learned by FAMO's own Adam from the change of each log loss across a step, so the
    training step recomputes the losses on the same batch after the update (one extra
    forward pass) and calls ``update``.

    Args:
        lr: learning rate of w (0.025 in the paper).
        weight_decay: decay of w (1e-3 in the paper's Algorithm 2).

    Example (equal logits: c * (log 1 + log 2) / 2 with c = 1 / (1/2 + 1/4)):
        >>> import torch
        >>> method = FastAdaptiveMultitask(); method.bind(2)
        >>> method(torch.tensor([1.0, 2.0]))
        tensor(0.4621)
    """

    short_name = "FAMO"
    hyper_names = ("lr", "weight_decay")
    train_inner_parameters = False
    needs_losses_after_step = True

    def __init__(self, lr: float = 0.025, weight_decay: float = 1e-3) -> None:
        super().__init__()
        self.lr = lr
        self.weight_decay = weight_decay

    def make_inner(self) -> _FAMO:
        return _FAMO(self.num_tasks, lr=self.lr, weight_decay=self.weight_decay)

    def state_slots(self) -> dict[str, Slot]:
        # the logits and min_losses are in the state dict; the losses before the step and the
        # moments of FAMO's own Adam (created at its first update) are slots
        task = Slot("tensor", ("T",), optional=True)
        return {"prev_losses": task, "adam_steps": Slot("number", optional=True), "adam_exp_avg": task, "adam_exp_avg_sq": task}

    def state_values(self) -> dict[str, Value]:
        inner = self.bound_inner()
        adam = inner._optimizer.state[inner._w] if inner._optimizer is not None else {}
        return {
            "prev_losses": inner._prev_losses,
            "adam_steps": float(adam["step"]) if adam else None,
            "adam_exp_avg": adam.get("exp_avg"),
            "adam_exp_avg_sq": adam.get("exp_avg_sq"),
        }

    def load_state_values(self, values: dict[str, Value]) -> None:
        moments = [values[key] is not None for key in ("adam_steps", "adam_exp_avg", "adam_exp_avg_sq")]
        if any(moments) and not all(moments):
            raise MethodStateError("holds FAMO state with part of its Adam moments; the run expects all of them or none")
        inner = self.bound_inner()
        inner._prev_losses = values["prev_losses"]
        inner._optimizer = None
        if all(moments):
            inner._optimizer = torch.optim.Adam([inner._w], lr=self.lr, weight_decay=self.weight_decay)
            inner._optimizer.state[inner._w] = {
                "step": torch.tensor(values["adam_steps"], dtype=torch.float32),
                "exp_avg": values["adam_exp_avg"].clone(),
                "exp_avg_sq": values["adam_exp_avg_sq"].clone(),
            }

    def update(self, losses_after: torch.Tensor) -> None:
        self.inner.update(losses_after.detach())
