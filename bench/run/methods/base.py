"""The two method families and their protocol.

- :class:`LossWeighting`: per-task losses ``[T]`` -> one scalar to differentiate.
- :class:`GradientAggregator`: per-task Jacobian ``[T, n]`` (rows = task gradients in the
  space of the shared parameters or of the shared features) and the detached losses ``[T]``
  -> one update direction ``[n]``.

Methods never call backward and never write ``.grad``: the training step computes what a
method needs, calls it and applies the result, in one place shared by every method. State that
must survive a checkpoint lives in parameters and buffers registered at construction, or in
named slots of tensors and numbers (``state_slots`` / ``state_values`` / ``load_state_values``)
that every method's ``get_extra_state`` writes in a versioned layout and ``set_extra_state``
checks before use (:mod:`mtlbench.bench.run.methods.state`): nothing is pickled. ``reset()`` restores the
state of a fresh run; ``str(method)`` is the short name used in tables.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from mtlbench.bench.run.methods.state import Slot, Value, pack_state, read_method_state

Space = Literal["parameters", "features"]
SPACES: tuple[str, ...] = ("parameters", "features")


class _Method(nn.Module):
    short_name: str = ""
    randomized: bool = False  # draws from torch's global generator at every call

    def __init__(self) -> None:
        super().__init__()
        self.num_tasks = 0

    def bind(self, num_tasks: int) -> None:
        """Size the method's state for ``num_tasks`` tasks (called once, before any checkpoint load)."""
        if num_tasks < 1:
            raise ValueError(f"{type(self).__name__} needs at least one task, got {num_tasks}")
        self.num_tasks = num_tasks
        self.reset()

    def reset(self) -> None:
        """Restore the state of a fresh run (stateless methods have nothing to do)."""

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the model's optimizer trains alongside the network (e.g. UW's log-variances)."""
        yield from self.parameters()

    def state_slots(self) -> dict[str, Slot]:
        """The state this method carries between steps outside its parameters and buffers."""
        return {}

    def state_values(self) -> dict[str, Value]:
        """The current values of ``state_slots`` (tensors, ints, floats or ``None``)."""
        return {}

    def load_state_values(self, values: dict[str, Value]) -> None:
        """Restore ``state_values`` (already checked against ``state_slots``)."""

    def get_extra_state(self) -> dict:
        return pack_state(self)

    def set_extra_state(self, state: dict) -> None:
        self.load_state_values(read_method_state(state, self))

    def after_step(self) -> None:
        """Called after every optimizer step (e.g. to renormalise learned weights)."""

    def on_epoch_end(self) -> None:
        """Called at the end of every training epoch (e.g. DWA's epoch averages)."""

    def __str__(self) -> str:
        return self.short_name or type(self).__name__


class LossWeighting(_Method, ABC):
    """Base of the loss weightings: ``forward(losses[T]) -> scalar``.

    Flags read by the training step:
        needs_grad_norms: ``forward`` also takes ``grad_norms[T]``, the norm of each task's
            gradient with respect to the last shared layer (GradNorm).
        needs_losses_after_step: after the optimizer step, the step recomputes the losses on
            the same batch and calls ``update(losses_after)`` (FAMO).
    """

    needs_grad_norms: bool = False
    needs_losses_after_step: bool = False

    @abstractmethod
    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """``losses``: shape ``[T]``, attached to the graph; returns a scalar."""

    def update(self, losses_after: torch.Tensor) -> None:
        """Called after the optimizer step when ``needs_losses_after_step``."""


class GradientAggregator(_Method, ABC):
    """Base of the gradient aggregators: ``forward(jacobian[T, n], losses[T]) -> update[n]``.

    Args:
        space: ``"parameters"`` aggregates the task gradients of the shared parameters
            (exact, one encoder backward per task); ``"features"`` aggregates the gradients of
            the shared representation and back-propagates the result once through the encoder
            (the cheap "MGDA-UB" variant of Sener & Koltun, NeurIPS 2018).
    """

    non_conflicting: bool = False  # claims <update, g_k> >= 0 for every task gradient g_k
    priority_ordered: bool = False  # treats the first task as primary (not permutation-invariant)

    def __init__(self, space: Space = "parameters") -> None:
        super().__init__()
        if space not in SPACES:
            raise ValueError(f"{type(self).__name__}: space must be one of {SPACES}, got '{space}'")
        self.space = space

    @abstractmethod
    def forward(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``jacobian``: ``[T, n]`` float32; ``losses``: ``[T]`` detached; returns ``[n]``."""

    @property
    def weighted(self) -> bool:
        """Whether the update is ``w @ J`` with task weights the method reports (:meth:`weights`);
        such a method can also reuse its weights between exact steps (``refresh_every``)."""
        return False

    def weights(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The task weights ``w`` of this step's update, ``forward(J) == w @ J``, in place of
        ``forward`` (one call per step: stateful methods advance). Only for ``weighted`` methods.
        Methods that solve the Gramian return float64 weights."""
        raise NotImplementedError(f"{self} does not combine the task gradients with weights")

    def weights_from_gramian(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor | None:
        """Task weights ``w`` such that ``forward(J) == w @ J``, computed from the Gramian
        ``J J^T`` alone (one call per step, like ``forward``: stateful methods advance), or
        ``None`` when the method is not of that form.

        Under DDP in feature space the Jacobian is split across ranks by samples, and the global
        Gramian is the sum of the local ones (a T x T all-reduce), so methods that answer here
        need no more communication than that; the others have the Jacobian gathered.
        """
        return None

    def extra_repr(self) -> str:
        return f"space='{self.space}'"
