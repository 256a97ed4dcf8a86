"""Depth: one channel per pixel (metres, or inverse depth for Cityscapes), 0 where unknown."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from mtlbench.tasks.kind import TaskKind, TaskLike, no_valid_pixel


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


def depth_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over pixels with depth (target != 0).

    Example:
        >>> depth_loss(torch.tensor([[[[1.0, 5.0]]]]), torch.tensor([[[[2.0, 0.0]]]])).item()
        1.0
    """
    valid = target != 0
    if not bool(valid.any()):
        return no_valid_pixel(prediction)
    return (prediction - target).abs()[valid].mean()


class Depth(TaskKind):
    """Unconstrained one-channel output trained by L1 on valid pixels (as MTAN); absolute and
    relative error. A zoom by s divides metric depth by s (multiplies inverse depth); label
    noise scales depth by exp(level * N(0, 1)).

    Example:
        >>> from mtlbench.tasks import depth_task
        >>> Depth().pixel_losses(depth_task(), torch.tensor([[[[1.0, 5.0]]]]).double(), torch.tensor([[[[2.0, 0.0]]]])).tolist()
        [[[1.0, 0.0]]]
    """

    name = "depth"
    metric_directions = {"abs_err": False, "rel_err": False}

    def check(self, task: TaskLike) -> None:
        if task.channels != 1:
            raise ValueError(f"task '{task.name}' of kind 'depth' must have 1 channel, got {task.channels}")

    def augment(self, target: np.ndarray, scale: float, flipped: bool, depth_kind: str) -> np.ndarray:
        if scale == 1.0:
            return target
        return target / scale if depth_kind == "metric" else target * scale

    def add_noise(self, task: TaskLike, target: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
        return np.where(target > 0, target * np.exp(level * rng.standard_normal(target.shape)), target).astype(target.dtype)

    def valid(self, task: TaskLike, target: torch.Tensor) -> torch.Tensor:
        return (target != 0).squeeze(1)

    def loss(self, task: TaskLike, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return depth_loss(prediction, target)

    def pixel_losses(self, task: TaskLike, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((prediction - target.double()).abs() * (target != 0).double()).squeeze(1)

    def metrics(self, task: TaskLike) -> DepthErrors:
        return DepthErrors()
