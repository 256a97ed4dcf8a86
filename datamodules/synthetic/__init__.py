"""Synthetic scenes: the embedded default dataset."""

from mtlbench.datamodules.synthetic.datamodule import SyntheticScenesDataModule
from mtlbench.datamodules.synthetic.render import CLASS_NAMES, NUM_CLASSES, render_scene

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "SyntheticScenesDataModule", "render_scene"]
