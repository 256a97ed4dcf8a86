"""Base LightningDataModule for dense-prediction releases in the one-.npy-per-sample layout.

Splits follow the sound protocol of PROTOCOL.md: the release's test folder (called ``val`` in
the MTAN releases) is the test set and is read only by ``test``; validation is a held-out
subset of the training folder, chosen by a fixed permutation that does not depend on the run
seed, so every run of a benchmark selects models on the same images.

Loaders read through the samplers of :mod:`mtlbench.datamodules.sampling`, with one process or many:
the training order and every sample's augmentation are functions of the run seed and the
epoch (one process with batch size W x B takes the steps of W processes with B each), and each
evaluation sample is counted once over all processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, DistributedSampler

from mtlbench.datamodules.augment import DepthKind, JointAugment
from mtlbench.datamodules.errors import DatasetError
from mtlbench.datamodules.npy_release import NpyDenseDataset, load_float32
from mtlbench.datamodules.perturb import LabelNoise, MissingInput, MissingMode
from mtlbench.datamodules.release import ReleaseSpec, spot_check
from mtlbench.datamodules.sampling import EvalOrder, ResumableLoader, TrainOrder
from mtlbench.tasks import TaskSpec

HOLDOUT_PERMUTATION_SEED = 0  # fixed on purpose: the validation split never changes with the run seed
SUBSET_PERMUTATION_SEED = 1  # the order in which train_size takes training images, also fixed


def holdout_split(num_samples: int, num_val: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) indices of a training folder with ``num_val`` held out.

    Example:
        >>> train, val = holdout_split(10, 3)
        >>> len(train), len(val), sorted(train + val) == list(range(10))
        (7, 3, True)
    """
    if not 0 <= num_val < num_samples:
        raise DatasetError(f"num_val={num_val} must be in [0, {num_samples - 1}] for a training folder of {num_samples} samples")
    order = np.random.default_rng(HOLDOUT_PERMUTATION_SEED).permutation(num_samples)
    return sorted(order[num_val:].tolist()), sorted(order[:num_val].tolist())


def training_subset(train: list[int], train_size: int | None) -> list[int]:
    """The first ``train_size`` training indices in a fixed order: nested (a smaller subset lies
    inside every larger one) and the same for every run seed; all of them for ``None``.

    Example:
        >>> small, large = training_subset(list(range(10)), 3), training_subset(list(range(10)), 6)
        >>> len(small), set(small) <= set(large)
        (3, True)
    """
    if train_size is None:
        return train
    if not 1 <= train_size <= len(train):
        raise DatasetError(f"train_size={train_size} must be in [1, {len(train)}] (the training images left after holding out validation)")
    order = np.random.default_rng(SUBSET_PERMUTATION_SEED).permutation(len(train))
    return sorted(train[i] for i in order[:train_size])


class DenseDataModule(pl.LightningDataModule):
    """Train / held-out val / test loaders over a release root.

    Subclasses declare the dataset: ``available_tasks`` (every task the release can serve),
    ``modality_of`` (task name -> folder), ``spec`` (the release layout, for validation) and
    ``depth_kind`` (how zooming changes depth), and resolve ``root``.

    Args:
        tasks: names of the tasks to train, any subset of the dataset's tasks (one name for STL).
        num_val: training samples held out for validation.
        augment: random scale-crop and flip of training samples (never of val / test).
        color_jitter: photometric jitter strength on training images (0 = off).
        batch_size, num_workers, pin_memory: DataLoader settings (``pin_memory=None`` pins
            exactly when a GPU is present).
        train_size: train on this many of the training images (a nested subset fixed across
            seeds; validation and test are unchanged), all of them when ``None``.
        label_noise, noisy_task: noise of this strength on the training targets of
            ``noisy_task`` (:class:`~mtlbench.datamodules.perturb.LabelNoise`); 0 = clean.
        missing_input, missing_mode, missing_patch: the fraction of every image removed, by
            ``patches`` of ``missing_patch`` pixels or by ``channels``
            (:class:`~mtlbench.datamodules.perturb.MissingInput`), in all splits; 0 = none.
    """

    default_tasks: tuple[str, ...] | None = None  # the tasks served when none are named (None: all)
    task_groups: dict[str, tuple[str, ...]] = {}  # named auxiliary task sets (the relatedness axis of sweeps)

    available_tasks: tuple[TaskSpec, ...] = ()
    modality_of: dict[str, str] = {}
    spec: ReleaseSpec
    depth_kind: DepthKind = "metric"
    train_folder = "train"
    test_folder = "val"

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        num_val: int = 0,
        augment: bool = False,
        color_jitter: float = 0.0,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        train_size: int | None = None,
        label_noise: float = 0.0,
        noisy_task: str | None = None,
        missing_input: float = 0.0,
        missing_mode: MissingMode = "patches",
        missing_patch: int = 8,
    ) -> None:
        super().__init__()
        known = {task.name: task for task in self.available_tasks}
        chosen = list(tasks) if tasks is not None else list(self.default_tasks or known)
        unknown = [name for name in chosen if name not in known]
        if unknown or not chosen:
            raise DatasetError(f"{type(self).__name__}: unknown task(s) {unknown or '[]'}; choose a non-empty subset of {list(known)}")
        self._tasks = [known[name] for name in chosen]
        if batch_size < 1 or num_workers < 0 or (num_val is not None and num_val < 0):
            raise DatasetError(
                f"{type(self).__name__}: batch_size must be >= 1 and num_workers, num_val >= 0; "
                f"got batch_size={batch_size}, num_workers={num_workers}, num_val={num_val}"
            )
        self.num_val = num_val
        self.train_size = train_size
        self.label_noise = self._label_noise(label_noise, noisy_task)
        missing = MissingInput(missing_mode, missing_input, missing_patch)  # checked even when 0
        self.missing_input = missing if missing_input else None
        self.augment = augment
        self.color_jitter = color_jitter
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.datasets: dict[str, NpyDenseDataset] = {}

    def _label_noise(self, level: float, task_name: str | None) -> LabelNoise | None:
        """The noise on ``task_name``'s training targets: one of the dataset's tasks, and a no-op
        for a run that does not train it (so a study's single-task baselines of the other tasks
        share its setting)."""
        if not level and task_name is None:
            return None
        known = [task.name for task in self.available_tasks]
        if task_name not in known:
            raise DatasetError(
                f"{type(self).__name__}: label_noise needs noisy_task, one of the dataset's tasks {known}; got {task_name!r}"
            )
        served = {task.name: task for task in self._tasks}
        spec = served.get(task_name) or next(task for task in self.available_tasks if task.name == task_name)
        noise = LabelNoise(spec, level)  # checks the level even where the run does not train the task
        return noise if level and task_name in served else None

    @property
    def tasks(self) -> list[TaskSpec]:
        """The tasks this datamodule serves; the CLI links them into the model."""
        return list(self._tasks)

    @property
    def root(self) -> Path:
        raise NotImplementedError

    def train_transform(self, split_dir: Path) -> JointAugment | None:
        """The joint augmentation of training samples, sized from the split's first image."""
        if not self.augment:
            return None
        height, width = load_float32(split_dir / "image" / "0.npy").shape[:2]
        kinds = {task.name: task.kind for task in self._tasks}
        return JointAugment(height, width, self.depth_kind, kinds, color_jitter=self.color_jitter)

    def _folders(self) -> list[str]:
        return ["image"] + [self.modality_of[task.name] for task in self._tasks]

    def setup(self, stage: str | None = None) -> None:
        root = self.root
        folders = self._folders()
        if stage in (None, "fit", "validate") and "train" not in self.datasets:
            count = spot_check(root, self.spec, [self.train_folder], folders)[self.train_folder]
            train_idx, val_idx = holdout_split(count, self.num_val)
            train_idx = training_subset(train_idx, self.train_size)
            split_dir = root / self.train_folder
            self.datasets["train"] = NpyDenseDataset(
                split_dir,
                self._tasks,
                self.modality_of,
                train_idx,
                self.train_transform(split_dir),
                split="train",
                label_noise=self.label_noise,
                missing_input=self.missing_input,
            )
            self.datasets["val"] = NpyDenseDataset(
                split_dir, self._tasks, self.modality_of, val_idx, split="val", missing_input=self.missing_input
            )
        if stage in (None, "test") and "test" not in self.datasets:
            count = spot_check(root, self.spec, [self.test_folder], folders)[self.test_folder]
            self.datasets["test"] = NpyDenseDataset(
                root / self.test_folder, self._tasks, self.modality_of, range(count), split="test", missing_input=self.missing_input
            )

    def _processes(self) -> tuple[int, int]:
        """(world size, this process's rank) of the trainer the loaders serve; (1, 0) without one."""
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, split: str, sampler: DistributedSampler, loader: type[DataLoader] = DataLoader) -> DataLoader:
        pin = (
            self.pin_memory
            if self.pin_memory is not None
            else bool(self.trainer and self.trainer.accelerator.__class__.__name__ == "CUDAAccelerator")
        )
        return loader(
            self.datasets[split],
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=split == "train",
            num_workers=self.num_workers,
            pin_memory=pin,
            persistent_workers=self.num_workers > 0,
            # the workers' base seed is drawn from this generator, not from torch's global one,
            # whose sequence (dropout, checkpointed) then does not depend on when loaders start
            generator=torch.Generator().manual_seed(_run_seed()),
        )

    def train_dataloader(self) -> DataLoader:
        world, rank = self._processes()
        order = TrainOrder(self.datasets["train"], num_replicas=world, rank=rank, seed=_run_seed())
        return self._loader("train", order, ResumableLoader)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", EvalOrder(self.datasets["val"], *self._processes()))

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", EvalOrder(self.datasets["test"], *self._processes()))


def _run_seed() -> int:
    """The run's seed (``seed_everything``, which every process of a DDP job shares), 0 without one:
    the seed Lightning's own distributed sampler takes."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))
