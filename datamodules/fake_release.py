"""Write small releases in the exact NYUv2 / Cityscapes layouts, with the release's dtypes.

Used by the tests and the loader benchmark, so neither needs the real data. The content is
random but valid: images in [0, 1], labels in [-1, C-1], depth >= 0 with holes, unit normals
with holes; float64 as in the MTAN release.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _sample(rng: np.random.Generator, height: int, width: int, label_classes: Sequence[int], with_normal: bool) -> dict[str, np.ndarray]:
    holes = rng.random((height, width)) < 0.05
    depth = np.where(holes, 0.0, rng.uniform(0.5, 10.0, (height, width)))[..., None]
    sample = {"image": rng.random((height, width, 3)), "depth": depth}
    for classes in label_classes:
        sample[f"label_{classes}"] = rng.integers(-1, classes, (height, width)).astype(np.float64)
    if with_normal:
        normal = rng.normal(size=(height, width, 3))
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        sample["normal"] = np.where(holes[..., None], 0.0, normal)
    return sample


def write_release(
    root: Path,
    kind: str,
    num_train: int,
    num_test: int,
    height: int,
    width: int,
    seed: int = 0,
) -> Path:
    """Write ``root/{train,val}/...`` for ``kind`` = ``"nyuv2"`` or ``"cityscapes"``; returns root."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train), ("val", num_test)):
        for index in range(count):
            if kind == "nyuv2":
                sample = _sample(rng, height, width, [13], with_normal=True)
                sample["label"] = sample.pop("label_13")
            elif kind == "cityscapes":
                sample = _sample(rng, height, width, [7, 19], with_normal=False)
            else:
                raise ValueError(f"unknown release kind '{kind}'; use 'nyuv2' or 'cityscapes'")
            for modality, array in sample.items():
                folder = Path(root) / split / modality
                folder.mkdir(parents=True, exist_ok=True)
                np.save(folder / f"{index}.npy", array)
    return Path(root)
