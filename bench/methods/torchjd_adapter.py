"""Adapters that put torchjd's aggregators and scalarizers behind our method protocol.

torchjd (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024) implements
most aggregators and several loss scalarizers; we wrap them instead of rewriting them. Their
internal state (moving averages, previous weights, solver warm starts) is stored as one pickled
blob in ``get_extra_state`` so it survives a checkpoint whatever form torchjd keeps it in; it is
read back by an unpickler that accepts only the classes such state is made of.
Loading replaces the inner object before its parameters and buffers are loaded, so a stateful
inner object must not own parameters trained by the model's optimizer (FAMO trains its own).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator

import torch
from torch import nn
from torchjd._linalg._gramian import compute_gramian
from torchjd._mixins import Stateful
from torchjd.aggregation import Aggregator, GramianWeightedAggregator, WeightedAggregator
from torchjd.scalarization import Scalarizer

from bench.errors import CheckpointError
from bench.methods.base import GradientAggregator, LossWeighting, Space


def _reset_inner(inner: nn.Module) -> None:
    reset = getattr(inner, "reset", None)
    if callable(reset):
        reset()


def _state_blob(inner: nn.Module | None) -> torch.Tensor:
    """The pickled inner object as a uint8 tensor (loadable with ``weights_only=True``) when it
    carries state between steps, else an empty tensor."""
    if not (isinstance(inner, Stateful) or _has_stateful_child(inner)):
        return torch.zeros(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(pickle.dumps(inner)), dtype=torch.uint8).clone()


# What a state blob may name, and nothing else: torchjd's and cvxpy's classes (their objects are
# the state), plain containers, numpy arrays and torch tensors. A blob from someone else's
# checkpoint that names anything more (os.system, eval, getattr, ...) is refused, so loading a
# checkpoint never runs code of the checkpoint's choosing.
_BLOB_CLASS_PACKAGES = ("torchjd", "cvxpy")
_BLOB_GLOBALS = {
    ("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset", "slice", "complex", "float", "int", "bool", "str")
} | {
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("torch", "device"),
    ("torch", "Size"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch.optim.adam", "Adam"),
    ("torchjd._linalg._gramian", "compute_gramian"),
}


def _load_storage(data: bytes):
    """torch's own storage unpickling, restricted to tensors (it would otherwise load anything)."""
    return torch.load(io.BytesIO(data), weights_only=True)


class _BlobUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_storage
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (module, name) in _BLOB_GLOBALS:
            return super().find_class(module, name)
        if module.split(".")[0] in _BLOB_CLASS_PACKAGES:
            found = super().find_class(module, name)
            # classes, whose constructors build state objects, and the canonicalisation rules a
            # compiled cvxpy problem (Nash-MTL's warm start) keeps in its tables
            if isinstance(found, type) or (module.startswith("cvxpy.reductions.") and name.endswith(("_canon", "_canon_dispatch"))):
                return found
        raise pickle.UnpicklingError(f"{module}.{name}")


def _from_blob(state: torch.Tensor) -> nn.Module | None:
    if not state.numel():
        return None
    try:
        return _BlobUnpickler(io.BytesIO(state.cpu().numpy().tobytes())).load()
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError) as error:
        raise CheckpointError(
            f"a method's saved state names {error}, which a method state never holds; "
            "the checkpoint is corrupt or not safe to load: resume from one that mtlbench wrote"
        ) from None


def _has_stateful_child(inner: nn.Module | None) -> bool:
    return inner is not None and any(isinstance(child, Stateful) for child in inner.modules())


def _hyper_repr(method: nn.Module) -> str:
    return ", ".join(f"{name}={getattr(method, name)!r}" for name in getattr(method, "hyper_names", ()))


class _WrapsTorchJD:
    """What both adapters share: the inner torchjd object's life cycle and its checkpointed state.

    ``inner_carries_state()`` says whether the inner object's Python-side state must be saved;
    parameters and buffers it owns are saved by the state dict as usual.
    """

    hyper_names: tuple[str, ...] = ()
    inner: nn.Module | None
    num_tasks: int

    def make_inner(self) -> nn.Module:
        raise NotImplementedError

    def bind(self, num_tasks: int) -> None:
        self.num_tasks = num_tasks
        self.inner = self.make_inner()
        super().bind(num_tasks)  # type: ignore[misc]

    def reset(self) -> None:
        if self.inner is not None:
            _reset_inner(self.inner)

    def bound_inner(self) -> nn.Module:
        if self.inner is None:
            raise RuntimeError(f"{type(self).__name__}.bind(num_tasks) must be called before use")
        return self.inner

    def inner_carries_state(self) -> bool:
        return True

    def get_extra_state(self) -> torch.Tensor:
        return _state_blob(self.inner) if self.inner_carries_state() else torch.zeros(0, dtype=torch.uint8)

    def set_extra_state(self, state: torch.Tensor) -> None:
        loaded = _from_blob(state)
        if loaded is not None:
            self.inner = loaded


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

    ``weights`` answers for torchjd's weighted aggregators (its weighting, then ``w @ J``, is
    exactly what their forward computes). ``weights_from_gramian`` answers for torchjd's
    Gramian-weighted aggregators (their weighting reads only ``J J^T``) and for weighted
    aggregators whose weighting depends on the matrix only through its Gramian
    (``gramian_determined``): those are given a ``T x T`` factor of it.
    """

    gramian_determined: bool = False  # a WeightedAggregator whose weights depend on J only through J J^T

    def __init__(self, space: Space = "parameters") -> None:
        super().__init__(space)
        self.inner: Aggregator | None = None

    def forward(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        inner = self.bound_inner()
        if not bool(jacobian.any()):  # no gradient signal: some torchjd solvers divide by its norm
            return torch.zeros_like(jacobian[0])
        return inner(jacobian)

    @property
    def weighted(self) -> bool:
        return isinstance(self.bound_inner(), WeightedAggregator)

    def weights(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        inner = self.bound_inner()
        if isinstance(inner, GramianWeightedAggregator):  # what its weighting does: the weighting of J's Gramian
            return self.weights_from_gramian(compute_gramian(jacobian), losses)
        if not isinstance(inner, WeightedAggregator):
            return super().weights(jacobian, losses)
        if not bool(jacobian.any()):  # as forward: no gradient signal, no update
            return jacobian.new_zeros(jacobian.shape[0])
        return inner.weighting(jacobian)

    def weights_from_gramian(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor | None:
        inner = self.bound_inner()
        if isinstance(inner, GramianWeightedAggregator):
            weighting = inner.gramian_weighting
            stat = gramian
        elif isinstance(inner, WeightedAggregator) and self.gramian_determined:
            weighting = inner.weighting
            stat = gramian_factor(gramian)
        else:
            return None
        if not bool(gramian.any()):  # as forward: no gradient signal, no update
            return torch.zeros(gramian.shape[0], dtype=gramian.dtype, device=gramian.device)
        return weighting(stat)

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

    def inner_carries_state(self) -> bool:
        # UW / IMTL-L: their state is their parameters, trained by the model's optimizer and saved
        # by the state dict; replacing the inner object would orphan them from that optimizer.
        return not (self.train_inner_parameters and any(True for _ in self.parameters()))

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return self.parameters() if self.train_inner_parameters else iter(())

    def extra_repr(self) -> str:
        return _hyper_repr(self)
