"""timm backbones through the ``features_only`` contract; weights only from a local file."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import timm
import torch
from torch import nn

from models.errors import ModelConfigError


def check_backbone_name(name: str) -> None:
    """Raise a one-line error listing close matches when timm has no model called ``name``."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "see timm.list_models() for the names"
    raise ModelConfigError(f"unknown timm backbone '{name}'; {hint}")


class Backbone(nn.Module):
    """Multi-scale feature extractor ``timm.create_model(name, features_only=True)``.

    Args:
        name: any timm model name that supports ``features_only`` (e.g. ``resnet50``,
            ``convnext_tiny``, or the tiny ``test_resnet`` used in tests).
        pretrained: path to a local weights file (timm/torch state dict) or ``None`` for random
            initialisation. Nothing is ever downloaded.
        out_indices: which feature levels to return (timm's ``out_indices``); ``None`` keeps
            every level of stride ``min_reduction`` or more (for most CNNs: strides 4 to 32).
        min_reduction: smallest stride kept when ``out_indices`` is ``None``.
        output_stride: dilate the last stages so features stop at this stride (timm's
            ``output_stride``, e.g. 8 for DeepLab); ``None`` keeps the model's own (usually 32).

    ``channels`` and ``reductions`` give each returned level's width and stride, read from
    timm's ``feature_info`` so heads never hard-code them.

    Example:
        >>> Backbone("test_resnet", out_indices=(1, 2)).reductions
        [4, 8]
        >>> Backbone("test_resnet").reductions
        [4, 8, 16, 32]
    """

    def __init__(
        self,
        name: str,
        pretrained: str | None = None,
        out_indices: Sequence[int] | None = None,
        min_reduction: int = 4,
        output_stride: int | None = None,
    ) -> None:
        super().__init__()
        check_backbone_name(name)
        kwargs: dict = {"features_only": True}
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        if output_stride is not None:
            kwargs["output_stride"] = output_stride
        if pretrained is not None:
            weights = Path(pretrained).expanduser()
            if not weights.is_file():
                raise ModelConfigError(
                    f"pretrained weights file '{weights}' not found; pass the path of a local weights file "
                    f"for '{name}' (mtlbench never downloads weights) or pretrained: null"
                )
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
        try:
            self.body = timm.create_model(name, **kwargs)
        except (RuntimeError, IndexError, AssertionError, TypeError) as error:
            wanted = f"out_indices={out_indices}, output_stride={output_stride}"
            raise ModelConfigError(f"timm backbone '{name}' cannot serve {wanted}: {error}") from error
        reductions = list(self.body.feature_info.reduction())
        keep = range(len(reductions)) if out_indices is not None else [i for i, r in enumerate(reductions) if r >= min_reduction]
        self.keep: list[int] = list(keep)
        if not self.keep:
            raise ModelConfigError(f"timm backbone '{name}' has no feature level of stride >= {min_reduction} (strides {reductions})")
        self.name = name
        self.channels: list[int] = [self.body.feature_info.channels()[i] for i in self.keep]
        self.reductions: list[int] = [reductions[i] for i in self.keep]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(images)
        return [features[i] for i in self.keep]
