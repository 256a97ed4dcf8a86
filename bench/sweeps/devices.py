"""GPUs for the runs of a local sweep: ``--jobs N --gpus-per-run K --runs-per-gpu R``.

Each of the N runs going at once gets K devices through ``CUDA_VISIBLE_DEVICES`` (a run sees
them as ``cuda:0`` ... ``cuda:K-1``), and runs DDP over them when K > 1; a run that ends hands
its devices to the next. Without this, N runs of a GPU config all take GPU 0, and a
``devices: auto`` trainer makes each of them a DDP job over every GPU of the node. With R > 1,
R runs share each group of K devices (for models that leave a GPU mostly idle), as far as the
runs' measured memory allows (:func:`check_memory`).
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


def slots(jobs: int, per_run: int, devices: Sequence[str], runs_per_gpu: int = 1) -> list[Slot]:
    """The devices of each of the ``jobs`` runs going at once: groups of ``per_run`` devices, each
    group shared by up to ``runs_per_gpu`` runs (runs spread over as many groups as they need,
    one run per group first); a one-line ValueError when there are too few."""
    groups = -(-jobs // runs_per_gpu)
    needed = groups * per_run
    if needed > len(devices):
        seen = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f"CUDA_VISIBLE_DEVICES={seen}" if seen is not None else "as torch counts them"
        sharing = f" / --runs-per-gpu {runs_per_gpu}" if runs_per_gpu > 1 else ""
        raise ValueError(
            f"--jobs {jobs} x --gpus-per-run {per_run}{sharing} needs {needed} GPUs, {len(devices)} visible ({where}); "
            "lower --jobs or --gpus-per-run, or raise --runs-per-gpu (--gpus-per-run 0 assigns none)"
        )
    return [tuple(devices[(index % groups) * per_run : (index % groups + 1) * per_run]) for index in range(jobs)]


CUDA_CONTEXT_MB = 600  # what each process's CUDA context takes beside its allocations (driver, kernels)
HEADROOM = 0.95  # of a device's memory: fragmentation, and the allocator's growth past a measured peak


def check_memory(runs_per_gpu: int, peak_reserved_mb: float, device_memory_mb: float, device: str) -> None:
    """A one-line ValueError unless ``runs_per_gpu`` runs fit on one device: each needs what a run
    of the sweep reserved at most (CUDA's caching allocator) plus its CUDA context, within
    :data:`HEADROOM` of ``device_memory_mb``."""
    per_run = peak_reserved_mb + CUDA_CONTEXT_MB
    fits = max(0, int(HEADROOM * device_memory_mb // per_run))
    if runs_per_gpu > fits:
        raise ValueError(
            f"--runs-per-gpu {runs_per_gpu}: a run of this sweep reserved {peak_reserved_mb:,.0f} MiB on {device} "
            f"({device_memory_mb:,.0f} MiB), {per_run:,.0f} MiB with its CUDA context; {runs_per_gpu} need "
            f"{runs_per_gpu * per_run:,.0f} MiB, more than {HEADROOM:.0%} of the device: use --runs-per-gpu {max(fits, 1)} or fewer"
        )


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
