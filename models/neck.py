"""Shared decoder: a feature pyramid that fuses the backbone levels into one dense map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FeaturePyramidNeck(nn.Module):
    """Top-down feature pyramid (Lin et al., CVPR 2017) returning only the finest level.

    Each level is projected to ``channels`` by a 1x1 conv, coarser levels are upsampled and
    added, and a 3x3 conv-BN-ReLU smooths the sum: the output has the stride of the finest
    input level (4 for the usual ``out_indices=(1, 2, 3, 4)``).

    Example:
        >>> neck = FeaturePyramidNeck([8, 16], channels=4)
        >>> neck([torch.zeros(1, 8, 8, 8), torch.zeros(1, 16, 4, 4)]).shape
        torch.Size([1, 4, 8, 8])
    """

    def __init__(self, in_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = conv_bn_relu(channels, channels)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        merged = self.lateral[-1](features[-1])
        for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(features[:-1]), strict=True):
            merged = lateral(feature) + F.interpolate(merged, size=feature.shape[-2:], mode="bilinear", align_corners=False)
        return self.smooth(merged)
