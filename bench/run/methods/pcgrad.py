"""Projecting conflicting gradients (PCGrad), Yu et al., NeurIPS 2020. Wraps torchjd's PCGrad."""

from __future__ import annotations

import torchjd.aggregation as jd

from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class PCGrad(TorchJDAggregator):
    """Each task gradient is projected onto the normal plane of every other task gradient it
    conflicts with (negative dot product), in a random order drawn from torch's global
    generator (seeded runs repeat); the projections are summed.

    Example (each of two conflicting gradients projected onto the other's normal plane, then summed):
        >>> import torch
        >>> method = PCGrad(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.8000, 1.4000])
    """

    short_name = "PCGrad"
    randomized = True

    def make_inner(self) -> jd.Aggregator:
        return jd.PCGrad()
