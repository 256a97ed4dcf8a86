"""Task heads: one small conv head per task, chosen by the task's kind."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelConfigError
from models.neck import conv_bn_relu


class HeadSpec(Protocol):
    """What a head needs to know of a task (datamodules.TaskSpec satisfies it)."""

    name: str
    kind: str
    channels: int


class DenseHead(nn.Module):
    """conv3x3-BN-ReLU then a 1x1 projection to ``out_channels``, upsampled to the input size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = conv_bn_relu(in_channels, in_channels)
        self.project = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.project(self.body(features))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


class SegmentationHead(DenseHead):
    """Per-pixel class logits (``channels`` = number of classes)."""


class DepthHead(DenseHead):
    """Per-pixel depth, unconstrained output trained by L1 on valid pixels (as MTAN)."""


class NormalHead(DenseHead):
    """Per-pixel unit surface normal: the 3-channel output is L2-normalised."""

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.normalize(super().forward(features, size), dim=1)


HEAD_FOR_KIND: dict[str, type[DenseHead]] = {
    "segmentation": SegmentationHead,
    "depth": DepthHead,
    "normal": NormalHead,
}


def build_head(task: HeadSpec, in_channels: int) -> DenseHead:
    """The head for ``task.kind``, or a one-line error naming the task without a head."""
    head = HEAD_FOR_KIND.get(task.kind)
    if head is None:
        raise ModelConfigError(f"no head for task '{task.name}' of kind '{task.kind}'; heads exist for kinds: {', '.join(HEAD_FOR_KIND)}")
    if task.kind == "normal" and task.channels != 3:
        raise ModelConfigError(f"task '{task.name}' of kind 'normal' must have 3 channels, got {task.channels}")
    return head(in_channels, task.channels)
