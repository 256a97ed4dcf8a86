"""Dual-balancing multi-task learning (DB-MTL), Lin, Ye, Xu, Shi & Kwok, 2023 (arXiv:2308.12029)."""

from __future__ import annotations

import torch

from mtlbench.bench.run.methods.base import GradientAggregator, Space
from mtlbench.bench.run.methods.state import Slot, Value


class DualBalancing(GradientAggregator):
    """Loss-scale balancing by log losses, gradient-magnitude balancing by rescaling to the
    largest task-gradient norm. DB-MTL is usually listed among loss weightings but needs the
    per-task gradients, so it takes the Jacobian like an aggregator.

    With g_k = J_k / (L_k + eps) the gradient of log L_k, an EMA per task
    b_k <- g_k + (beta / t^sigma) (b_k - g_k) (LibMTL's schedule), and
    alpha_k = max_j ||b_j|| / ||b_k||, the update is sum_k alpha_k b_k.

    Under DDP in feature space it is not of the form J^T w(J J^T), so the representation Jacobian
    is gathered from every rank (T x the global representation size, per step).

    Args:
        beta: the EMA coefficient (0.9 in the paper).
        beta_sigma: its decay exponent (0.5 in the paper).
        eps: added to losses before the logarithm.

    Example (the first step: the gradients of log L_k, (1, 0) and (0, 1), of equal norm, each times the EMA's first weight 1 - beta):
        >>> import torch
        >>> method = DualBalancing(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.1000, 0.1000])
    """

    short_name = "DB-MTL"

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.5, eps: float = 1e-8, space: Space = "parameters") -> None:
        super().__init__(space)
        self.beta = beta
        self.beta_sigma = beta_sigma
        self.eps = eps
        self.steps = 0
        self.buffer: torch.Tensor | None = None

    def reset(self) -> None:
        self.steps = 0
        self.buffer = None

    def forward(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        log_grads = jacobian / (losses.to(jacobian.dtype).unsqueeze(1).abs() + self.eps)
        self.steps += 1
        if self.buffer is None or self.buffer.shape != log_grads.shape:
            self.buffer = torch.zeros_like(log_grads)
        self.buffer = log_grads + (self.beta / self.steps**self.beta_sigma) * (self.buffer - log_grads)
        norms = self.buffer.norm(dim=1)
        scale = norms.max() / (norms + self.eps)
        return (scale.unsqueeze(1) * self.buffer).sum(dim=0)

    def state_slots(self) -> dict[str, Slot]:
        return {"steps": Slot("count"), "buffer": Slot("tensor", ("T", "*"), optional=True)}  # the EMA of log-loss gradients

    def state_values(self) -> dict[str, Value]:
        return {"steps": self.steps, "buffer": self.buffer}

    def load_state_values(self, values: dict[str, Value]) -> None:
        self.steps = values["steps"]
        self.buffer = values["buffer"]

    def extra_repr(self) -> str:
        return f"beta={self.beta}, beta_sigma={self.beta_sigma}, eps={self.eps}, {super().extra_repr()}"
