"""TaskKind: what a kind of dense target means to the suite, declared in one place.

A kind gives its target format (how a release's array becomes the tensor a loss reads), which
pixels carry ground truth, the training loss, the per-pixel loss of evaluation, the benchmark
metrics and their directions, the head that predicts it, how a scale-crop-flip changes it, and
the study's label noise on it. The datamodule declares each task's kind (:class:`TaskSpec`); the
model, the training step, the metrics and the augmentation all read it from there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric

from mtlbench.tasks.head import DenseHead


class TaskLike(Protocol):
    """What a kind reads of a task (:class:`mtlbench.tasks.TaskSpec` is one)."""

    name: str
    channels: int
    ignore_value: float


def no_valid_pixel(prediction: torch.Tensor) -> torch.Tensor:
    """A zero that still depends on the prediction, so backward passes stay well defined."""
    return prediction.sum() * 0.0


class TaskKind(ABC):
    """A kind of dense-prediction target. Subclass it and give an instance as a task's ``kind``.

    Instances are interchangeable: two kinds are equal when they are of the same class.
    """

    name: ClassVar[str]
    #: every metric :meth:`metrics` computes -> whether higher is better
    metric_directions: ClassVar[dict[str, bool]]
    #: the largest label-noise level of the scaling studies (:meth:`add_noise`)
    noise_limit: ClassVar[float] = float("inf")

    def check(self, task: TaskLike) -> None:
        """Raise ``ValueError`` when ``task`` does not fit the kind (its number of channels);
        any number of channels fits by default."""
        return None

    def target(self, array: np.ndarray) -> torch.Tensor:
        """A release's HxW or HxWxC float32 array as the target tensor: float32 CxHxW."""
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        # CHW views of HWC memory: batch collation copies them into contiguous NCHW anyway
        return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)

    def augment(self, target: np.ndarray, scale: float, flipped: bool, depth_kind: str) -> np.ndarray:
        """``target`` after a zoom by ``scale`` and, if ``flipped``, a horizontal flip, both
        already applied to its pixels (nearest neighbour): what the values themselves must
        change. ``depth_kind``: ``"metric"`` or ``"inverse"`` (the release's depth, Cityscapes'
        being disparity-like)."""
        return target

    def add_noise(self, task: TaskLike, target: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
        """``target`` (HxW or HxWxC, numpy) with label noise of strength ``level`` (studies)."""
        raise ValueError(f"task kind '{self.name}' has no label noise; choose another noisy_task")

    @abstractmethod
    def valid(self, task: TaskLike, target: torch.Tensor) -> torch.Tensor:
        """(B, H, W) bool: the pixels of a batch of targets that carry ground truth."""

    @abstractmethod
    def loss(self, task: TaskLike, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch: the mean over valid pixels (a zero tied to
        ``prediction`` when none is valid)."""

    @abstractmethod
    def pixel_losses(self, task: TaskLike, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, H, W) float64: each pixel's loss, 0 where invalid; ``prediction`` is float64."""

    @abstractmethod
    def metrics(self, task: TaskLike) -> Metric:
        """The benchmark metrics of ``task``; ``compute()`` returns ``{metric: value}`` with the
        keys of :attr:`metric_directions`."""

    def head(self, task: TaskLike, in_channels: int) -> nn.Module:
        """The head predicting ``task`` from shared features: ``head(features, size)`` returns
        (B, task.channels, *size)."""
        return DenseHead(in_channels, task.channels)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
