"""Fast adaptive multitask optimisation (FAMO), Liu et al., NeurIPS 2023, via torchjd's ``FAMO``."""

from __future__ import annotations

import torch
from torchjd.scalarization import FAMO as _FAMO

from bench.methods.torchjd_adapter import TorchJDScalarizer


class FastAdaptiveMultitask(TorchJDScalarizer):
    """L = c sum_k z_k log(L_k + eps), z = softmax(w), c = (sum_k z_k / (L_k + eps))^-1: the
    update decreases all losses at about the same rate using loss values only. The logits w
    are learned by FAMO's own Adam from the change of each log loss across a step, so the
    training step recomputes the losses on the same batch after the update (one extra
    forward pass) and calls ``update``.

    Args:
        lr: learning rate of w (0.025 in the paper).
        weight_decay: decay of w (1e-3 in the paper's Algorithm 2).
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

    def update(self, losses_after: torch.Tensor) -> None:
        self.inner.update(losses_after.detach())
