"""LightningDataModules for dense multi-task prediction; knows nothing of models/ or bench/."""

from mtlbench.datamodules.augment import JointAugment
from mtlbench.datamodules.base import DenseDataModule, holdout_split
from mtlbench.datamodules.cityscapes import CityscapesDataModule
from mtlbench.datamodules.errors import DatasetError
from mtlbench.datamodules.nyuv2 import NYUv2DataModule
from mtlbench.datamodules.release import ReleaseSpec, check_release
from mtlbench.datamodules.synthetic import SyntheticScenesDataModule

__all__ = [
    "CityscapesDataModule",
    "DatasetError",
    "DenseDataModule",
    "JointAugment",
    "NYUv2DataModule",
    "ReleaseSpec",
    "SyntheticScenesDataModule",
    "check_release",
    "holdout_split",
]
