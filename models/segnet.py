"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017) with hard parameter sharing: one
encoder-decoder shared by every task, whose full-resolution features feed each task's head.

It is the single-task network of the Nash-MTL / CAGrad / FAMO tables (one SegNet per task) and
the multi-task SegNet of Elich, Kirchdorfer et al. (2024). :class:`SegNetBase` holds the
encoder-decoder that MTAN (:mod:`mtlbench.models.mtan`) puts its task attention on: five encoder stages
of 3x3 conv-BN-ReLU layers (1, 1, 2, 2, 2 after each stage's first) with max pooling, mirrored by
a decoder that unpools with the pooling indices.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtlbench.models.base import MultiTaskModel, checked_task_names
from mtlbench.models.errors import ModelConfigError
from mtlbench.models.heads import HeadSpec, build_head
from mtlbench.models.norms import Norm, check_norm, convert_norms
from mtlbench.tasks.head import conv_bn_relu

SEGNET_WIDTHS = (64, 128, 256, 512, 512)  # the paper's filters per stage
STAGE_LAYERS = (1, 1, 2, 2, 2)  # the second conv block of each stage: 1, 1, then 2 layers

SegNetPass = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]


def stage_convs(channels: int, layers: int) -> nn.Sequential:
    return nn.Sequential(*(conv_bn_relu(channels, channels) for _ in range(layers)))


class SegNetBase(MultiTaskModel):
    """The shared SegNet encoder-decoder; subclasses add what they put on it, then
    :meth:`add_heads`. Image sides must be multiples of 32 (five poolings)."""

    def __init__(self, tasks: Sequence[HeadSpec], widths: Sequence[int], norm: Norm) -> None:
        super().__init__()
        name = type(self).__name__
        check_norm(norm)
        if len(widths) != len(SEGNET_WIDTHS):
            raise ModelConfigError(f"{name} has {len(SEGNET_WIDTHS)} stages: give {len(SEGNET_WIDTHS)} widths, got {list(widths)}")
        self.task_names = checked_task_names(tasks, name)
        self.widths = f = list(widths)
        self.encoder_block = nn.ModuleList([conv_bn_relu(3, f[0]), *(conv_bn_relu(f[i], f[i + 1]) for i in range(4))])
        self.decoder_block = nn.ModuleList([conv_bn_relu(f[0], f[0]), *(conv_bn_relu(f[i + 1], f[i]) for i in range(4))])
        self.encoder_convs = nn.ModuleList(stage_convs(f[i], STAGE_LAYERS[i]) for i in range(5))
        self.decoder_convs = nn.ModuleList(stage_convs(f[max(i - 1, 0)], STAGE_LAYERS[i]) for i in range(5))  # after decoder_block
        self.width = f[0]

    def add_heads(self, tasks: Sequence[HeadSpec], norm: Norm) -> None:
        """The task heads on ``width`` channels, then the normalisation layers converted."""
        self.heads = nn.ModuleDict({task.name: build_head(task, self.width) for task in tasks})
        convert_norms(self, norm)

    def segnet_pass(self, images: torch.Tensor) -> SegNetPass:
        """The encoder-decoder's intermediate features: each encoder stage's first and last
        features, and each decoder stage's unpooled input and output (coarsest first)."""
        if images.shape[-2] % 32 or images.shape[-1] % 32:
            sides = tuple(images.shape[-2:])
            raise ModelConfigError(f"{type(self).__name__} pools five times: image sides must be multiples of 32, got {sides}")
        self._input_size = (images.shape[-2], images.shape[-1])
        first, last, indices, shapes = [], [], [], []
        x = images
        for stage in range(5):
            first.append(self.encoder_block[stage](x))
            last.append(self.encoder_convs[stage](first[-1]))
            shapes.append(last[-1].shape[-2:])
            x, where = F.max_pool2d(last[-1], 2, stride=2, return_indices=True)
            indices.append(where)
        unpooled, decoded = [], []
        for step in range(5):
            stage = 4 - step
            unpooled.append(F.max_unpool2d(x, indices[stage], 2, stride=2, output_size=shapes[stage]))
            x = self.decoder_convs[stage](self.decoder_block[stage](unpooled[-1]))
            decoded.append(x)
        return first, last, unpooled, decoded

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Everything but the heads (for MTAN also the attention: Nash-MTL's split)."""
        heads = {id(p) for p in self.heads.parameters()}
        yield from (p for p in self.parameters() if id(p) not in heads)

    def last_shared_parameters(self) -> Iterator[nn.Parameter]:
        """The SegNet's last layer."""
        yield from self.decoder_convs[0].parameters()

    def compile_units(self) -> list[nn.Module]:
        return [self]


class SegNet(SegNetBase):
    """SegNet shared by every task (hard parameter sharing), a head per task.

    Args:
        tasks: the tasks to predict (linked from the datamodule by the CLI).
        widths: channels of the five stages (the paper: 64, 128, 256, 512, 512).
        norm: as :class:`mtlbench.models.MultiTaskNet`.

    Example:
        >>> from mtlbench.tasks import depth_task
        >>> depth = depth_task()
        >>> net = SegNet([depth], widths=(4, 4, 4, 4, 4))
        >>> net(torch.zeros(2, 3, 64, 64))["depth"].shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(self, tasks: Sequence[HeadSpec], widths: Sequence[int] = SEGNET_WIDTHS, norm: Norm = "batch") -> None:
        super().__init__(tasks, widths, norm)
        self.add_heads(tasks, norm)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The decoder's full-resolution features (B, widths[0], H, W), shared by every head."""
        return self.segnet_pass(images)[3][-1]

    def decode(self, features: torch.Tensor | Mapping[str, torch.Tensor], size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        size = self.output_size(size)
        return {name: head(features[name] if isinstance(features, Mapping) else features, size) for name, head in self.heads.items()}
