"""Which samples each process reads, in which order, and what each sample draws.

Exact multi-process training, exact evaluation and exact resumes rest on three promises:

- **The training order is a function of (run seed, epoch).** Every process shuffles the whole
  training set with the same generator and takes every W-th sample (torch's
  ``DistributedSampler``), dropping the tail of the permutation so that no sample is read
  twice. The W shards of global batch ``b`` are then positions ``[bG, (b+1)G)`` of the
  permutation, with ``G`` = W x the per-process batch size: exactly the batches of one process
  with batch size ``G``, whatever W.
- **A sample's random draws are a function of (run seed, epoch, sample index).** The sampler
  yields :class:`SampleKey`\\ s that carry that seed to whichever loader worker reads the
  sample, so the number of workers, persistent workers and resumes change nothing.
- **Evaluation counts every sample exactly once.** Every process must run the same number of
  evaluation steps (a collective waits for all of them), so the split is padded to a multiple
  of W as torch's ``DistributedSampler`` pads it, and the padding keys say so: the dataset
  blanks their targets to the ignore values, which every metric and loss skips. (A sampler
  that does not pad would leave processes with unequal step counts, and a process with no
  sample at all when the split is smaller than W.)

:class:`ResumableLoader` remembers how many batches of its epoch it has handed out; Lightning
saves that with every checkpoint, and a run resumed from a checkpoint taken in the middle of an
epoch continues with the next batch of the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler

from mtlbench.datamodules.errors import DatasetError


class SampleKey(NamedTuple):
    """What a sampler hands the dataset: the sample's position in the dataset, the seed of its
    random draws (``None``: draw from the worker's generator), and whether it only pads an
    evaluation split (its targets are then blanked)."""

    index: int
    seed: int | None = None
    padding: bool = False


def sample_seed(run_seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index``'s draws in ``epoch`` of a run seeded ``run_seed``.

    Example:
        >>> sample_seed(0, 1, 5) == sample_seed(0, 1, 5), sample_seed(0, 1, 5) != sample_seed(0, 2, 5)
        (True, True)
    """
    return int(np.random.SeedSequence([run_seed % 2**32, epoch, index]).generate_state(1)[0])


class TrainOrder(DistributedSampler):
    """This process's share of the training set in one epoch: a permutation drawn from
    ``seed + epoch`` (the same on every process), its tail dropped to a multiple of
    ``num_replicas``, every ``num_replicas``-th position from ``rank`` on.

    Example (two processes read, side by side, the first 6 samples of one process's order):
        >>> one = [key.index for key in TrainOrder(range(7), num_replicas=1, rank=0, seed=0)]
        >>> two = [[key.index for key in TrainOrder(range(7), num_replicas=2, rank=r, seed=0)] for r in (0, 1)]
        >>> [index for pair in zip(*two) for index in pair] == one[:6]
        True
    """

    def __init__(self, dataset: Any, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self._skip = 0

    def skip_next(self, samples: int) -> None:
        """Start the next iteration ``samples`` keys in (a resume in the middle of an epoch)."""
        self._skip = samples

    def __iter__(self) -> Iterator[SampleKey]:
        indices = list(super().__iter__())
        skip, self._skip = self._skip, 0
        return iter([SampleKey(index, sample_seed(self.seed, self.epoch, index)) for index in indices[skip:]])


class EvalOrder(DistributedSampler):
    """This process's share of an evaluation split, in order: positions ``rank``,
    ``rank + num_replicas``, ... of the split padded to a multiple of ``num_replicas`` (padding
    repeats the first samples, marked ``padding``), so every process runs the same number of
    steps and each sample is counted once.

    Example:
        >>> [[(k.index, k.padding) for k in EvalOrder(range(3), 2, r)] for r in (0, 1)]
        [[(0, False), (2, False)], [(1, False), (0, True)]]
    """

    def __init__(self, dataset: Any, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[SampleKey]:
        size = len(self.dataset)
        positions = range(self.rank, self.total_size, self.num_replicas)
        return iter([SampleKey(position % size, None, position >= size) for position in positions])


class ResumableLoader(DataLoader):
    """A training ``DataLoader`` over a :class:`TrainOrder` whose place in the epoch is saved in
    checkpoints (Lightning calls :meth:`state_dict` for every loader that has one) and restored
    on a resume, so a run killed after a checkpoint taken mid-epoch goes on with the batch that
    follows it. The loader's iterator is made at the first batch, after Lightning has set the
    epoch: its workers then prefetch from the right epoch's order."""

    _yielded = 0
    _epoch = 0
    _resume: tuple[int, int] | None = None  # (epoch, batches) of a restored checkpoint

    def __iter__(self) -> Iterator[Any]:
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        order = self.sampler  # a TrainOrder, unless Lightning put another in (overfit_batches)
        self._epoch, self._yielded = getattr(order, "epoch", 0), 0
        if self._resume is not None and self._resume[0] == self._epoch and isinstance(order, TrainOrder):
            self._yielded = self._resume[1]
            order.skip_next(self._yielded * self.batch_size)
        self._resume = None
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, batches = state.get("epoch"), state.get("batches")
        if type(epoch) is not int or type(batches) is not int or epoch < 0 or not 0 <= batches <= len(self):
            raise DatasetError(
                f"the checkpoint's training-loader state {state!r} is not an epoch and a count of at most {len(self)} batches; "
                "resume with the data settings of the run that wrote it"
            )
        self._resume = (epoch, batches) if batches < len(self) else None


def blank_targets(targets: dict[str, np.ndarray], ignore: dict[str, float]) -> dict[str, np.ndarray]:
    """Every target filled with its task's ignore value (a padding sample: no pixel counts).

    Example:
        >>> blank_targets({"depth": np.ones((1, 2))}, {"depth": 0.0})["depth"].tolist()
        [[0.0, 0.0]]
    """
    return {name: np.full_like(target, ignore[name]) for name, target in targets.items()}
