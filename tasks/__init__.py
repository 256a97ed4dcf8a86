"""Task kinds: the one place a kind of dense target (its target format, loss, metrics, head,
augmentation and label noise) is declared, and :class:`TaskSpec`, a task as a datamodule
declares it. Below models/, datamodules/ and bench/, which all read from it."""

from mtlbench.tasks.depth import Depth
from mtlbench.tasks.head import DenseHead
from mtlbench.tasks.kind import TaskKind, TaskLike
from mtlbench.tasks.normal import Normal
from mtlbench.tasks.registry import BUILT_IN_KINDS, kind_named
from mtlbench.tasks.segmentation import Segmentation
from mtlbench.tasks.spec import TaskSpec, depth_task, normal_task, segmentation_task

__all__ = [
    "BUILT_IN_KINDS",
    "DenseHead",
    "Depth",
    "Normal",
    "Segmentation",
    "TaskKind",
    "TaskLike",
    "TaskSpec",
    "depth_task",
    "kind_named",
    "normal_task",
    "segmentation_task",
]
