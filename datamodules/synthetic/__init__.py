"""Synthetic scenes: the embedded default dataset."""

from datamodules.synthetic.datamodule import SyntheticScenesDataModule
from datamodules.synthetic.render import CLASS_NAMES, NUM_CLASSES, render_scene

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "SyntheticScenesDataModule", "render_scene"]
