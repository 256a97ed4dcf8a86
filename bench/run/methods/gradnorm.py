"""GradNorm, Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018."""

from __future__ import annotations

import torch
from torch import nn

from mtlbench.bench.run.methods.base import LossWeighting


class GradNorm(LossWeighting):
    """Learned task weights w that equalise the tasks' training rates.

    With n_k = ||grad_W L_k|| on the last shared layer W (given by the training step),
    G_k = w_k n_k, mean G-bar, relative inverse training rate r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0)):

        L_grad = sum_k | G_k - [G-bar r_k^alpha] |     (bracket held constant)

    The network is trained on sum_k w_k L_k (w held constant) and w by the gradient of L_grad,
    both through the model's optimizer: ``forward`` returns the sum of the two, whose gradients
    do not mix. After each step w is renormalised to sum to T.

    Args:
        alpha: restoring-force strength (1.5 for NYUv2 in the paper).

    Example (the weighted losses 1 + 2, plus the balance term |1 - 2| + |3 - 2| of gradient norms 1 and 3):
        >>> import torch
        >>> method = GradNorm(); method.bind(2)
        >>> method(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]))
        tensor(5., grad_fn=<AddBackward0>)
    """

    short_name = "GradNorm"
    needs_grad_norms = True

    def __init__(self, alpha: float = 1.5) -> None:
        super().__init__()
        self.alpha = alpha
        self.weights = nn.Parameter(torch.ones(0))
        self.register_buffer("initial_losses", torch.zeros(0))

    def reset(self) -> None:
        with torch.no_grad():
            self.weights.data = torch.ones(self.num_tasks, device=self.weights.device)
        self.initial_losses = torch.zeros(self.num_tasks, device=self.initial_losses.device)

    def forward(self, losses: torch.Tensor, grad_norms: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if grad_norms is None:
            raise ValueError("GradNorm needs the per-task gradient norms of the last shared layer")
        detached = losses.detach().float()
        if not bool(self.initial_losses.any()):
            self.initial_losses.copy_(detached.clamp(min=1e-12))
        weights = self.weights.float()
        weighted_norms = weights * grad_norms.detach().float()
        ratios = detached / self.initial_losses
        targets = (weighted_norms.mean() * (ratios / ratios.mean()) ** self.alpha).detach()
        balance = (weighted_norms - targets).abs().sum()
        return (weights.detach().to(losses.dtype) * losses).sum() + balance

    @torch.no_grad()
    def after_step(self) -> None:
        clamped = self.weights.clamp(min=1e-6)
        self.weights.copy_(clamped * self.num_tasks / clamped.sum())

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
