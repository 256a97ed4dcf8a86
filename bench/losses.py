"""Standard per-task losses of the MTL literature (PROTOCOL.md), each averaged over valid pixels."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from datamodules.tasks import TaskSpec

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _no_valid_pixel(prediction: torch.Tensor) -> torch.Tensor:
    """A zero that still depends on the prediction, so backward passes stay well defined."""
    return prediction.sum() * 0.0


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Cross-entropy over pixels whose label is not ``ignore_index``.

    Example:
        >>> segmentation_loss(torch.tensor([[[[0.0]], [[0.0]]]]), torch.tensor([[[1]]])).item()  # log 2
        0.6931...
    """
    if not bool((target != ignore_index).any()):
        return _no_valid_pixel(logits)
    return F.cross_entropy(logits, target.long(), ignore_index=ignore_index)


def depth_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over pixels with depth (target != 0).

    Example:
        >>> depth_loss(torch.tensor([[[[1.0, 5.0]]]]), torch.tensor([[[[2.0, 0.0]]]])).item()
        1.0
    """
    valid = target != 0
    if not bool(valid.any()):
        return _no_valid_pixel(prediction)
    return (prediction - target).abs()[valid].mean()


def normal_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity between the normalised prediction and the target, over pixels whose
    target is not all-zero.

    Example:
        >>> normal_loss(torch.tensor([[[[1.0]], [[0.0]], [[0.0]]]]), torch.tensor([[[[0.0]], [[1.0]], [[0.0]]]])).item()
        1.0
    """
    valid = target.abs().sum(dim=1) > 0
    if not bool(valid.any()):
        return _no_valid_pixel(prediction)
    cosine = (F.normalize(prediction, dim=1) * target).sum(dim=1)
    return (1.0 - cosine[valid]).mean()


def loss_for(task: TaskSpec) -> LossFn:
    """The standard loss of ``task.kind``."""
    if task.kind == "segmentation":
        ignore = int(task.ignore_value)
        return lambda logits, target: segmentation_loss(logits, target, ignore)
    if task.kind == "depth":
        return depth_loss
    if task.kind == "normal":
        return normal_loss
    raise ValueError(f"no loss for task '{task.name}' of kind '{task.kind}'; kinds with a loss: segmentation, depth, normal")


def pixel_loss_sum(task: TaskSpec, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sum, in float64, of ``task``'s loss over every pixel with ground truth, and their
    count: the loss of a split is the ratio of the summed sums and counts (each pixel's loss is
    computed alone, so the result does not depend on how the split is batched or shared).

    Example:
        >>> from datamodules.tasks import depth_task
        >>> total, count = pixel_loss_sum(depth_task(), torch.tensor([[[[1.0, 5.0, 4.0]]]]), torch.tensor([[[[2.0, 0.0, 1.0]]]]))
        >>> total.item(), count.item()
        (4.0, 2)
    """
    # float64 throughout: vectorised float32 reductions (a softmax over classes, a norm over the
    # three normal components) round differently with the batch's size, float64 ones far below
    # the float32 result
    prediction = prediction.detach().double()
    if task.kind == "segmentation":
        ignore = int(task.ignore_value)
        per_pixel = F.cross_entropy(prediction, target.long(), ignore_index=ignore, reduction="none")  # 0 where ignored
    elif task.kind == "normal":
        valid = (target.abs().sum(dim=1) > 0).double()
        per_pixel = (1.0 - (F.normalize(prediction, dim=1) * target.double()).sum(dim=1)) * valid
    else:
        per_pixel = (prediction - target.double()).abs() * (target != 0).double()
    return per_pixel.sum(), valid_pixels(task, target)


def valid_pixels(task: TaskSpec, target: torch.Tensor) -> torch.Tensor:
    """How many pixels of ``target`` enter ``task``'s loss (the denominator of its mean).

    Example:
        >>> from datamodules.tasks import depth_task
        >>> valid_pixels(depth_task(), torch.tensor([[[[2.0, 0.0, 1.0]]]])).item()
        2
    """
    if task.kind == "segmentation":
        return (target != int(task.ignore_value)).sum()
    if task.kind == "normal":
        return (target.abs().sum(dim=1) > 0).sum()
    return (target != 0).sum()
