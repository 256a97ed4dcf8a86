"""The pooled loss of evaluation: each pixel's loss from its task's kind, summed in float64.

The training losses themselves are the kinds' (:meth:`mtlbench.tasks.TaskKind.loss`).
"""

from __future__ import annotations

import torch

from mtlbench.tasks import TaskSpec


def pixel_loss_sum(task: TaskSpec, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sum, in float64, of ``task``'s loss over every pixel with ground truth, and their
    count: the loss of a split is the ratio of the summed sums and counts (each pixel's loss is
    computed alone, so the result does not depend on how the split is batched or shared).

    Example:
        >>> from mtlbench.tasks import depth_task
        >>> total, count = pixel_loss_sum(depth_task(), torch.tensor([[[[1.0, 5.0, 4.0]]]]), torch.tensor([[[[2.0, 0.0, 1.0]]]]))
        >>> total.item(), count.item()
        (4.0, 2)
    """
    # float64 throughout: vectorised float32 reductions (a softmax over classes, a norm over the
    # three normal components) round differently with the batch's size, float64 ones far below
    # the float32 result
    per_pixel = task.kind.pixel_losses(task, prediction.detach().double(), target)
    return per_pixel.sum(), valid_pixels(task, target)


def valid_pixels(task: TaskSpec, target: torch.Tensor) -> torch.Tensor:
    """How many pixels of ``target`` enter ``task``'s loss (the denominator of its mean).

    Example:
        >>> from mtlbench.tasks import depth_task
        >>> valid_pixels(depth_task(), torch.tensor([[[[2.0, 0.0, 1.0]]]])).item()
        2
    """
    return task.kind.valid(task, target).sum()
