"""NYUv2 in the MTAN preprocessed release (Liu, Johns & Davison, CVPR 2019): 288x384, 13 classes,
depth in metres, surface normals; 795 training images and the official 654 test images (the
release calls its test folder ``val``)."""

from __future__ import annotations

from mtlbench.datamodules.local_release import LocalReleaseDataModule
from mtlbench.datamodules.release import ModalitySpec, ReleaseSpec
from mtlbench.tasks import depth_task, normal_task, segmentation_task

NYUV2_SPEC = ReleaseSpec(
    name="NYUv2",
    modalities=(
        ModalitySpec("image", "image"),
        ModalitySpec("label", "label", 13),
        ModalitySpec("depth", "depth"),
        ModalitySpec("normal", "normal"),
    ),
    layout_hint="nyuv2/{train,val}/{image,label,depth,normal}/{i}.npy (MTAN release; val = the 654 test images)",
)


class NYUv2DataModule(LocalReleaseDataModule):
    """NYUv2 with an honest split: 159 of the 795 training images held out for validation
    (as Elich et al. 2024) by a fixed permutation; the test folder is read only by ``test``.

    Training augmentation (default on): random scale-crop with scales {1.0, 1.2, 1.5} and
    depth divided by the scale, horizontal flip with the normal's x component negated.

    Args:
        root: the ``nyuv2`` folder; default ``$MTLBENCH_NYUV2``.
        tasks: any subset of ``segmentation``, ``depth``, ``normal``.
        num_val: held-out training images (default 159).
        augment, color_jitter, batch_size, num_workers, pin_memory, and the scaling-study
            settings (``train_size``, ``label_noise``, ``missing_input``, ...): see
            :class:`~mtlbench.datamodules.base.DenseDataModule`.
    """

    available_tasks = (segmentation_task(13), depth_task(), normal_task())
    modality_of = {"segmentation": "label", "depth": "depth", "normal": "normal"}
    spec = NYUV2_SPEC
    depth_kind = "metric"
    root_env = "MTLBENCH_NYUV2"
    standard_num_val = 159
