"""Reader for the "one .npy per sample and modality" releases (MTAN's NYUv2 / Cityscapes layout).

Layout: ``ROOT/SPLIT/MODALITY/{i}.npy`` for i = 0..N-1, every modality holding the same N
indices. Arrays are memory-mapped and converted to float32 once per sample (labels become
int16 tensors at the end, after any augmentation: a quarter of int64's bytes through the
DataLoader's shared memory; the losses and metrics widen them).

A split whose float32 arrays fit in :data:`CACHE_LIMIT_BYTES` is read from disk once per
process and served from memory afterwards (a copy per use, so a transform that writes into
its arrays changes nothing kept): at the synthetic scenes' 32x32, reading, checking and mapping
four files per sample took a fifth of a reference run's time, every epoch again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mtlbench.datamodules.errors import DatasetError
from mtlbench.datamodules.npy_file import NpyError, open_npy
from mtlbench.datamodules.perturb import LabelNoise, MissingInput
from mtlbench.datamodules.sampling import SampleKey, blank_targets
from mtlbench.tasks import TaskSpec

Sample = tuple[torch.Tensor, dict[str, torch.Tensor]]
# (image, targets, seed of the sample's draws or None) -> (image, targets)
CACHE_LIMIT_BYTES = 256 * 2**20  # per split and process: the synthetic default's 400 samples hold 13 MiB

JointTransform = Callable[[np.ndarray, dict[str, np.ndarray], "int | None"], tuple[np.ndarray, dict[str, np.ndarray]]]


def load_float32(path: Path) -> np.ndarray:
    """One .npy as a float32 array (one copy out of the memory map); HxWx1 becomes HxW."""
    try:
        array = np.array(open_npy(path), dtype=np.float32)
    except NpyError as error:
        raise DatasetError(f"{path}: unreadable .npy ({error}); replace the file, and run `mtlbench data check` on the release") from None
    return array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array


def to_tensors(image: np.ndarray, targets: dict[str, np.ndarray], tasks: Sequence[TaskSpec]) -> Sample:
    """Numpy sample -> (image 3xHxW float32, {task: target}), each target in its kind's format
    (:meth:`mtlbench.tasks.TaskKind.target`: int16 HxW labels, float32 CxHxW otherwise)."""
    out = {task.name: task.kind.target(targets[task.name]) for task in tasks}
    # CHW views of HWC memory: batch collation copies them into contiguous NCHW anyway
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), out


class NpyDenseDataset(Dataset[Sample]):
    """Samples ``indices`` of one split folder; ``modality_of`` maps each task name to its folder.

    ``dataset[i]`` is ``(image 3xHxW float32, {task name: target})`` with segmentation targets
    int16 HxW and the others float32 CxHxW. ``split`` names the split for the damage of scaling
    studies (:mod:`mtlbench.datamodules.perturb`), applied before ``transform``: ``label_noise`` on one
    task's targets, ``missing_input`` on the image.

    ``i`` may be a :class:`~mtlbench.datamodules.sampling.SampleKey` (what mtlbench's samplers yield): its
    seed seeds the transform's draws, and a padding key's targets are blanked to the ignore
    values, so the sample enters no metric or loss.
    """

    def __init__(
        self,
        split_dir: Path,
        tasks: Sequence[TaskSpec],
        modality_of: dict[str, str],
        indices: Sequence[int],
        transform: JointTransform | None = None,
        split: str = "train",
        label_noise: LabelNoise | None = None,
        missing_input: MissingInput | None = None,
    ) -> None:
        self.split_dir = Path(split_dir)
        self.tasks = list(tasks)
        self.modality_of = modality_of
        self.indices = list(indices)
        self.transform = transform
        self.split = split
        self.label_noise = label_noise
        self.missing_input = missing_input
        self._cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._caching: bool | None = None  # decided at the first read

    def _arrays(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Sample ``index``'s image and targets as fresh float32 arrays, from memory where the
        split fits in :data:`CACHE_LIMIT_BYTES` (every sample of a release has one shape)."""
        kept = self._cache.get(index)
        if kept is None:
            image = load_float32(self.split_dir / "image" / f"{index}.npy")
            targets = {task.name: load_float32(self.split_dir / self.modality_of[task.name] / f"{index}.npy") for task in self.tasks}
            if self._caching is None:
                sample_bytes = image.nbytes + sum(target.nbytes for target in targets.values())
                self._caching = sample_bytes * len(self.indices) <= CACHE_LIMIT_BYTES
            if not self._caching:
                return image, targets
            self._cache[index] = kept = (image, targets)
        image, targets = kept
        return image.copy(), {name: target.copy() for name, target in targets.items()}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int | SampleKey) -> Sample:
        key = item if isinstance(item, SampleKey) else SampleKey(int(item))
        index = self.indices[key.index]
        image, targets = self._arrays(index)
        if self.missing_input is not None:
            image = self.missing_input(image, self.split, index)
        if self.label_noise is not None:
            noisy = self.label_noise.task.name
            targets[noisy] = self.label_noise(targets[noisy], self.split, index)
        if self.transform is not None:
            image, targets = self.transform(image, targets, key.seed)
        if key.padding:
            targets = blank_targets(targets, {task.name: task.ignore_value for task in self.tasks})
        return to_tensors(image, targets, self.tasks)
