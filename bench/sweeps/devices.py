"""GPUs for the runs of a local sweep: ``--jobs N --gpus-per-run K``.

Each of the N runs going at once gets K devices of its own through ``CUDA_VISIBLE_DEVICES``
(a run sees them as ``cuda:0`` ... ``cuda:K-1``), and runs DDP over them when K > 1; a run that
ends hands its devices to the next. Without this, N runs of a GPU config all take GPU 0, and a
``devices: auto`` trainer makes each of them a DDP job over every GPU of the node.
"""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Iterator, Sequence

Slot = tuple[str, ...]


def visible_devices() -> list[str]:
    """The GPUs a sweep may hand out: the entries of ``CUDA_VISIBLE_DEVICES`` where it is set
    (SLURM and most schedulers set it; CUDA stops at the first invalid entry, such as ``-1``),
    else every GPU torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        import torch

        return [str(index) for index in range(torch.cuda.device_count())]
    devices = []
    for entry in (part.strip() for part in listed.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def gpus_per_run(requested: int | None, jobs: int, devices: Sequence[str]) -> int:
    """K for this sweep: as requested, or by default one GPU per run when more than one run goes at
    once on a machine with GPUs (else none: the runs' own trainer config decides, as on CPUs)."""
    if requested is not None:
        if requested < 0:
            raise ValueError(f"--gpus-per-run takes 0 (no GPUs assigned) or more, got {requested}")
        return requested
    return 1 if jobs > 1 and devices else 0


def slots(jobs: int, per_run: int, devices: Sequence[str]) -> list[Slot]:
    """``jobs`` disjoint groups of ``per_run`` devices; a one-line ValueError when there are too few."""
    needed = jobs * per_run
    if needed > len(devices):
        seen = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f"CUDA_VISIBLE_DEVICES={seen}" if seen is not None else "as torch counts them"
        raise ValueError(
            f"--jobs {jobs} x --gpus-per-run {per_run} needs {needed} GPUs, {len(devices)} visible ({where}); "
            "lower --jobs or --gpus-per-run (--gpus-per-run 0 assigns none)"
        )
    return [tuple(devices[index * per_run : (index + 1) * per_run]) for index in range(jobs)]


def run_arguments(slot: Slot) -> list[str]:
    """The ``mtlbench fit`` arguments of a run on ``slot``: all its devices, DDP across several
    (none for a run given no devices)."""
    if not slot:
        return []
    return [f"--trainer.devices={len(slot)}", *(["--trainer.strategy=ddp"] if len(slot) > 1 else [])]


class DevicePool:
    """The slots of a sweep, handed to one run at a time each (thread-safe)."""

    def __init__(self, free: Sequence[Slot]) -> None:
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in free:
            self._free.put(slot)

    @contextlib.contextmanager
    def take(self) -> Iterator[Slot]:
        slot = self._free.get()
        try:
            yield slot
        finally:
            self._free.put(slot)
