"""Task heads: one per task, built by the task's kind (:mod:`mtlbench.tasks`)."""

from __future__ import annotations

from typing import Protocol

from torch import nn

from mtlbench.models.errors import ModelConfigError
from mtlbench.tasks import TaskKind, kind_named


class HeadSpec(Protocol):
    """What a head needs to know of a task (:class:`mtlbench.tasks.TaskSpec` satisfies it)."""

    name: str
    kind: TaskKind | str  # a kind, or a built-in kind's name
    channels: int
    ignore_value: float


def build_head(task: HeadSpec, in_channels: int) -> nn.Module:
    """``task``'s kind's head on ``in_channels`` shared features, or a one-line error naming the
    task that does not fit its kind.

    Example:
        >>> from mtlbench.tasks import normal_task
        >>> type(build_head(normal_task(), 8)).__name__
        'NormalHead'
    """
    try:
        kind = task.kind if isinstance(task.kind, TaskKind) else kind_named(task.kind)  # a built-in kind by name
    except ValueError as error:
        raise ModelConfigError(f"task '{task.name}': {error}") from None
    try:
        kind.check(task)  # its message names the task
    except ValueError as error:
        raise ModelConfigError(str(error)) from None
    return kind.head(task, in_channels)
