"""The embedded default dataset: procedurally rendered scenes, generated once into a cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtlbench.datamodules.base import DenseDataModule
from mtlbench.datamodules.release import ModalitySpec, ReleaseSpec
from mtlbench.datamodules.synthetic.generate import ensure_release, release_name
from mtlbench.datamodules.synthetic.render import NUM_CLASSES, NUM_PATTERNS
from mtlbench.tasks import depth_task, normal_task, segmentation_task

# (task name, classes) of the maps added for the scaling studies: binary except the pattern index
STUDY_MAPS: tuple[tuple[str, int], ...] = (("edges", 2), ("boundary", 2), ("texture", 2), ("pattern", NUM_PATTERNS))

SYNTHETIC_SPEC = ReleaseSpec(
    name="synthetic scenes",
    modalities=(
        ModalitySpec("image", "image"),
        ModalitySpec("label", "label", NUM_CLASSES),
        ModalitySpec("depth", "depth"),
        ModalitySpec("normal", "normal"),
        *(ModalitySpec(name, "label", classes) for name, classes in STUDY_MAPS),
    ),
    layout_hint="ROOT/{train,val}/{image,label,depth,normal,edges,boundary,texture,pattern}/{i}.npy (written by mtlbench itself)",
)

DEFAULT_CACHE = "~/.cache/mtlbench"


def default_cache_dir() -> Path:
    """``$MTLBENCH_CACHE`` if set, else ``~/.cache/mtlbench``."""
    return Path(os.environ.get("MTLBENCH_CACHE", DEFAULT_CACHE)).expanduser()


class SyntheticScenesDataModule(DenseDataModule):
    """Synthetic indoor scenes with segmentation (7 classes), depth (m) and normals, the default
    tasks, and four more for the scaling studies (``task_groups``): ``edges`` and ``boundary``
    share the scene's geometry, ``texture`` and ``pattern`` come from a generator unrelated to it
    (:mod:`mtlbench.datamodules.synthetic.render`).

    Same loader path as NYUv2: the files are written in its layout and validation images are
    held out of the training folder.

    Args:
        num_train, num_val, num_test: split sizes (train + val images live in ``train/``).
        height, width: image size in pixels.
        seed: generator seed; every image is a pure function of (seed, split, index).
        cache_dir: where releases are kept (default ``$MTLBENCH_CACHE`` or ``~/.cache/mtlbench``).
        tasks, augment, color_jitter, batch_size, num_workers, pin_memory, and the scaling-study
            settings (``train_size``, ``label_noise``, ``missing_input``, ...): see
            :class:`DenseDataModule` (augmentation divides depth by the zoom, as for NYUv2).
    """

    available_tasks = (
        segmentation_task(NUM_CLASSES),
        depth_task(),
        normal_task(),
        *(segmentation_task(classes, name) for name, classes in STUDY_MAPS),
    )
    default_tasks = ("segmentation", "depth", "normal")
    modality_of = {"segmentation": "label", "depth": "depth", "normal": "normal", **{name: name for name, _ in STUDY_MAPS}}
    task_groups = {"related": ("edges", "boundary"), "unrelated": ("texture", "pattern")}
    spec = SYNTHETIC_SPEC

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        num_train: int = 2000,
        num_val: int = 300,
        num_test: int = 300,
        height: int = 96,
        width: int = 128,
        seed: int = 0,
        cache_dir: str | None = None,
        augment: bool = False,
        color_jitter: float = 0.0,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        **study: Any,
    ) -> None:
        super().__init__(
            tasks=tasks,
            num_val=num_val,
            augment=augment,
            color_jitter=color_jitter,
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            **study,
        )
        self.num_train = num_train
        self.num_test = num_test
        self.height = height
        self.width = width
        self.seed = seed
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()

    @property
    def root(self) -> Path:
        return self.cache_dir / release_name(self.seed, self.num_train + self.num_val, self.num_test, self.height, self.width)

    def prepare_data(self) -> None:
        """Generate the release on first use (rank 0 only under DDP)."""
        ensure_release(self.cache_dir, self.seed, self.num_train + self.num_val, self.num_test, self.height, self.width)
