"""Shared decoder: a feature pyramid that fuses the backbone levels into one dense map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtlbench.tasks.head import conv_bn_relu


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


class ASPPNeck(nn.Module):
    """Atrous spatial pyramid pooling on the coarsest backbone level (DeepLabV3, Chen et al.
    2017): parallel 1x1 and dilated 3x3 convs plus an image-pooling branch, concatenated and
    projected to ``channels``. With a dilated backbone (``output_stride=8``) this is the shared
    part of the "ResNet-50 + DeepLab head" model of LibMTL's NYUv2 and Cityscapes benchmarks.

    Example:
        >>> neck = ASPPNeck([8, 16], channels=4, rates=(2, 3))
        >>> neck([torch.zeros(2, 8, 8, 8), torch.zeros(2, 16, 4, 4)]).shape
        torch.Size([2, 4, 4, 4])
    """

    def __init__(self, in_channels: Sequence[int], channels: int, rates: Sequence[int] = (12, 24, 36)) -> None:
        super().__init__()
        source = in_channels[-1]
        self.branches = nn.ModuleList([conv_bn_relu(source, channels, kernel_size=1)])
        for rate in rates:
            self.branches.append(
                nn.Sequential(
                    nn.Conv2d(source, channels, 3, padding=rate, dilation=rate, bias=False),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True),
                )
            )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(source, channels, 1, bias=False), nn.ReLU(inplace=True))
        self.project = conv_bn_relu((len(rates) + 2) * channels, channels, kernel_size=1)
        self.smooth = conv_bn_relu(channels, channels)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.smooth(self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1)))
