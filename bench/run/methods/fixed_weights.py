"""Fixed weights: a hand-set linear scalarisation, the tuned-EW baseline of Elich et al. (2024)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtlbench.bench.run.methods.base import LossWeighting


class FixedWeights(LossWeighting):
    """L = sum_k w_k L_k with constant ``weights`` (one per task, in the datamodule's order).

    Example:
        >>> method = FixedWeights([1.0, 0.5]); method.bind(2)
        >>> method(torch.tensor([2.0, 4.0]))
        tensor(4.)
    """

    short_name = "FW"

    def __init__(self, weights: Sequence[float]) -> None:
        super().__init__()
        if any(w < 0 for w in weights):
            raise ValueError(f"FixedWeights: weights must be non-negative, got {list(weights)}")
        self.register_buffer("weights", torch.tensor(list(weights), dtype=torch.float32))

    def bind(self, num_tasks: int) -> None:
        if len(self.weights) != num_tasks:
            raise ValueError(f"FixedWeights: {len(self.weights)} weights given for {num_tasks} tasks; give one weight per task")
        super().bind(num_tasks)

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (self.weights.to(losses.dtype) * losses).sum()

    def extra_repr(self) -> str:
        return f"weights={self.weights.tolist()}"
