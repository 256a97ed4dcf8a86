"""Random loss weighting (RLW), Lin et al., TMLR 2022, via torchjd's ``Random`` scalarizer."""

from __future__ import annotations

from torchjd.scalarization import Random as _Random

from mtlbench.bench.run.methods.torchjd_adapter import TorchJDScalarizer


class RandomLossWeighting(TorchJDScalarizer):
    """L = sum_k w_k L_k with w = softmax(N(0, I)) drawn afresh at every step (torchjd's
    normalisation), driven by torch's global generator so runs are reproducible by seed.

    Example (softmax weights of a normal draw (seeded)):
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> method = RandomLossWeighting(); method.bind(2)
        >>> method(torch.tensor([1.0, 2.0]))
        tensor(1.1377)
    """

    short_name = "RLW"
    randomized = True

    def make_inner(self) -> _Random:
        return _Random()
