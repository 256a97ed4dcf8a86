"""Surface normals: three channels per pixel, unit vectors in the camera frame, all-zero where unknown."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from mtlbench.tasks.head import DenseHead
from mtlbench.tasks.kind import TaskKind, TaskLike, no_valid_pixel

ANGLE_THRESHOLDS = {"within_11_25": 11.25, "within_22_5": 22.5, "within_30": 30.0}


def has_normal(target: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: the pixels of (B, 3, H, W) normals that are not all-zero (have ground truth)."""
    return target.abs().sum(dim=1) > 0


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
        valid = has_normal(target)
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


def normal_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity between the normalised prediction and the target, over pixels whose
    target is not all-zero.

    Example:
        >>> normal_loss(torch.tensor([[[[1.0]], [[0.0]], [[0.0]]]]), torch.tensor([[[[0.0]], [[1.0]], [[0.0]]]])).item()
        1.0
    """
    valid = has_normal(target)
    if not bool(valid.any()):
        return no_valid_pixel(prediction)
    cosine = (F.normalize(prediction, dim=1) * target).sum(dim=1)
    return (1.0 - cosine[valid]).mean()


class NormalHead(DenseHead):
    """Per-pixel unit surface normal: the 3-channel output is L2-normalised."""

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.normalize(super().forward(features, size), dim=1)


class Normal(TaskKind):
    """Unit normals (an L2-normalised head) trained by 1 - cosine; angle errors in degrees. A
    horizontal flip negates the x component; label noise adds level * N(0, 1) and renormalises.

    Example:
        >>> from mtlbench.tasks import normal_task
        >>> Normal().valid(normal_task(), torch.tensor([[[[0.0, 1.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])).tolist()
        [[[False, True]]]
    """

    name = "normal"
    metric_directions = {"mean_angle": False, "median_angle": False, "within_11_25": True, "within_22_5": True, "within_30": True}

    def check(self, task: TaskLike) -> None:
        if task.channels != 3:
            raise ValueError(f"task '{task.name}' of kind 'normal' must have 3 channels, got {task.channels}")

    def augment(self, target: np.ndarray, scale: float, flipped: bool, depth_kind: str) -> np.ndarray:
        if not flipped:
            return target
        target = target.copy()
        target[..., 0] *= -1.0
        return target

    def add_noise(self, task: TaskLike, target: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
        valid = np.abs(target).sum(axis=-1, keepdims=True) > 0
        noisy = target + level * rng.standard_normal(target.shape)
        noisy /= np.maximum(np.linalg.norm(noisy, axis=-1, keepdims=True), 1e-6)
        return np.where(valid, noisy, target).astype(target.dtype)

    def valid(self, task: TaskLike, target: torch.Tensor) -> torch.Tensor:
        return has_normal(target)

    def loss(self, task: TaskLike, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return normal_loss(prediction, target)

    def pixel_losses(self, task: TaskLike, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = self.valid(task, target).double()
        return (1.0 - (F.normalize(prediction, dim=1) * target.double()).sum(dim=1)) * valid

    def metrics(self, task: TaskLike) -> NormalAngleErrors:
        return NormalAngleErrors()

    def head(self, task: TaskLike, in_channels: int) -> nn.Module:
        return NormalHead(in_channels, task.channels)
