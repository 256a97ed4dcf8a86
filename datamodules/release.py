"""What a one-.npy-per-sample release must look like, and the checks that say where it does not.

``check_release`` scans a whole release and returns every problem (``mtlbench data check``);
``spot_check`` is the cheap version a datamodule runs on setup (folders, counts, and the first
and last sample of each split in full).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtlbench.datamodules.errors import DatasetError
from mtlbench.datamodules.npy_file import NpyError, open_npy

NORMAL_TOLERANCE = 1e-2  # |norm - 1| allowed for stored unit normals (float16 storage included)


@dataclass(frozen=True)
class ModalitySpec:
    """One folder of a release: its kind decides the checks.

    kind: ``"image"`` (HxWx3 float in [0, 1]), ``"label"`` (HxW integer-valued in [-1, C-1]),
    ``"depth"`` (HxW or HxWx1, >= 0, 0 = invalid), ``"normal"`` (HxWx3, unit or all-zero).
    """

    folder: str
    kind: str
    num_classes: int = 0


@dataclass(frozen=True)
class ReleaseSpec:
    """A release layout: name, split folders, modality folders and the hint shown in errors."""

    name: str
    modalities: tuple[ModalitySpec, ...]
    splits: tuple[str, ...] = ("train", "val")
    layout_hint: str = field(default="")

    def modality(self, folder: str) -> ModalitySpec:
        return next(m for m in self.modalities if m.folder == folder)


def sample_problems(path: Path, spec: ModalitySpec, size: tuple[int, int] | None) -> list[str]:
    """Problems of one file (empty when it is fine); ``size`` is the expected HxW if known."""
    try:
        array = open_npy(path)
    except NpyError as error:
        return [f"{path}: unreadable .npy ({error})"]
    problems = []
    shape = array.shape
    hw = tuple(shape[:2])
    expected_ndim = {"image": (3,), "label": (2, 3), "depth": (2, 3), "normal": (3,)}[spec.kind]
    channels = {"image": 3, "label": 1, "depth": 1, "normal": 3}[spec.kind]
    if array.ndim not in expected_ndim or (array.ndim == 3 and shape[2] != channels):
        want = "HxWx3" if channels == 3 else "HxW or HxWx1"
        return [f"{path}: shape {shape}, expected {want} for {spec.kind}"]
    if size is not None and hw != size:
        problems.append(f"{path}: size {hw[0]}x{hw[1]} differs from the image's {size[0]}x{size[1]}")
    if array.dtype.kind not in "fiu":
        return [*problems, f"{path}: dtype {array.dtype}, expected a numeric dtype"]
    values = np.asarray(array, dtype=np.float64)
    if not np.isfinite(values).all():
        problems.append(f"{path}: contains NaN or infinite values")
        return problems
    if spec.kind == "image" and (values.min() < 0 or values.max() > 1):
        problems.append(f"{path}: image values in [{values.min():.3g}, {values.max():.3g}], expected [0, 1]")
    elif spec.kind == "label":
        if not np.array_equal(values, np.round(values)):
            problems.append(f"{path}: labels are not integer-valued")
        low, high = values.min(), values.max()
        if low < -1 or high > spec.num_classes - 1:
            problems.append(f"{path}: labels in [{low:g}, {high:g}], expected -1 (ignore) to {spec.num_classes - 1}")
    elif spec.kind == "depth" and values.min() < 0:
        problems.append(f"{path}: negative depth ({values.min():.3g}); invalid pixels must be 0")
    elif spec.kind == "normal":
        norms = np.linalg.norm(values, axis=-1)
        bad = (norms > 0) & (np.abs(norms - 1) > NORMAL_TOLERANCE)
        if bad.any():
            span = f"{norms[bad].min():.3g}..{norms[bad].max():.3g}"
            problems.append(f"{path}: {int(bad.sum())} normals are neither unit length nor all-zero (norm {span})")
    return problems


def _count(split_dir: Path, spec: ReleaseSpec, folders: Sequence[str]) -> tuple[int, list[str]]:
    problems, counts = [], {}
    for folder in folders:
        directory = split_dir / folder
        if not directory.is_dir():
            problems.append(f"missing modality folder {directory}; expected layout: {spec.layout_hint}")
            continue
        names = {p.name for p in directory.glob("*.npy")}
        counts[folder] = len(names)
        expected = {f"{i}.npy" for i in range(len(names))}
        if names != expected:
            odd = sorted(names - expected)[:3]
            problems.append(f"{directory}: files must be named 0.npy..{len(names) - 1}.npy, found {odd}")
    if len(set(counts.values())) > 1:
        problems.append(f"sample counts differ between modalities in {split_dir}: {counts}; every modality needs the same files")
    if counts and max(counts.values()) == 0:
        problems.append(f"no .npy files in {split_dir}; expected layout: {spec.layout_hint}")
    return (min(counts.values()) if counts else 0), problems


def _structure(root: Path, spec: ReleaseSpec, splits: Sequence[str], folders: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    if not root.is_dir():
        return {}, [f"dataset root {root} does not exist; expected layout: {spec.layout_hint}"]
    counts, problems = {}, []
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            problems.append(f"missing split folder {split_dir}; expected layout: {spec.layout_hint}")
            continue
        counts[split], found = _count(split_dir, spec, folders)
        problems += found
    return counts, problems


def _image_size(path: Path) -> tuple[int, int] | None:
    """HxW of an image file, or ``None`` when it cannot be read (its own check says why)."""
    try:
        image = open_npy(path)
    except NpyError:
        return None
    return tuple(image.shape[:2]) if image.ndim >= 2 else None


def _check_samples(root: Path, spec: ReleaseSpec, split: str, indices: Iterable[int], folders: Sequence[str]) -> list[str]:
    problems = []
    for index in indices:
        size = _image_size(root / split / "image" / f"{index}.npy") if "image" in folders else None
        for folder in folders:
            problems += sample_problems(root / split / folder / f"{index}.npy", spec.modality(folder), size)
    return problems


def check_release(root: Path, spec: ReleaseSpec, folders: Sequence[str] | None = None) -> list[str]:
    """Every problem of a release: structure, then every file of every split."""
    folders = list(folders or [m.folder for m in spec.modalities])
    counts, problems = _structure(Path(root), spec, spec.splits, folders)
    if problems:
        return problems
    for split, count in counts.items():
        problems += _check_samples(Path(root), spec, split, range(count), folders)
    return problems


def spot_check(root: Path, spec: ReleaseSpec, splits: Sequence[str], folders: Sequence[str]) -> dict[str, int]:
    """Cheap setup-time check; raises the first problem as a one-line :class:`DatasetError`.
    Returns the number of samples of each split."""
    counts, problems = _structure(Path(root), spec, splits, folders)
    for split, count in counts.items():
        if not problems and count:
            problems += _check_samples(Path(root), spec, split, sorted({0, count - 1}), folders)
    if problems:
        more = f" (and {len(problems) - 1} more: run `mtlbench data check {root}`)" if len(problems) > 1 else ""
        raise DatasetError(problems[0] + more)
    return counts
