"""Peak memory of one training step, per method, in a process that measures many methods.

On CUDA: the caching allocator's peak allocation, its counter reset before the step. On CPU
torch keeps no allocator statistics, and a process's resident high-water mark would give every
method of a run the largest one's figure, so :class:`LiveTensorBytes` follows every tensor
storage the step's operations create (forward, backward, ``autograd.grad``, the aggregator,
the optimizer) until it is freed: the peak is what an allocator without a cache would hold,
on top of the parameters, buffers and optimizer state the step starts with.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorBytes(TorchDispatchMode):
    """Bytes of tensor storage created inside the mode and still alive: ``live`` now, ``peak`` ever.

    Storages registered with :meth:`known` beforehand (the model's, the optimizer's) are not counted.

    Example:
        >>> with LiveTensorBytes() as tracker:
        ...     x = torch.zeros(1024)  # 4 KiB
        ...     del x
        ...     y = torch.zeros(256)  # 1 KiB
        >>> tracker.peak, tracker.live
        (4096, 1024)
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: dict[int, weakref.ref] = {}

    def known(self, tensors: Iterable[torch.Tensor]) -> None:
        for tensor in tensors:
            self._watch(tensor.untyped_storage(), count=False)

    def _watch(self, storage: torch.UntypedStorage, count: bool) -> None:
        key = storage._cdata
        entry = self._seen.get(key)
        if entry is not None and entry() is not None:
            return
        size = storage.nbytes() if count else 0

        def freed(_ref, key=key, size=size) -> None:
            self._seen.pop(key, None)
            self.live -= size

        self._seen[key] = weakref.ref(storage, freed)
        self.live += size
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.device.type == "cpu":
                self._watch(leaf.untyped_storage(), count=True)
        return out


def _state_tensors(module: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = [*module.parameters(), *module.buffers()]
    tensors += [value for state in optimizer.state.values() for value in state.values() if isinstance(value, torch.Tensor)]
    return tensors


def step_peak_mb(step: Callable[[], object], module: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> float:
    """Peak megabytes held while ``step()`` runs, the model and the optimizer state included."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    state = _state_tensors(module, optimizer)
    resident = sum({t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in state}.values())
    optimizer.zero_grad(set_to_none=True)  # the step starts without gradients
    with LiveTensorBytes() as tracker:
        tracker.known(state)
        step()
    return (resident + tracker.peak) / 2**20
