"""Write a synthetic-scenes release to disk in the NYUv2 (MTAN) layout, atomically and once.

``ROOT/train/{image,label,depth,normal,edges,boundary,texture,pattern}/{i}.npy`` holds the training images (the validation
images are held out of it by the datamodule, exactly as for NYUv2) and ``ROOT/val/...`` holds
the test images, mirroring the release whose "val" folder is the official test set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mtlbench.datamodules.synthetic.render import CLASS_NAMES, render_scene

GENERATOR_VERSION = 2  # 2: the edges, boundary, texture and pattern maps (the other files as in 1)
MODALITIES = ("image", "label", "depth", "normal", "edges", "boundary", "texture", "pattern")
INDEX_MAPS = ("edges", "boundary", "texture", "pattern")  # stored as int8 class indices
_SPLIT_IDS = {"train": 0, "val": 1}


def release_name(seed: int, num_train: int, num_test: int, height: int, width: int) -> str:
    """Folder name that changes whenever anything that changes the files changes."""
    key = json.dumps([GENERATOR_VERSION, seed, num_train, num_test, height, width])
    return f"scenes-{height}x{width}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def write_split(split_dir: Path, split: str, seed: int, count: int, height: int, width: int) -> None:
    """Render ``count`` scenes of one split; scene i depends only on (seed, split, i)."""
    for modality in MODALITIES:
        (split_dir / modality).mkdir(parents=True)
    for index in range(count):
        frame = render_scene([seed, _SPLIT_IDS[split], index], height, width)
        np.save(split_dir / "image" / f"{index}.npy", frame.image.astype(np.float16))
        np.save(split_dir / "label" / f"{index}.npy", frame.label.astype(np.int8))
        np.save(split_dir / "depth" / f"{index}.npy", frame.depth.astype(np.float32))
        np.save(split_dir / "normal" / f"{index}.npy", frame.normal.astype(np.float16))
        for name in INDEX_MAPS:
            np.save(split_dir / name / f"{index}.npy", getattr(frame, name).astype(np.int8))


def ensure_release(cache_dir: Path, seed: int, num_train: int, num_test: int, height: int, width: int) -> Path:
    """Path of the release, generating it first if the cache does not hold a complete one.

    Generation happens in a temporary sibling folder that is renamed into place at the end,
    so an interrupted run never leaves a half-written release that looks complete.
    """
    root = Path(cache_dir).expanduser() / release_name(seed, num_train, num_test, height, width)
    if (root / "meta.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        write_split(staging / "train", "train", seed, num_train, height, width)
        write_split(staging / "val", "val", seed, num_test, height, width)
        meta = {
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "height": height,
            "width": width,
            "num_train_folder": num_train,
            "num_test": num_test,
            "classes": list(CLASS_NAMES),
            "depth": "z-depth in metres, 0 = invalid",
            "normal": "camera frame (x right, y down, z forward), unit, all-zero = invalid",
            "label": "class index, -1 = ignore (object boundaries)",
            "edges": "1 = occlusion edge (depth jumps by > 5 %), else 0",
            "boundary": "1 = class boundary, else 0",
            "texture": "1 = light half of the surface's procedural pattern, else 0",
            "pattern": "index of the surface's procedural pattern (0..4)",
            "seconds_to_generate": round(time.perf_counter() - start, 2),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(staging, root)
        except OSError:  # another process finished the same release first
            if not (root / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
