"""Base LightningDataModule for dense-prediction releases in the one-.npy-per-sample layout.

Splits follow the sound protocol of PROTOCOL.md: the release's test folder (called ``val`` in
the MTAN releases) is the test set and is read only by ``test``; validation is a held-out
subset of the training folder, chosen by a fixed permutation that does not depend on the run
seed, so every run of a benchmark selects models on the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from datamodules.errors import DatasetError
from datamodules.npy_release import NpyDenseDataset, count_samples
from datamodules.tasks import TaskSpec

HOLDOUT_PERMUTATION_SEED = 0  # fixed on purpose: the validation split never changes with the run seed


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


class DenseDataModule(pl.LightningDataModule):
    """Train / held-out val / test loaders over a release root.

    Subclasses declare the dataset: ``available_tasks`` (every task the release can serve),
    ``modality_of`` (task name -> folder) and ``layout_hint`` (shown in errors), and may
    override ``root`` resolution in ``prepare_data``.

    Args:
        tasks: names of the tasks to train, any subset of the dataset's tasks (one name for STL).
        num_val: training samples held out for validation.
        batch_size, num_workers, pin_memory: DataLoader settings (``pin_memory=None`` pins
            exactly when a GPU is present).
    """

    available_tasks: tuple[TaskSpec, ...] = ()
    modality_of: dict[str, str] = {}
    layout_hint: str = "ROOT/{train,val}/{image,...}/{i}.npy"
    train_folder = "train"
    test_folder = "val"

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        num_val: int = 0,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        known = {task.name: task for task in self.available_tasks}
        chosen = list(tasks) if tasks is not None else list(known)
        unknown = [name for name in chosen if name not in known]
        if unknown or not chosen:
            raise DatasetError(f"{type(self).__name__}: unknown task(s) {unknown or '[]'}; choose a non-empty subset of {list(known)}")
        self._tasks = [known[name] for name in chosen]
        self.num_val = num_val
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.datasets: dict[str, NpyDenseDataset] = {}

    @property
    def tasks(self) -> list[TaskSpec]:
        """The tasks this datamodule serves; the CLI links them into the model."""
        return list(self._tasks)

    @property
    def root(self) -> Path:
        raise NotImplementedError

    def train_transform(self):
        """Joint augmentation applied to training samples (none by default)."""
        return None

    def _modalities(self) -> list[str]:
        return ["image"] + [self.modality_of[task.name] for task in self._tasks]

    def setup(self, stage: str | None = None) -> None:
        root = self.root
        if not root.is_dir():
            raise DatasetError(f"dataset root {root} does not exist; expected layout: {self.layout_hint}")
        modalities = self._modalities()
        if stage in (None, "fit", "validate") and "train" not in self.datasets:
            count = count_samples(root / self.train_folder, modalities, self.layout_hint)
            train_idx, val_idx = holdout_split(count, self.num_val)
            split_dir = root / self.train_folder
            self.datasets["train"] = NpyDenseDataset(split_dir, self._tasks, self.modality_of, train_idx, self.train_transform())
            self.datasets["val"] = NpyDenseDataset(split_dir, self._tasks, self.modality_of, val_idx)
        if stage in (None, "test") and "test" not in self.datasets:
            count = count_samples(root / self.test_folder, modalities, self.layout_hint)
            self.datasets["test"] = NpyDenseDataset(root / self.test_folder, self._tasks, self.modality_of, range(count))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        pin = (
            self.pin_memory
            if self.pin_memory is not None
            else bool(self.trainer and self.trainer.accelerator.__class__.__name__ == "CUDAAccelerator")
        )
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            pin_memory=pin,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
