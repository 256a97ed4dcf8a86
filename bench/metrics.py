"""Benchmark metrics as torchmetrics Metrics with summed states: exact over a split and under DDP.

Definitions follow PROTOCOL.md: mIoU from a confusion matrix accumulated over the whole split
(classes with an empty union skipped), pixel accuracy over valid pixels, depth errors pooled
over all valid pixels of the split (not averaged per batch), normal angles in degrees.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassJaccardIndex

from datamodules.tasks import TaskSpec

# Direction of every metric this module produces (True = higher is better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "miou": True,
    "pix_acc": True,
    "abs_err": False,
    "rel_err": False,
    "mean_angle": False,
    "median_angle": False,
    "within_11_25": True,
    "within_22_5": True,
    "within_30": True,
}
METRICS_OF_KIND: dict[str, tuple[str, ...]] = {
    "segmentation": ("miou", "pix_acc"),
    "depth": ("abs_err", "rel_err"),
    "normal": ("mean_angle", "median_angle", "within_11_25", "within_22_5", "within_30"),
}
ANGLE_THRESHOLDS = {"within_11_25": 11.25, "within_22_5": 22.5, "within_30": 30.0}


class DepthErrors(Metric):
    """Absolute and relative depth error pooled over every valid pixel (gt != 0) of a split.

    Example:
        >>> metric = DepthErrors()
        >>> metric.update(torch.tensor([1.0, 3.0, 9.0]), torch.tensor([2.0, 2.0, 0.0]))
        >>> {k: round(v.item(), 3) for k, v in metric.compute().items()}
        {'abs_err': 1.0, 'rel_err': 0.5}
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("abs_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("rel_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        valid = target != 0
        error = (prediction.detach() - target).abs()[valid].double()
        self.abs_sum += error.sum()
        self.rel_sum += (error / target[valid].double()).sum()
        self.count += valid.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp(min=1)
        return {"abs_err": (self.abs_sum / count).float(), "rel_err": (self.rel_sum / count).float()}


class NormalAngleErrors(Metric):
    """Angle (degrees) between L2-normalised predicted and true normals over valid pixels
    (gt not all-zero): mean, median and the fractions within 11.25, 22.5 and 30 degrees.

    The mean and the fractions are exact. The median comes from a histogram of
    ``bins_per_degree`` bins per degree (summed state, so it works across batches and
    processes) and is within half a bin (0.005 degrees by default) of the exact median.

    Example:
        >>> metric = NormalAngleErrors()
        >>> x, y = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
        >>> metric.update(torch.stack([x, x]).T[None, :, :, None], torch.stack([x, y]).T[None, :, :, None])
        >>> round(metric.compute()["mean_angle"].item(), 3)  # angles 0 and 90
        45.0
    """

    full_state_update = False

    def __init__(self, bins_per_degree: int = 100, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bins_per_degree = bins_per_degree
        self.add_state("histogram", torch.zeros(180 * bins_per_degree, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("angle_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("within", torch.zeros(len(ANGLE_THRESHOLDS), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """``prediction`` and ``target``: (B, 3, H, W)."""
        valid = target.abs().sum(dim=1) > 0
        pred = prediction.detach().float().movedim(1, -1)[valid]
        true = target.float().movedim(1, -1)[valid]
        # atan2(|a x b|, a . b) is accurate at every angle, unlike acos near 0 and 180 degrees.
        angle = torch.rad2deg(torch.atan2(torch.linalg.cross(pred, true).norm(dim=-1), (pred * true).sum(dim=-1)))
        bins = (angle * self.bins_per_degree).long().clamp(max=self.histogram.numel() - 1)
        self.histogram += torch.bincount(bins, minlength=self.histogram.numel())
        self.angle_sum += angle.double().sum()
        self.within += torch.stack([(angle < limit).sum() for limit in ANGLE_THRESHOLDS.values()])
        self.count += angle.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp(min=1)
        cumulative = torch.cumsum(self.histogram, dim=0)
        median_bin = torch.searchsorted(cumulative, math.ceil(int(self.count) / 2))
        values = {
            "mean_angle": (self.angle_sum / count).float(),
            "median_angle": ((median_bin.float() + 0.5) / self.bins_per_degree),
        }
        for index, name in enumerate(ANGLE_THRESHOLDS):
            values[name] = (self.within[index].double() / count).float()
        return values


class PooledLoss(Metric):
    """A task's loss over every valid pixel of a split: summed per-pixel losses over their count,
    the loss of the whole split taken as one batch. It does not depend on how the split is cut
    into batches or shared among processes (summed float64 states).

    Example:
        >>> metric = PooledLoss()
        >>> metric.update(torch.tensor(3.0), torch.tensor(3))  # a batch: 3 valid pixels, losses summing to 3
        >>> metric.update(torch.tensor(5.0), torch.tensor(1))
        >>> metric.compute().item()
        2.0
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, loss_sum: torch.Tensor, valid_pixels: torch.Tensor) -> None:
        """``loss_sum``: the summed loss of a batch's valid pixels; ``valid_pixels``: their number."""
        self.total += loss_sum.detach().double()
        self.count += valid_pixels

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()


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


def metric_for(task: TaskSpec) -> Metric:
    """The benchmark metrics of ``task``; ``compute()`` returns ``{metric name: value}``."""
    if task.kind == "segmentation":
        return SegmentationScores(task.channels, int(task.ignore_value))
    if task.kind == "depth":
        return DepthErrors()
    if task.kind == "normal":
        return NormalAngleErrors()
    raise ValueError(f"no metrics for task '{task.name}' of kind '{task.kind}'; kinds with metrics: segmentation, depth, normal")
