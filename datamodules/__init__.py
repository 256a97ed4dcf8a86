"""LightningDataModules for dense multi-task prediction; knows nothing of models/ or bench/."""

from datamodules.base import DenseDataModule, holdout_split
from datamodules.errors import DatasetError
from datamodules.synthetic import SyntheticScenesDataModule
from datamodules.tasks import TaskSpec, depth_task, normal_task, segmentation_task

__all__ = [
    "DatasetError",
    "DenseDataModule",
    "SyntheticScenesDataModule",
    "TaskSpec",
    "depth_task",
    "holdout_split",
    "normal_task",
    "segmentation_task",
]
