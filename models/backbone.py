"""timm backbones through the ``features_only`` contract: CNNs, hierarchical transformers (Swin,
whose features come out channels-last) and plain ViTs (one stride: a pyramid is built from
chosen blocks, as DPT does); ImageNet weights through timm's own loading, or a local file."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mtlbench.models.errors import ModelConfigError
from mtlbench.models.pyramid import PLAIN_STRIDES, BlockPyramid

# what timm raises as RuntimeError for a configuration (a model without dense features, weights
# of another shape); any other RuntimeError is a real failure and keeps its traceback
CONFIG_RUNTIME_ERROR = re.compile(r"features_only|feature_info|out_indices|size mismatch", re.IGNORECASE)
# what a backbone raises as RuntimeError for images of a size it cannot take
INPUT_SIZE_ERROR = re.compile(r"input (height|width|size)|kernel size can't be greater|output size is too small", re.IGNORECASE)

# keyword arguments that free a transformer from its pretraining image size, in timm's words:
# plain ViTs interpolate their position embedding, Swin pads to its windows
SIZE_FREE_KWARGS: tuple[dict, ...] = ({"dynamic_img_size": True}, {"strict_img_size": False}, {})


def check_backbone_name(name: str) -> None:
    """Raise a one-line error listing close matches when timm has no model called ``name``."""
    import timm  # (a second to import: only when a backbone is named or built, not for --help)

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "see timm.list_models() for the names"
    raise ModelConfigError(f"unknown timm backbone '{name}'; {hint}")


def weights_cache(name: str) -> str:
    """Where timm keeps (and looks for) the default weights of ``name``."""
    import timm

    config = timm.models.get_pretrained_cfg(name)
    if config is not None and config.hf_hub_id:
        from huggingface_hub import constants

        return f"{constants.HF_HUB_CACHE} (Hugging Face hub: {config.hf_hub_id})"
    return f"{Path(torch.hub.get_dir()) / 'checkpoints'} (torch hub)"


def _weights_kwargs(name: str, pretrained: bool | str | None) -> dict:
    import timm

    if pretrained is None or pretrained is False:
        return {}
    if pretrained is True:
        if timm.models.get_pretrained_cfg(name) is None:
            raise ModelConfigError(f"timm has no default weights for '{name}'; pass pretrained: PATH of a local weights file, or null")
        return {"pretrained": True}
    weights = Path(pretrained).expanduser()
    if not weights.is_file():
        raise ModelConfigError(
            f"pretrained weights file '{weights}' not found; pass the path of a local weights file for '{name}', "
            "true for timm's default ImageNet weights, or null"
        )
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(weights)}}


def _create(name: str, kwargs: dict, pretrained: bool | str | None) -> nn.Module:
    """``timm.create_model`` with the first size-freeing keyword the model takes; one line for
    what the model cannot do."""
    import timm

    last: Exception | None = None
    for extra in SIZE_FREE_KWARGS:
        try:
            return timm.create_model(name, **kwargs, **extra)
        except TypeError as error:  # the model does not take this keyword: try the next
            if not extra or next(iter(extra)) not in str(error):
                last = error
                break
        except OSError as error:  # default weights neither cached nor downloadable
            raise ModelConfigError(
                f"the default weights of '{name}' are not in timm's cache {weights_cache(name)} and could not be downloaded "
                f"({type(error).__name__}); download them once with network into that cache, or pass pretrained: PATH of a local file"
            ) from None
        except (IndexError, AssertionError, ValueError) as error:  # timm's checks of out_indices and features_only
            last = error
            break
        except RuntimeError as error:
            if not CONFIG_RUNTIME_ERROR.search(str(error)):
                raise  # not the configuration's: a bug of timm's or ours, or the device; its traceback matters
            last = error
            break
    if pretrained not in (None, False) and isinstance(last, RuntimeError) and "size mismatch" in str(last).lower():
        raise ModelConfigError(f"the weights in '{pretrained}' do not fit timm's '{name}': {str(last).splitlines()[0][:200]}") from last
    reason = str(last).splitlines()[0][:200] if last is not None and str(last) else type(last).__name__
    raise ModelConfigError(f"timm backbone '{name}' cannot give dense features ({kwargs.get('out_indices', 'default levels')}): {reason}")


class Backbone(nn.Module):
    """Multi-scale feature extractor ``timm.create_model(name, features_only=True)``.

    Args:
        name: any timm model name that supports ``features_only``: CNNs (``resnet50``,
            ``convnext_tiny``, the tiny ``test_resnet`` of the tests), hierarchical transformers
            (``swin_tiny_patch4_window7_224``: channels-last features, made channels-first) and
            plain ViTs (``vit_small_patch16_224``: see ``out_indices``). Transformers take any
            input size (timm's ``dynamic_img_size`` / ``strict_img_size=False``).
        pretrained: ``True`` for timm's default ImageNet weights (timm's hub loading and cache),
            a path to a local weights file (timm/torch state dict), or ``None`` for random
            initialisation. Nothing is downloaded unless ``True`` is asked for.
        out_indices: which feature levels to return (timm's ``out_indices``); ``None`` keeps
            every level of stride ``min_reduction`` or more (for most CNNs: strides 4 to 32).
            For a plain ViT these are blocks, ``None`` meaning four evenly spaced ones (DPT's
            choice: blocks 2, 5, 8, 11 of 12), turned into strides 4, 8, 16 and 32 by
            :class:`mtlbench.models.pyramid.BlockPyramid`.
        min_reduction: smallest stride kept when ``out_indices`` is ``None``.
        output_stride: dilate the last stages so features stop at this stride (timm's
            ``output_stride``, e.g. 8 for DeepLab); ``None`` keeps the model's own (usually 32).
        model_args: more keyword arguments of the timm model (e.g. ``drop_path_rate``, or a
            Swin's ``embed_dim`` / ``depths`` / ``num_heads`` for a smaller variant).

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
        pretrained: bool | str | None = None,
        out_indices: Sequence[int] | None = None,
        min_reduction: int = 4,
        output_stride: int | None = None,
        model_args: dict | None = None,
    ) -> None:
        super().__init__()
        check_backbone_name(name)
        kwargs: dict = {**(model_args or {}), "features_only": True, **_weights_kwargs(name, pretrained)}
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        if output_stride is not None:
            kwargs["output_stride"] = output_stride
        self.body = _create(name, kwargs, pretrained)
        reductions = list(self.body.feature_info.reduction())
        self.pyramid: BlockPyramid | None = None
        if len(reductions) > 1 and len(set(reductions)) == 1:  # a plain ViT: every block at one stride
            if out_indices is None:
                blocks = _block_count(self.body)
                kwargs["out_indices"] = tuple(round(blocks * (k + 1) / len(PLAIN_STRIDES)) - 1 for k in range(len(PLAIN_STRIDES)))
                self.body = _create(name, kwargs, pretrained)
            self.pyramid = BlockPyramid(self.body.feature_info.channels(), reductions[0])
            channels, reductions, self.keep = self.pyramid.channels, self.pyramid.reductions, list(range(len(self.pyramid.channels)))
        else:
            keep = range(len(reductions)) if out_indices is not None else [i for i, r in enumerate(reductions) if r >= min_reduction]
            self.keep = list(keep)
            channels = [self.body.feature_info.channels()[i] for i in self.keep]
            reductions = [reductions[i] for i in self.keep]
        if not self.keep:
            raise ModelConfigError(f"timm backbone '{name}' has no feature level of stride >= {min_reduction} (strides {reductions})")
        self.name = name
        self.channels_last = getattr(self.body, "output_fmt", "NCHW") == "NHWC"  # Swin & co. (timm's Format is a str enum)
        self.channels: list[int] = list(channels)
        self.reductions: list[int] = list(reductions)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        try:
            features = self.body(images)
        except torch.OutOfMemoryError:
            raise
        except (AssertionError, RuntimeError) as error:  # a model made for one input size (MTLBENCH_DEBUG=1 shows where)
            if isinstance(error, RuntimeError) and not INPUT_SIZE_ERROR.search(str(error)):
                raise  # not the input size's: its traceback matters
            size = "x".join(str(side) for side in images.shape[-2:])
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise ModelConfigError(f"timm backbone '{self.name}' cannot give dense features of {size} images: {reason}") from error
        if self.channels_last:
            features = [feature.permute(0, 3, 1, 2) for feature in features]
        if self.pyramid is not None:
            return self.pyramid(features)
        return [features[i] for i in self.keep]


def _block_count(body: nn.Module) -> int:
    """How many transformer blocks a plain ViT has (timm's feature wrapper keeps the model)."""
    model = getattr(body, "model", body)
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ModelConfigError(f"cannot find the blocks of '{type(model).__name__}'; give out_indices explicitly")
    return len(blocks)
