"""Aligned-MTL, Senushkin et al., CVPR 2023: independent component alignment. Wraps torchjd's AlignedMTL."""

from __future__ import annotations

from typing import Literal

import torchjd.aggregation as jd

from bench.methods.base import Space
from bench.methods.torchjd_adapter import TorchJDAggregator


class AlignedMTL(TorchJDAggregator):
    """Replaces the task gradients by the closest orthogonal system with equal singular values
    (condition number 1, via the Gramian's eigendecomposition) scaled by the smallest
    (scale_mode="min") singular value, and sums it.
    """

    short_name = "Aligned-MTL"
    hyper_names = ("scale_mode",)

    def __init__(self, scale_mode: Literal["min", "median", "rmse"] = "min", space: Space = "parameters") -> None:
        super().__init__(space)
        self.scale_mode = scale_mode

    def make_inner(self) -> jd.Aggregator:
        return jd.AlignedMTL(scale_mode=self.scale_mode)
