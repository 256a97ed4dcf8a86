"""A feature pyramid from the blocks of a plain ViT, whose every block has one stride (16).

DPT (Ranftl, Bochkovskiy & Koltun, "Vision Transformers for Dense Prediction", ICCV 2021)
reassembles four blocks into maps of strides 4, 8, 16 and 32: a 1x1 projection, then a
transposed convolution (x4, x2), nothing, or a strided convolution (/2). Its widths for ViT-B
(768 channels) are 96, 192, 384 and 768, i.e. 1/8, 1/4, 1/2 and 1 of the token width; the same
fractions are used here for any width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

PLAIN_STRIDES = (4, 8, 16, 32)  # what the pyramid makes of four blocks
WIDTH_FRACTIONS = (8, 4, 2, 1)  # channels = token width // these


class BlockPyramid(nn.Module):
    """Blocks of one ``stride`` -> maps of strides 4, 8, 16, 32 (the first ``len(widths)``).

    Example:
        >>> pyramid = BlockPyramid([16, 16, 16, 16], stride=16)
        >>> [tuple(f.shape) for f in pyramid([torch.zeros(1, 16, 6, 8)] * 4)]
        [(1, 2, 24, 32), (1, 4, 12, 16), (1, 8, 6, 8), (1, 16, 3, 4)]
    """

    def __init__(self, widths: Sequence[int], stride: int) -> None:
        super().__init__()
        if not 1 <= len(widths) <= len(PLAIN_STRIDES):
            raise ValueError(f"a plain ViT gives 1 to {len(PLAIN_STRIDES)} blocks to the pyramid, got {len(widths)}")
        self.reductions = list(PLAIN_STRIDES[: len(widths)])
        self.channels = [max(1, width // fraction) for width, fraction in zip(widths, WIDTH_FRACTIONS, strict=False)]
        self.levels = nn.ModuleList(
            _resample(width, out, target / stride) for width, out, target in zip(widths, self.channels, self.reductions, strict=False)
        )

    def forward(self, blocks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [level(block) for level, block in zip(self.levels, blocks, strict=True)]


def _resample(width: int, out: int, factor: float) -> nn.Sequential:
    """1x1 projection to ``out`` channels, then to ``factor`` times the stride."""
    layers: list[nn.Module] = [nn.Conv2d(width, out, 1)]
    if factor < 1:
        scale = round(1 / factor)
        layers.append(nn.ConvTranspose2d(out, out, scale, stride=scale))
    elif factor > 1:
        for _ in range(int(math.log2(factor))):
            layers.append(nn.Conv2d(out, out, 3, stride=2, padding=1))
    return nn.Sequential(*layers)
