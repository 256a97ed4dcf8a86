"""IMTL-G, the gradient-balancing half of Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021. Wraps torchjd's IMTLG."""

from __future__ import annotations

import torchjd.aggregation as jd

from bench.methods.torchjd_adapter import TorchJDAggregator


class IMTLG(TorchJDAggregator):
    """Weights such that the update has equal projections onto every task's unit gradient,
    computed in closed form from the Gramian.
    """

    short_name = "IMTL-G"

    def make_inner(self) -> jd.Aggregator:
        return jd.IMTLG()
