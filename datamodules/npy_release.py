"""Reader for the "one .npy per sample and modality" releases (MTAN's NYUv2 / Cityscapes layout).

Layout: ``ROOT/SPLIT/MODALITY/{i}.npy`` for i = 0..N-1, every modality holding the same N
indices. Arrays are memory-mapped and converted to float32 / int64 tensors once per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.errors import DatasetError
from datamodules.tasks import TaskSpec

Sample = tuple[torch.Tensor, dict[str, torch.Tensor]]
JointTransform = Callable[[np.ndarray, dict[str, np.ndarray]], tuple[np.ndarray, dict[str, np.ndarray]]]


def count_samples(split_dir: Path, modalities: Sequence[str], layout_hint: str) -> int:
    """Number of samples in ``split_dir``, after checking that every modality folder exists
    and holds exactly the files ``0.npy .. N-1.npy``."""
    if not split_dir.is_dir():
        raise DatasetError(f"missing split folder {split_dir}; expected layout: {layout_hint}")
    counts = {}
    for modality in modalities:
        folder = split_dir / modality
        if not folder.is_dir():
            raise DatasetError(f"missing modality folder {folder}; expected layout: {layout_hint}")
        counts[modality] = sum(1 for _ in folder.glob("*.npy"))
    if len(set(counts.values())) != 1:
        raise DatasetError(
            f"sample counts differ between modalities in {split_dir}: {counts}; every modality needs the same files 0.npy..N-1.npy"
        )
    count = next(iter(counts.values()))
    if count == 0:
        raise DatasetError(f"no .npy files in {split_dir}; expected layout: {layout_hint}")
    last = split_dir / modalities[0] / f"{count - 1}.npy"
    if not last.is_file():
        raise DatasetError(
            f"{split_dir / modalities[0]} holds {count} files but not {last.name}; files must be named 0.npy..{count - 1}.npy"
        )
    return count


def _as_chw(array: np.ndarray) -> torch.Tensor:
    """HW or HWC array -> CHW float32 tensor (one copy out of the memory map)."""
    tensor = torch.from_numpy(np.array(array, dtype=np.float32))
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def to_tensors(image: np.ndarray, targets: dict[str, np.ndarray], tasks: Sequence[TaskSpec]) -> Sample:
    """Numpy sample -> (image CxHxW float32, {task: target}); segmentation targets are int64 HxW."""
    out = {}
    for task in tasks:
        target = targets[task.name]
        if task.kind == "segmentation":
            out[task.name] = torch.from_numpy(np.asarray(target).reshape(target.shape[:2]).astype(np.int64))
        else:
            out[task.name] = _as_chw(target)
    return _as_chw(image), out


class NpyDenseDataset(Dataset[Sample]):
    """Samples ``indices`` of one split folder; ``modality_of`` maps each task name to its folder.

    ``dataset[i]`` is ``(image 3xHxW float32, {task name: target})`` with segmentation targets
    int64 HxW and the others float32 CxHxW.
    """

    def __init__(
        self,
        split_dir: Path,
        tasks: Sequence[TaskSpec],
        modality_of: dict[str, str],
        indices: Sequence[int],
        transform: JointTransform | None = None,
    ) -> None:
        self.split_dir = Path(split_dir)
        self.tasks = list(tasks)
        self.modality_of = modality_of
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, modality: str, index: int) -> np.ndarray:
        return np.load(self.split_dir / modality / f"{index}.npy", mmap_mode="r")

    def __getitem__(self, item: int) -> Sample:
        index = self.indices[item]
        image = self._load("image", index)
        targets = {task.name: self._load(self.modality_of[task.name], index) for task in self.tasks}
        if self.transform is not None:
            image, targets = self.transform(image, targets)
        return to_tensors(image, targets, self.tasks)
