"""What the training step needs of the process group: exact means, sums and gathers, and
random draws that agree on every rank.

Every collective here is a no-op in a single process, so the one training step serves 1 or N
processes. Shards are equal in size (the datamodules' samplers, :mod:`mtlbench.datamodules.sampling`,
give every rank the same number of samples), so the global mean of a per-batch quantity is the
mean of the ranks' local means. The samplers deal a global batch's samples out in turn, as
torch's ``DistributedSampler`` does: rank ``r``'s ``j``-th sample is the batch's
``(j W + r)``-th (:func:`global_positions`); whatever depends on the order of the samples in a
batch puts them back in that order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

# Tensors are flattened into buckets of at most this many bytes before an all-reduce (DDP's own
# default bucket is 25 MiB): few collective calls, bounded extra memory.
BUCKET_BYTES = 25 * 2**20


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class Collective:
    """The process group as the training step sees it (the default group, or none)."""

    @property
    def world_size(self) -> int:
        return dist.get_world_size() if _active() else 1

    @property
    def rank(self) -> int:
        return dist.get_rank() if _active() else 0

    def mean_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Average ``tensors`` over ranks, in place, in flat buckets of one dtype and device."""
        if not _active():
            return
        groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for tensor in tensors:
            groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
        for members in groups.values():
            for bucket in _buckets(members):
                if len(bucket) == 1 and bucket[0].is_contiguous():  # a large tensor (the Jacobian): no copy
                    dist.all_reduce(bucket[0])
                    bucket[0].div_(self.world_size)
                    continue
                flat = torch.cat([tensor.reshape(-1) for tensor in bucket])
                dist.all_reduce(flat)
                flat /= self.world_size
                offset = 0
                for tensor in bucket:
                    tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
                    offset += tensor.numel()

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of ``tensor`` (a new tensor; the input is left alone)."""
        out = tensor.detach().clone()
        self.mean_([out])
        return out

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``tensor`` (a new tensor)."""
        out = tensor.detach().clone()
        if _active():
            dist.all_reduce(out)
        return out

    def gather(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's ``tensor`` concatenated along ``dim`` in rank order (equal shapes)."""
        if not _active():
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def gather_samples(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's samples (along ``dim``) in the order of the global batch, the order one
        process holds them in (:func:`global_positions`)."""
        if not _active():
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts, dim=dim + 1).flatten(dim, dim + 1)

    def own_samples(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """This rank's samples out of a tensor of the global batch's samples along ``dim``."""
        if not _active():
            return tensor
        shape = (*tensor.shape[:dim], -1, self.world_size, *tensor.shape[dim + 1 :])
        return tensor.reshape(shape).select(dim + 1, self.rank)

    def global_positions(self, local_size: int, device: torch.device | None = None) -> torch.Tensor:
        """Where this rank's ``local_size`` samples stand in the global batch."""
        return global_positions(local_size, self.rank, self.world_size, device)

    def broadcast_int(self, value: int, device: torch.device) -> int:
        """Rank 0's ``value`` on every rank (a tensor on ``device``, which NCCL needs on the GPU)."""
        if not _active():
            return value
        holder = torch.tensor([value], dtype=torch.int64, device=device)
        dist.broadcast(holder, src=0)
        return int(holder.item())

    def mean_grads_(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average the ``.grad`` of ``params`` over ranks (what DDP's reducer would do)."""
        self.mean_([param.grad for param in params if param.grad is not None])


def global_positions(local_size: int, rank: int, world_size: int, device: torch.device | None = None) -> torch.Tensor:
    """The positions in the global batch of rank ``rank``'s ``local_size`` samples: the samplers
    deal samples out in turn, so its ``j``-th is the ``(j W + r)``-th.

    Example:
        >>> global_positions(3, rank=1, world_size=2).tolist()
        [1, 3, 5]
    """
    return rank + world_size * torch.arange(local_size, device=device)


def _buckets(tensors: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for tensor in tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > BUCKET_BYTES:
            yield bucket
            bucket, size = [], 0
        bucket.append(tensor)
        size += nbytes
    if bucket:
        yield bucket


def step_seed(base_seed: int, step: int) -> int:
    """The seed of one training step's draws: a function of the run's seed and the step only,
    so every rank, a single-process run and a resumed run draw the same numbers."""
    return (base_seed * 1_000_003 + step * 7_919 + 1) % (2**63 - 1)


@contextlib.contextmanager
def step_rng(base_seed: int, step: int, device: torch.device) -> Iterator[None]:
    """Draws inside the block come from torch's generators seeded by :func:`step_seed`; the
    generators' state outside the block is left as it was.

    Example:
        >>> cpu = torch.device("cpu")
        >>> with step_rng(0, 5, cpu):
        ...     first = torch.rand(2)
        >>> with step_rng(0, 5, cpu):
        ...     again = torch.rand(2)
        >>> bool((first == again).all())
        True
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(step_seed(base_seed, step))
        yield
