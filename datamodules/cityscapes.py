"""Cityscapes in the MTAN preprocessed release: 128x256 (or 256x512), 7- or 19-class
segmentation and inverse depth (disparity-like, 0 = invalid); 2975 training images and 500
test images (the release calls its test folder ``val``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from mtlbench.datamodules.errors import DatasetError
from mtlbench.datamodules.local_release import LocalReleaseDataModule
from mtlbench.datamodules.release import ModalitySpec, ReleaseSpec
from mtlbench.tasks import depth_task, segmentation_task


def cityscapes_spec(num_classes: int) -> ReleaseSpec:
    return ReleaseSpec(
        name="Cityscapes",
        modalities=(
            ModalitySpec("image", "image"),
            ModalitySpec(f"label_{num_classes}", "label", num_classes),
            ModalitySpec("depth", "depth"),
        ),
        layout_hint=f"cityscapes/{{train,val}}/{{image,label_{num_classes},depth}}/{{i}}.npy (MTAN release; val = the 500 test images)",
    )


class CityscapesDataModule(LocalReleaseDataModule):
    """Cityscapes with 595 of the 2975 training images held out for validation (as Elich et al.
    2024) by a fixed permutation; the test folder is read only by ``test``.

    Training augmentation (default on): random scale-crop with scales {1.0, 1.2, 1.5} and the
    inverse depth **multiplied** by the scale (CAGrad's and FAMO's code divide it, which scales
    it the wrong way), horizontal flip.

    Args:
        root: the ``cityscapes`` folder; default ``$MTLBENCH_CITYSCAPES``.
        num_classes: 7 (the common benchmark) or 19, reading ``label_7`` or ``label_19``.
        tasks: any subset of ``segmentation``, ``depth``.
        num_val: held-out training images (default 595).
        augment, color_jitter, batch_size, num_workers, pin_memory, and the scaling-study
            settings (``train_size``, ``label_noise``, ``missing_input``, ...): see
            :class:`~mtlbench.datamodules.base.DenseDataModule`.
    """

    available_tasks = (segmentation_task(7), depth_task())  # per instance: num_classes sets the classes
    depth_kind = "inverse"
    root_env = "MTLBENCH_CITYSCAPES"
    standard_num_val = 595

    def __init__(
        self,
        root: str | None = None,
        num_classes: Literal[7, 19] = 7,
        tasks: Sequence[str] | None = None,
        num_val: int | None = None,
        augment: bool = True,
        color_jitter: float = 0.0,
        batch_size: int = 8,
        num_workers: int = 4,
        pin_memory: bool | None = None,
        **study: Any,
    ) -> None:
        if num_classes not in (7, 19):
            raise DatasetError(f"CityscapesDataModule: num_classes must be 7 or 19, got {num_classes}")
        self.available_tasks = (segmentation_task(num_classes), depth_task())
        self.modality_of = {"segmentation": f"label_{num_classes}", "depth": "depth"}
        self.spec = cityscapes_spec(num_classes)
        super().__init__(root, tasks, num_val, augment, color_jitter, batch_size, num_workers, pin_memory, **study)
