"""What the training step needs of a multi-task network, whatever its architecture."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from mtlbench.models.errors import ModelConfigError


def checked_task_names(tasks: Sequence, model: str) -> list[str]:
    """The tasks' names, or a one-line error for none or a repeated one."""
    names = [task.name for task in tasks]
    if not names:
        raise ModelConfigError(f"{model} needs at least one task; the datamodule declares them")
    if len(set(names)) != len(names):
        raise ModelConfigError(f"task names must be unique, got {names}")
    return names


class MultiTaskModel(nn.Module, ABC):
    """A shared part ``encode(images) -> z`` and task-specific heads ``decode(z) -> {task: output}``.

    ``z`` is one tensor: the point where the task gradients are taken for the methods that work
    in the space of the shared representation, and through which each task's gradient reaches
    the shared parameters. ``shared_parameters()`` and ``task_parameters(name)`` partition
    ``parameters()`` exactly: the training step gives each head its own gradient and hands the
    rest to the method.
    """

    task_names: list[str]
    heads: nn.ModuleDict

    def __init__(self) -> None:
        super().__init__()
        self._input_size: tuple[int, int] | None = None

    @abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The shared representation of a batch of images."""

    @abstractmethod
    def decode(self, features: torch.Tensor | Mapping[str, torch.Tensor], size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        """Per-task outputs at ``size`` (default: the size of the last encoded batch); ``features``
        is the shared representation, or ``{task: representation}`` to give each head its own."""

    @abstractmethod
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters every task's loss may depend on."""

    @abstractmethod
    def last_shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the last layer every task uses (GradNorm's W)."""

    @abstractmethod
    def compile_units(self) -> list[nn.Module]:
        """The submodules ``compile`` compiles one by one."""

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(images), size=(images.shape[-2], images.shape[-1]))

    def output_size(self, size: tuple[int, int] | None) -> tuple[int, int]:
        size = size or self._input_size
        if size is None:
            raise RuntimeError("decode() needs an output size: call encode() first or pass size")
        return size

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        """Parameters only task ``name`` depends on: its head."""
        if name not in self.heads:
            raise ModelConfigError(f"no head for task '{name}'; tasks: {', '.join(self.task_names)}")
        yield from self.heads[name].parameters()
