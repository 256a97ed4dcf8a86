"""Random gradient weighting (RGW), Lin et al., TMLR 2022 (the RLW paper), via torchjd's ``Random``."""

from __future__ import annotations

import torchjd.aggregation as jd

from mtlbench.bench.run.methods.torchjd_adapter import TorchJDAggregator


class RandomGradientWeighting(TorchJDAggregator):
    """d = sum_k w_k g_k with w = softmax(N(0, I)) drawn afresh at every step: RLW applied to
    the task gradients instead of the losses (equal in expectation, different in variance).

    Example (weights drawn from torch's generator (seeded)):
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> method = RandomGradientWeighting(); method.bind(2)
        >>> method(torch.tensor([[1.0, 0.0], [-0.5, 1.0]]), torch.tensor([1.0, 2.0]))
        tensor([0.7934, 0.1377])
    """

    short_name = "RGW"
    randomized = True
    gramian_determined = True  # the weights depend on the number of tasks only

    def make_inner(self) -> jd.Aggregator:
        return jd.Random()
