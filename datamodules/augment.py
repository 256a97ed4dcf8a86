"""Joint augmentation of an image and its dense targets, with albumentations.

The transform of the Nash-MTL / CAGrad / FAMO line (PROTOCOL.md): a random scale-crop (crop a
1/s window, s in {1.0, 1.2, 1.5}, resize back to the full size) and a horizontal flip, plus an
optional photometric jitter on the image alone. The geometry has physical consequences that
albumentations cannot know, applied here from the parameters it reports:

- zooming in by s brings the scene closer: metric depth is divided by s, inverse depth
  (Cityscapes' disparity-like maps) multiplied by s;
- mirroring the image mirrors the surface: the normal's x component changes sign.

Labels, depth and normals are resized with nearest-neighbour interpolation, so ignore labels,
invalid depth (0) and invalid normals (all zero) stay exactly where they were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import albumentations as A
import cv2
import numpy as np
import torch

from mtlbench.tasks import TaskKind

DepthKind = Literal["metric", "inverse"]


@dataclass(frozen=True)
class Applied:
    """What the last call did: the zoom factor, the crop window (x_min, y_min, x_max, y_max) in
    input pixels, and whether the sample was mirrored."""

    scale: float
    crop: tuple[int, int, int, int]
    flipped: bool


def _applied_children(replay: dict) -> list[dict]:
    return [child for child in replay.get("transforms", []) if child.get("applied")]


class JointAugment:
    """Random scale-crop + horizontal flip (+ optional colour jitter) for one release.

    Args:
        height, width: the release's image size (outputs keep it).
        depth_kind: ``"metric"`` (NYUv2, synthetic: divide by the scale) or ``"inverse"``
            (Cityscapes: multiply by it).
        target_kinds: target name -> its task's kind, which says how the zoom and the flip change
            the target's values (:meth:`mtlbench.tasks.TaskKind.augment`).
        scales: zoom factors drawn uniformly.
        flip_probability: chance of a horizontal flip.
        color_jitter: strength of brightness / contrast / saturation jitter on the image (0 = off).

    Randomness comes from albumentations' generators, seeded for every sample by the seed the
    sampler gives it (:class:`~mtlbench.datamodules.sampling.SampleKey`: a function of the run seed, the
    epoch and the sample), so a sample is augmented alike with any number of loader workers,
    persistent or not, and in a resumed run. Called without a seed, it draws one from torch's
    generator (of the loader worker).
    """

    def __init__(
        self,
        height: int,
        width: int,
        depth_kind: DepthKind,
        target_kinds: Mapping[str, TaskKind],
        scales: Sequence[float] = (1.0, 1.2, 1.5),
        flip_probability: float = 0.5,
        color_jitter: float = 0.0,
    ) -> None:
        if any(s < 1.0 for s in scales):
            raise ValueError(f"scales must be >= 1 (a crop of 1/s of the image), got {list(scales)}")
        self.scales = tuple(float(s) for s in scales)
        self.depth_kind = depth_kind
        self.target_kinds = dict(target_kinds)
        branches = [
            A.Compose(
                [
                    A.RandomCrop(max(1, round(height / s)), max(1, round(width / s))),
                    A.Resize(height, width, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST),
                ]
            )
            for s in self.scales
        ]
        steps: list[A.BasicTransform] = [A.OneOf(branches, p=1.0), A.HorizontalFlip(p=flip_probability)]
        if color_jitter > 0:
            steps.append(A.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter, hue=0.0, p=1.0))
        self.pipeline = A.ReplayCompose(steps, additional_targets={name: "mask" for name in self.target_kinds})

    def _seed(self, seed: int | None) -> None:
        self.pipeline.set_random_seed(int(torch.randint(0, 2**32 - 1, ()).item()) if seed is None else seed)

    def augment(
        self, image: np.ndarray, targets: dict[str, np.ndarray], seed: int | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray], Applied]:
        """Transform one sample with draws seeded by ``seed`` and report what was applied."""
        self._seed(seed)
        out = self.pipeline(image=image, **targets)
        applied = self._read(out["replay"])
        result = {}
        for name in targets:
            value = out[name]
            result[name] = self.target_kinds[name].augment(value, applied.scale, applied.flipped, self.depth_kind)
        return out["image"], result, applied

    def __call__(
        self, image: np.ndarray, targets: dict[str, np.ndarray], seed: int | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        image, targets, _ = self.augment(image, targets, seed)
        return image, targets

    def _read(self, replay: dict) -> Applied:
        one_of, flip = replay["transforms"][0], replay["transforms"][1]
        branch_index = next(i for i, branch in enumerate(one_of["transforms"]) if branch.get("applied"))
        crop = _applied_children(one_of["transforms"][branch_index])[0]["params"]["crop_coords"]
        return Applied(scale=self.scales[branch_index], crop=tuple(int(c) for c in crop), flipped=bool(flip.get("applied")))
