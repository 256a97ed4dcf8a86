"""The network's normalisation layers: batch statistics, synchronised across GPUs, or per sample.

Under DDP each process normalises with the statistics of its own shard unless told otherwise,
so N processes on N shards do not compute what one process computes on the whole batch:
``sync_batch`` (torch's :class:`~torch.nn.SyncBatchNorm`, GPUs only) shares the statistics
across processes, and ``group`` (GroupNorm, Wu & He, ECCV 2018) normalises each sample on its
own, so the shard a sample lands on does not matter.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

from mtlbench.models.errors import ModelConfigError

Norm = Literal["batch", "sync_batch", "group"]
NORMS: tuple[str, ...] = ("batch", "sync_batch", "group")
GROUPS = 32  # GroupNorm's default group count; fewer where the channel count asks for it


def group_norm_like(batch_norm: nn.modules.batchnorm._BatchNorm) -> nn.GroupNorm:
    """A GroupNorm over the same channels with the largest group count <= 32 that divides them,
    carrying over the affine parameters (the running statistics have no counterpart).

    Example:
        >>> group_norm_like(nn.BatchNorm2d(24)).num_groups
        8
    """
    channels = batch_norm.num_features
    groups = math.gcd(channels, GROUPS)
    norm = nn.GroupNorm(groups, channels, eps=batch_norm.eps, affine=batch_norm.affine)
    if batch_norm.affine:
        norm.weight.data.copy_(batch_norm.weight.data)
        norm.bias.data.copy_(batch_norm.bias.data)
    return norm


def check_norm(norm: str) -> None:
    """A one-line error for a norm no model knows, before anything is built."""
    if norm not in NORMS:
        raise ModelConfigError(f"unknown norm '{norm}'; choose one of {', '.join(NORMS)}")


def convert_norms(module: nn.Module, norm: Norm) -> nn.Module:
    """``module`` with every BatchNorm replaced as ``norm`` asks (``batch`` leaves it alone)."""
    if norm == "batch":
        return module
    if norm == "sync_batch":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if norm != "group":
        raise ValueError(f"norm must be one of {NORMS}, got '{norm}'")
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, group_norm_like(child))
        else:
            convert_norms(child, norm)
    return module
