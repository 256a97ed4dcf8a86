"""TaskSpec: a task as a datamodule declares it (name, kind, channels, ignore value)."""

from __future__ import annotations

from dataclasses import dataclass

from mtlbench.tasks.kind import TaskKind
from mtlbench.tasks.registry import kind_named


@dataclass(frozen=True)
class TaskSpec:
    """A dense-prediction task as declared by a datamodule.

    Args:
        name: key of the task in batches, model outputs, metrics and records (e.g. ``"depth"``).
        kind: a :class:`TaskKind`, or the name of a built-in one: ``"segmentation"`` (class
            logits), ``"depth"`` (one channel, metres or inverse depth) or ``"normal"`` (three
            channels, unit vectors in the camera frame). Stored as the kind itself.
        channels: output channels the head must produce (number of classes for segmentation).
        ignore_value: target value marking pixels without ground truth: ``-1`` for labels,
            ``0`` for depth and for all-zero normals.

    Example:
        >>> task = TaskSpec("segmentation", "segmentation", channels=13, ignore_value=-1)
        >>> task.kind.name, task.channels
        ('segmentation', 13)
    """

    name: str
    kind: TaskKind
    channels: int
    ignore_value: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.kind, str):
            object.__setattr__(self, "kind", kind_named(self.kind))
        if not isinstance(self.kind, TaskKind):
            raise ValueError(f"task '{self.name}': kind must be a TaskKind or a built-in kind's name, got {self.kind!r}")
        if self.channels < 1:
            raise ValueError(f"task '{self.name}': channels must be >= 1, got {self.channels}")
        self.kind.check(self)


def segmentation_task(num_classes: int, name: str = "segmentation") -> TaskSpec:
    """Semantic segmentation over ``num_classes`` classes, label -1 ignored."""
    return TaskSpec(name, "segmentation", channels=num_classes, ignore_value=-1)


def depth_task(name: str = "depth") -> TaskSpec:
    """Per-pixel depth (one channel), 0 marks invalid pixels."""
    return TaskSpec(name, "depth", channels=1, ignore_value=0.0)


def normal_task(name: str = "normal") -> TaskSpec:
    """Per-pixel surface normal (three channels, unit length), all-zero marks invalid pixels."""
    return TaskSpec(name, "normal", channels=3, ignore_value=0.0)
