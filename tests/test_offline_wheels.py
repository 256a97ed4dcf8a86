"""scripts/offline_wheels.sh names every package mtlbench needs beyond a stock PyTorch GPU stack,
so that a node without a package index (the lent GPU machines, air-gapped clusters) can run it."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
# what such images hold (the lent machines' list, /opt/torch/.venv), and what the script leaves out on purpose
STOCK = {
    "torch", "torchvision", "pytorch-lightning", "lightning-utilities", "timm", "torchmetrics", "numpy", "scipy",
    "matplotlib", "opencv-python-headless", "pyyaml", "tqdm", "requests", "typing-extensions", "packaging",
    "joblib", "cloudpickle", "huggingface-hub", "safetensors", "fsspec", "aiohttp", "pillow", "setuptools", "jinja2", "markupsafe",
}  # fmt: skip
LEFT_OUT = {"wandb", "scs"}  # W&B is optional on such a node; SCS is a cvxpy solver Nash-MTL does not use


def needed(name: str, extras: frozenset[str] = frozenset(), seen: set[str] | None = None) -> set[str]:
    """``name`` and what it requires at run time (its ``extras`` included), minus the stock stack."""
    seen = set() if seen is None else seen
    key = canonicalize_name(name)
    if key in seen or key in STOCK or key in LEFT_OUT:
        return seen
    seen.add(key)
    try:
        requires = distribution(name).requires or []
    except PackageNotFoundError:
        return seen
    for line in requires:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras or {""}):
            needed(requirement.name, frozenset(requirement.extras), seen)
    return seen


def test_the_offline_wheels_cover_every_runtime_dependency():
    listed = {canonicalize_name(name) for name in re.findall(r"([A-Za-z0-9_.-]+)==", (REPO / "scripts" / "offline_wheels.sh").read_text())}
    required = needed("mtlbench") - {"mtlbench"}
    assert required <= listed, f"add to scripts/offline_wheels.sh: {sorted(required - listed)}"
    assert {"jsonargparse", "albumentations", "torchjd", "cvxpy", "ecos", "quadprog", "submitit"} <= required  # the walk reached them
