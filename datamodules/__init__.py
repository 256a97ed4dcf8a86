"""LightningDataModules for dense multi-task prediction; knows nothing of models/ or bench/."""

from datamodules.augment import JointAugment
from datamodules.base import DenseDataModule, holdout_split
from datamodules.cityscapes import CityscapesDataModule
from datamodules.errors import DatasetError
from datamodules.nyuv2 import NYUv2DataModule
from datamodules.release import ReleaseSpec, check_release
from datamodules.synthetic import SyntheticScenesDataModule
from datamodules.tasks import TaskSpec, depth_task, normal_task, segmentation_task

__all__ = [
    "CityscapesDataModule",
    "DatasetError",
    "DenseDataModule",
    "JointAugment",
    "NYUv2DataModule",
    "ReleaseSpec",
    "SyntheticScenesDataModule",
    "TaskSpec",
    "check_release",
    "depth_task",
    "holdout_split",
    "normal_task",
    "segmentation_task",
]
