"""The dense head every kind uses unless it declares its own."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Convolution (no bias), BatchNorm, ReLU: the block of the heads and of the models' necks."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DenseHead(nn.Module):
    """conv3x3-BN-ReLU then a 1x1 projection to ``out_channels``, upsampled to the input size.

    Example:
        >>> DenseHead(8, 2)(torch.zeros(1, 8, 4, 4), (16, 16)).shape
        torch.Size([1, 2, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = conv_bn_relu(in_channels, in_channels)
        self.project = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.project(self.body(features))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)
