"""Controlled damage to a dataset, for scaling studies: noisy labels and missing input.

Both are properties of the dataset, not of a run: sample ``i`` of a split is damaged the same
way in every epoch and under every run seed (the generator is seeded by the split and the
index only), so a sweep over seeds measures training noise on one fixed damaged dataset.

- :class:`LabelNoise` corrupts one task's training targets (never validation or test: the
  model is judged on clean targets; a run that does not train the task is not affected).
  Segmentation: each annotated pixel is replaced, with probability ``level``, by a class drawn
  uniformly (symmetric label noise; ignored pixels stay ignored). Depth: each valid value is
  multiplied by ``exp(level * N(0, 1))`` (log-normal noise, so depth stays positive).
  Normals: ``level * N(0, 1)`` is added to each component of a valid normal, which is then
  renormalised.
- :class:`MissingInput` removes input information from every split (the misspecified setting:
  what is missing at training is missing at test): ``channels`` zeroes the last
  ``round(fraction * 3)`` colour channels of every image; ``patches`` zeroes a random
  ``fraction`` of the cells of a ``patch x patch`` grid in each image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mtlbench.datamodules.errors import DatasetError
from mtlbench.tasks import TaskSpec

MissingMode = Literal["patches", "channels"]
MISSING_MODES: tuple[str, ...] = ("patches", "channels")
_SPLIT_STREAMS = {"train": 11, "val": 12, "test": 13}
_LABEL_STREAM, _INPUT_STREAM = 1, 2


def _generator(stream: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([stream, _SPLIT_STREAMS[split], index])


@dataclass(frozen=True)
class LabelNoise:
    """Noise of strength ``level`` on the targets of ``task`` (see the module docstring).

    Example:
        >>> from mtlbench.tasks import segmentation_task
        >>> noise = LabelNoise(segmentation_task(4), level=1.0)
        >>> labels = np.zeros((8, 8), dtype=np.float32)
        >>> bool((noise(labels, "train", 0) != 0).any()), bool((noise(labels, "train", 0) == noise(labels, "train", 0)).all())
        (True, True)
    """

    task: TaskSpec
    level: float

    def __post_init__(self) -> None:
        limit = self.task.kind.noise_limit
        if not 0.0 <= self.level <= limit:
            raise DatasetError(f"label_noise={self.level} for task '{self.task.name}' must be in [0, {limit}]")

    def __call__(self, target: np.ndarray, split: str, index: int) -> np.ndarray:
        return self.task.kind.add_noise(self.task, target, self.level, _generator(_LABEL_STREAM, split, index))


@dataclass(frozen=True)
class MissingInput:
    """A ``fraction`` of each image removed, by colour channel or by patch (module docstring).

    Example:
        >>> image = np.ones((16, 16, 3), dtype=np.float32)
        >>> float(MissingInput("patches", 0.5, patch=4)(image, "test", 3).mean())
        0.5
        >>> float(MissingInput("channels", 1 / 3)(image, "train", 0)[..., 2].max())
        0.0
    """

    mode: MissingMode
    fraction: float
    patch: int = 8

    def __post_init__(self) -> None:
        if self.mode not in MISSING_MODES:
            raise DatasetError(f"missing_mode '{self.mode}' is unknown; choose one of {', '.join(MISSING_MODES)}")
        if not 0.0 <= self.fraction < 1.0:
            raise DatasetError(f"missing_input={self.fraction} must be in [0, 1): some input must remain")
        if self.patch < 1:
            raise DatasetError(f"missing_patch={self.patch} must be >= 1 pixel")

    def __call__(self, image: np.ndarray, split: str, index: int) -> np.ndarray:
        image = image.copy()
        if self.mode == "channels":
            removed = round(self.fraction * image.shape[-1])
            if removed:
                image[..., image.shape[-1] - removed :] = 0.0
            return image
        rows, cols = -(-image.shape[0] // self.patch), -(-image.shape[1] // self.patch)
        cells = _generator(_INPUT_STREAM, split, index).permutation(rows * cols)[: round(self.fraction * rows * cols)]
        for cell in cells:
            row, col = divmod(int(cell), cols)
            image[row * self.patch : (row + 1) * self.patch, col * self.patch : (col + 1) * self.patch] = 0.0
        return image
