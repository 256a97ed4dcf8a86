"""Adapters that put torchjd's aggregators and scalarizers behind our method protocol.

torchjd (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024) implements
most aggregators and several loss scalarizers; we wrap them instead of rewriting them. Their
parameters and the buffers they register at construction are saved by the state dict as usual.
What else they carry between steps (counters, moving averages created on the first call,
previous weights, an inner optimizer's moments) each stateful adapter names as slots of tensors
and numbers (:mod:`mtlbench.bench.run.methods.state`), read from and written back to the torchjd object's
attributes: nothing of it is pickled, and a checkpoint's values are checked before they are set.
Buffers a torchjd object creates on its first call are slots too (not state-dict entries), so a
fresh object and a used one have the same state-dict keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import torch
from torch import nn
from torchjd.aggregation import Aggregator, GramianWeightedAggregator, WeightedAggregator
from torchjd.scalarization import Scalarizer

from mtlbench.bench.run.methods.base import GradientAggregator, LossWeighting, Space
from mtlbench.bench.run.methods.gramian import gramian64

Part = TypeVar("Part", bound=nn.Module)


def _reset_inner(inner: nn.Module) -> None:
    reset = getattr(inner, "reset", None)
    if callable(reset):
        reset()


def _state_buffers_unsaved(inner: nn.Module) -> None:
    """Buffers registered empty (``None``) are state a torchjd object creates on its first call:
    the adapter saves them as slots, so the state dict leaves them out."""
    for module in inner.modules():
        for name, value in list(module._buffers.items()):
            if value is None:
                module.register_buffer(name, None, persistent=False)


def _hyper_repr(method: nn.Module) -> str:
    return ", ".join(f"{name}={getattr(method, name)!r}" for name in getattr(method, "hyper_names", ()))


class _WrapsTorchJD:
    """What both adapters share: the inner torchjd object's life cycle (its state slots are
    declared by the stateful adapters, from the torchjd attributes they hold)."""

    hyper_names: tuple[str, ...] = ()
    inner: nn.Module | None
    num_tasks: int

    def make_inner(self) -> nn.Module:
        raise NotImplementedError

    def bind(self, num_tasks: int) -> None:
        self.num_tasks = num_tasks
        self.inner = self.make_inner()
        _state_buffers_unsaved(self.inner)
        super().bind(num_tasks)  # type: ignore[misc]

    def reset(self) -> None:
        if self.inner is not None:
            _reset_inner(self.inner)

    def bound_inner(self) -> nn.Module:
        if self.inner is None:
            raise RuntimeError(f"{type(self).__name__}.bind(num_tasks) must be called before use")
        return self.inner

    def inner_part(self, kind: type[Part]) -> Part:
        """The part of the inner object of type ``kind`` (e.g. the weighting that holds its state)."""
        return next(part for part in self.bound_inner().modules() if isinstance(part, kind))


def gramian_factor(gramian: torch.Tensor) -> torch.Tensor:
    """A ``T x T`` matrix ``F`` with ``F F^T = gramian`` (from its eigendecomposition).

    Example:
        >>> g = torch.tensor([[4.0, 2.0], [2.0, 2.0]])
        >>> f = gramian_factor(g)
        >>> torch.allclose(f @ f.T, g, atol=1e-5)
        True
    """
    values, vectors = torch.linalg.eigh(gramian.double())
    return (vectors * values.clamp(min=0).sqrt()).to(gramian.dtype)


class TorchJDAggregator(_WrapsTorchJD, GradientAggregator):
    """A torchjd :class:`~torchjd.aggregation.Aggregator` as a :class:`GradientAggregator`.

    Subclasses build the torchjd object in ``make_inner()`` from their own hyperparameters, so
    ``repr`` lists them and configs set them as constructor arguments.

    Methods whose weights depend on ``J`` only through ``J J^T`` (torchjd's Gramian-weighted
    aggregators, and weighted ones marked ``gramian_determined``, which are given a ``T x T``
    factor of it) take one path whatever calls them: ``forward``, ``weights`` and
    ``weights_from_gramian`` all solve the float64 Gramian (:mod:`mtlbench.bench.run.methods.gramian`) in
    :meth:`solve`, which a method overrides to equilibrate or to finish torchjd's answer; the
    weights are float64 and ``forward`` returns ``w @ J`` in the Jacobian's dtype.
    """

    gramian_determined: bool = False  # a WeightedAggregator whose weights depend on J only through J J^T

    def __init__(self, space: Space = "parameters") -> None:
        super().__init__(space)
        self.inner: Aggregator | None = None

    def forward(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        if not bool(jacobian.any()):  # no gradient signal: some torchjd solvers divide by its norm
            return torch.zeros_like(jacobian[0])
        if self.from_gramian:  # the training step's path: weights from the float64 Gramian, then w @ J
            return self.weights_from_gramian(gramian64(jacobian), losses).to(jacobian.dtype) @ jacobian
        return self.bound_inner()(jacobian)

    @property
    def from_gramian(self) -> bool:
        """Whether the weights depend on ``J`` only through its Gramian (and are solved from it)."""
        inner = self.bound_inner()
        return isinstance(inner, GramianWeightedAggregator) or (isinstance(inner, WeightedAggregator) and self.gramian_determined)

    @property
    def weighted(self) -> bool:
        return isinstance(self.bound_inner(), WeightedAggregator)

    def weights(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        inner = self.bound_inner()
        if self.from_gramian:
            return self.weights_from_gramian(gramian64(jacobian), losses)
        if not isinstance(inner, WeightedAggregator):
            return super().weights(jacobian, losses)
        if not bool(jacobian.any()):  # as forward: no gradient signal, no update
            return jacobian.new_zeros(jacobian.shape[0])
        return inner.weighting(jacobian)

    def weights_from_gramian(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor | None:
        """The weights solved in float64 (:mod:`mtlbench.bench.run.methods.gramian`), or ``None`` when the
        method is not of the form ``J^T w(J J^T)``."""
        if not self.from_gramian:
            return None
        gramian = gramian.double()
        if not bool(gramian.any()):  # as forward: no gradient signal, no update
            return gramian.new_zeros(gramian.shape[0])
        return self.solve(gramian)

    def solve(self, gramian: torch.Tensor) -> torch.Tensor:
        """Task weights from a non-zero float64 Gramian: torchjd's weighting of it, or of a ``T x T``
        factor of it for weightings that take a matrix. Methods override this to equilibrate."""
        inner = self.bound_inner()
        if isinstance(inner, GramianWeightedAggregator):
            return inner.gramian_weighting(gramian)
        return inner.weighting(gramian_factor(gramian))

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def extra_repr(self) -> str:
        return ", ".join(part for part in (_hyper_repr(self), super().extra_repr()) if part)


class TorchJDScalarizer(_WrapsTorchJD, LossWeighting):
    """A torchjd :class:`~torchjd.scalarization.Scalarizer` as a :class:`LossWeighting`."""

    train_inner_parameters: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.inner: Scalarizer | None = None

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return self.bound_inner()(losses)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return self.parameters() if self.train_inner_parameters else iter(())

    def extra_repr(self) -> str:
        return _hyper_repr(self)
