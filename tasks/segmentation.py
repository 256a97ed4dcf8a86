"""Semantic segmentation: per-pixel class logits, labels in [0, C-1], -1 ignored."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassJaccardIndex

from mtlbench.tasks.kind import TaskKind, TaskLike, no_valid_pixel


class SegmentationScores(MulticlassJaccardIndex):
    """mIoU and pixel accuracy from one confusion matrix accumulated over the split.

    torchmetrics' confusion-matrix Jaccard drops ``ignore_index`` pixels and averages the IoU
    over classes whose union is non-empty; pixel accuracy is the matrix trace over its sum.
    ``update`` takes logits (B, C, H, W) and labels (B, H, W).

    Example:
        >>> metric = SegmentationScores(num_classes=3, ignore_index=-1)
        >>> logits = torch.nn.functional.one_hot(torch.tensor([[[0, 1, 1, 0]]]), 3).permute(0, 3, 1, 2).float()
        >>> metric.update(logits, torch.tensor([[[0, 1, -1, 2]]]))
        >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}
        {'miou': 0.5, 'pix_acc': 0.6667}
    """

    def __init__(self, num_classes: int, ignore_index: int = -1) -> None:
        super().__init__(num_classes, ignore_index=ignore_index, average="macro", validate_args=False)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(logits.detach().argmax(dim=1), target.long())

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        pixel_accuracy = self.confmat.trace().double() / self.confmat.sum().clamp(min=1)
        return {"miou": super().compute(), "pix_acc": pixel_accuracy.float()}


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Cross-entropy over pixels whose label is not ``ignore_index``.

    Example:
        >>> segmentation_loss(torch.tensor([[[[0.0]], [[0.0]]]]), torch.tensor([[[1]]])).item()  # log 2
        0.6931...
    """
    if not bool((target != ignore_index).any()):
        return no_valid_pixel(logits)
    return F.cross_entropy(logits, target.long(), ignore_index=ignore_index)


class Segmentation(TaskKind):
    """Class logits (``channels`` = classes) trained by cross-entropy; mIoU and pixel accuracy.

    Targets are int16 HxW labels (a quarter of int64's bytes through the loaders' shared memory;
    the loss and metrics widen them); label noise redraws a ``level`` fraction of labels.

    Example:
        >>> from mtlbench.tasks import segmentation_task
        >>> task = segmentation_task(2)
        >>> Segmentation().loss(task, torch.zeros(1, 2, 1, 2), torch.tensor([[[1, -1]]])).item()  # log 2, one valid pixel
        0.6931...
    """

    name = "segmentation"
    metric_directions = {"miou": True, "pix_acc": True}
    noise_limit = 1.0

    def target(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).round().to(torch.int16)

    def add_noise(self, task: TaskLike, target: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
        flip = (rng.random(target.shape) < level) & (target >= 0)
        drawn = rng.integers(0, task.channels, target.shape).astype(target.dtype)
        return np.where(flip, drawn, target)

    def valid(self, task: TaskLike, target: torch.Tensor) -> torch.Tensor:
        return target != int(task.ignore_value)

    def loss(self, task: TaskLike, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return segmentation_loss(prediction, target, int(task.ignore_value))

    def pixel_losses(self, task: TaskLike, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(prediction, target.long(), ignore_index=int(task.ignore_value), reduction="none")  # 0 where ignored

    def metrics(self, task: TaskLike) -> SegmentationScores:
        return SegmentationScores(task.channels, int(task.ignore_value))
