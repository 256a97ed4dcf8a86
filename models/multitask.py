"""MultiTaskNet: a shared encoder (backbone + neck) and one head per task (hard parameter sharing)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from mtlbench.models.backbone import Backbone, check_backbone_name
from mtlbench.models.base import MultiTaskModel, checked_task_names
from mtlbench.models.errors import ModelConfigError
from mtlbench.models.heads import HeadSpec, build_head
from mtlbench.models.neck import ASPPNeck, FeaturePyramidNeck
from mtlbench.models.norms import Norm, check_norm, convert_norms
from mtlbench.models.width import backbone_width_args, scaled


class MultiTaskNet(MultiTaskModel):
    """Hard-parameter-sharing network for dense prediction.

    ``encode(x)`` returns the shared representation (the neck's output, stride 4), the point
    where task gradients meet; ``decode(z)`` maps it to ``{task name: output at input size}``.
    ``shared_parameters()`` and ``task_parameters(name)`` partition ``parameters()`` exactly,
    which is what gradient methods and the gradient diagnostics rely on.

    Args:
        tasks: the tasks to predict (linked from the datamodule by the CLI).
        backbone: timm model name.
        pretrained: ``True`` for timm's default ImageNet weights of the backbone (timm's hub
            loading and cache), a local weights file, or ``None`` for random initialisation.
        decoder_channels: width of the shared neck and of the heads.
        out_indices: backbone feature levels fed to the neck (default: every level of stride >= 4).
        neck: ``"fpn"`` (feature pyramid, output stride 4) or ``"aspp"`` (DeepLabV3 ASPP on the
            coarsest level; pair it with ``output_stride=8`` for the DeepLab model).
        output_stride: dilate the backbone to this stride (timm's ``output_stride``: 8 or 16).
        norm: ``"batch"`` (BatchNorm, as built), ``"sync_batch"`` (statistics shared across GPUs
            under DDP) or ``"group"`` (GroupNorm: per sample, so exact under DDP on any device).
        backbone_args: more keyword arguments of the timm model (:class:`mtlbench.models.Backbone`).
        width: width multiplier for scaling studies: the decoder's channels and, with
            ``scale_backbone``, the backbone's stage widths (timm ResNets and ConvNeXts;
            :mod:`mtlbench.models.width`), rounded to multiples of 8. Random initialisation only.
        scale_backbone: whether ``width`` also scales the backbone (else the decoder only).

    Example:
        >>> from mtlbench.tasks import depth_task
        >>> depth = depth_task()
        >>> net = MultiTaskNet([depth], backbone="test_resnet", decoder_channels=8)
        >>> net(torch.zeros(2, 3, 64, 64))["depth"].shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(
        self,
        tasks: Sequence[HeadSpec],
        backbone: str = "resnet18",
        pretrained: bool | str | None = None,
        decoder_channels: int = 64,
        out_indices: Sequence[int] | None = None,
        neck: Literal["fpn", "aspp"] = "fpn",
        output_stride: int | None = None,
        norm: Norm = "batch",
        backbone_args: dict | None = None,
        width: float = 1.0,
        scale_backbone: bool = True,
    ) -> None:
        super().__init__()
        check_norm(norm)
        self.task_names = checked_task_names(tasks, "MultiTaskNet")
        decoder_channels = scaled(decoder_channels, width)
        if width != 1 and scale_backbone:
            if pretrained not in (None, False):
                raise ModelConfigError(
                    f"width={width} changes the backbone's shape, which pretrained weights do not fit; use scale_backbone: false"
                )
            check_backbone_name(backbone)
            backbone_args = {**(backbone_args or {}), **backbone_width_args(backbone, width, backbone_args or {})}
        self.backbone = Backbone(backbone, pretrained, out_indices, output_stride=output_stride, model_args=backbone_args)
        if neck == "fpn":
            self.neck: nn.Module = FeaturePyramidNeck(self.backbone.channels, decoder_channels)
        elif neck == "aspp":
            self.neck = ASPPNeck(self.backbone.channels, decoder_channels)
        else:
            raise ModelConfigError(f"unknown neck '{neck}'; choose 'fpn' or 'aspp'")
        self.heads = nn.ModuleDict({task.name: build_head(task, decoder_channels) for task in tasks})
        convert_norms(self, norm)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Shared representation of a batch of images (B, C, H/s, W/s), s = the neck's stride."""
        self._input_size = (images.shape[-2], images.shape[-1])
        return self.neck(self.backbone(images))

    def decode(self, features: torch.Tensor | Mapping[str, torch.Tensor], size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        """Per-task outputs at ``size`` (default: the size of the last encoded batch). ``features``
        is the shared representation, or ``{task: representation}`` to give each head its own
        (the same values with a differently scaled gradient, for one)."""
        size = self.output_size(size)
        if isinstance(features, Mapping):
            return {name: head(features[name], size) for name, head in self.heads.items()}
        return {name: head(features, size) for name, head in self.heads.items()}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters every task's loss depends on: backbone and neck."""
        yield from self.backbone.parameters()
        yield from self.neck.parameters()

    def last_shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the last shared layer (the neck's final conv), GradNorm's W."""
        yield from self.neck.smooth.parameters()

    def compile_units(self) -> list[nn.Module]:
        return [self.backbone, self.neck, *self.heads.values()]
