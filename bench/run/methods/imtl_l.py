"""IMTL-L, the loss-balancing half of Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021."""

from __future__ import annotations

from torchjd.scalarization import IMTLL as _IMTLL

from mtlbench.bench.run.methods.torchjd_adapter import TorchJDScalarizer


class ImpartialLossBalancing(TorchJDScalarizer):
    """L = sum_k exp(s_k) L_k - s_k with learned scales s_k (trained by the model's optimizer),
    which drives every scaled loss exp(s_k) L_k towards 1.

    Example (scales start at s = 0: e^s L - s is the loss itself):
        >>> import torch
        >>> method = ImpartialLossBalancing(); method.bind(2)
        >>> method(torch.tensor([1.0, 2.0]))
        tensor(3., grad_fn=<SumBackward0>)
    """

    short_name = "IMTL-L"

    def make_inner(self) -> _IMTLL:
        return _IMTLL(self.num_tasks)
