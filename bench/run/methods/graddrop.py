"""Gradient sign dropout (GradDrop), Chen et al., NeurIPS 2020. Wraps torchjd's GradDrop."""

from __future__ import annotations

import torchjd.aggregation as jd

from mtlbench.bench.run.methods.base import Space
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class GradDrop(TorchJDAggregator):
    """Per coordinate, keeps only the task gradients of the sign chosen at random with probability
    given by the sign purity of the summed gradients (torch's global generator: seeded runs
    repeat). The original applies it to activations; here it acts on the aggregated space.

    Under DDP in feature space it is not of the form J^T w(J J^T), so the representation Jacobian
    is gathered from every rank (T x the global representation size, per step).

    Args:
        leak: per-task leak coefficients in [0, 1] (all zero by default).

    Example (each coordinate keeps the gradients of one sign, drawn by its purity (seeded)):
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> method = GradDrop(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.tensor([1.0, 2.0]))
        tensor([1., 1.])
    """

    short_name = "GradDrop"
    randomized = True
    hyper_names = ("leak",)

    def __init__(self, leak: list[float] | None = None, space: Space = "parameters") -> None:
        super().__init__(space)
        self.leak = leak

    def _leak_tensor(self):
        import torch

        return None if self.leak is None else torch.tensor(self.leak)

    def make_inner(self) -> jd.Aggregator:
        return jd.GradDrop(leak=self._leak_tensor())
