"""IMTL-L, the loss-balancing half of Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021."""

from __future__ import annotations

from torchjd.scalarization import IMTLL as _IMTLL

from bench.methods.torchjd_adapter import TorchJDScalarizer


class ImpartialLossBalancing(TorchJDScalarizer):
    """L = sum_k exp(s_k) L_k - s_k with learned scales s_k (trained by the model's optimizer),
    which drives every scaled loss exp(s_k) L_k towards 1."""

    short_name = "IMTL-L"

    def make_inner(self) -> _IMTLL:
        return _IMTLL(self.num_tasks)
