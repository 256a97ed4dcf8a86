"""A loss weighting that diverges on purpose, for the divergence tests (importable by class path)."""

from __future__ import annotations

import torch

from mtlbench.bench.run.methods import LossWeighting


class NaNAfter(LossWeighting):
    """Equal weighting for ``steps`` calls, then a NaN weighted loss."""

    short_name = "NaNAfter"

    def __init__(self, steps: int = 2) -> None:
        super().__init__()
        self.steps = steps
        self.calls = 0

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        total = losses.sum()
        return total if self.calls <= self.steps else total * float("nan")
