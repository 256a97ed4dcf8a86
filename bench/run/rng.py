"""Every random generator a run draws from, as checkpoint-safe data (tensors, lists, numbers).

Lightning does not save generator states in checkpoints. A resumed run needs them to draw the
same shuffling order, augmentations, dropout and data-loader worker seeds as the uninterrupted
run. Numpy's and Python's states are converted to plain lists so that the checkpoint loads with
``torch.load(weights_only=True)``: a checkpoint is data, never code.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def collect_rng_states() -> dict[str, Any]:
    """The states of torch's CPU and CUDA generators, numpy's global one and Python's.

    Example:
        >>> state = collect_rng_states()
        >>> first = (torch.rand(1), np.random.rand(), random.random())
        >>> set_rng_states(state)
        >>> (torch.rand(1), np.random.rand(), random.random()) == first
        True
    """
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "python": {"version": int(version), "state": list(python_state), "gauss": gauss},
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`collect_rng_states` returned."""
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy_state = states["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy_state["kind"], keys, numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gauss"]))
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
