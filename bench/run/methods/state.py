"""Method state in checkpoints: tensors and plain numbers under a versioned layout, checked
before anything of it is used.

A method that carries state between steps (moving averages, previous weights, step counters)
declares it as named slots (:class:`Slot`) and hands its values to ``get_extra_state`` as a
plain dict::

    {"layout": "mtlbench.method_state/1", "method": "NashMTL", "num_tasks": 3,
     "values": {"step": 12.0, "prvs_alpha": tensor([...]), ...}}

``torch.load(weights_only=True)`` reads that without running any code, and
:func:`read_method_state` checks it against the configured method (its name, the number of
tasks, every slot's type and shape) before the method sees a value. Nothing is unpickled: a
checkpoint is data. Layouts written before this one are read when they are plain data (an empty
state, DB-MTL's dict of tensors) and refused otherwise (the pickled state of mtlbench before
layout 1), with one line that says what the checkpoint holds and what the run expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from mtlbench.bench.run.errors import CheckpointError

LAYOUT = "mtlbench.method_state/1"
Value = torch.Tensor | int | float | None
_MISSING = object()  # a checkpoint without the method's entry (written before every method had one)


class Stateful(Protocol):
    """What this module needs of a method (``mtlbench.bench.run.methods.base`` implements it): the layout
    depends on no method class, so the methods' base can depend on the layout."""

    num_tasks: int

    def state_slots(self) -> dict[str, Slot]: ...

    def state_values(self) -> dict[str, Value]: ...


class MethodStateError(CheckpointError):
    """A checkpoint's method state does not fit the configured method; the message says what it
    holds and what the run expected (callers that know the checkpoint's path prefix it)."""


@dataclass(frozen=True)
class Slot:
    """What one saved value must be.

    Args:
        kind: ``"tensor"`` (a dense floating-point tensor), ``"count"`` (an int >= 0) or
            ``"number"`` (a finite float >= 0).
        shape: for tensors, one entry per dimension: an int, ``"T"`` (the number of tasks) or
            ``"*"`` (any size, e.g. the number of shared parameters).
        optional: the value may be ``None`` (state not created yet).
    """

    kind: Literal["tensor", "count", "number"]
    shape: tuple[int | str, ...] = ()
    optional: bool = False

    def describe(self, num_tasks: int) -> str:
        if self.kind != "tensor":
            return "an int >= 0" if self.kind == "count" else "a finite number >= 0"
        dims = ", ".join(str(num_tasks) if dim == "T" else str(dim) for dim in self.shape)
        return f"a float tensor of shape ({dims}{',' if len(self.shape) == 1 else ''})"

    def fits(self, value: Any, num_tasks: int) -> bool:
        if value is None:
            return self.optional
        if self.kind == "count":
            return type(value) is int and value >= 0
        if self.kind == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
        if not isinstance(value, torch.Tensor) or value.layout != torch.strided or not value.is_floating_point():
            return False
        if value.dim() != len(self.shape) or not bool(torch.isfinite(value).all()):
            return False
        wanted = [num_tasks if dim == "T" else dim for dim in self.shape]
        return all(want == "*" or size == want for size, want in zip(value.shape, wanted, strict=True))


def _held(value: Any) -> str:
    """A short, plain description of a value from a checkpoint (never its repr: it is data)."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of dtype {str(value.dtype).removeprefix('torch.')} and shape {tuple(value.shape)}"
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


def packed(method: Stateful, values: dict[str, Value]) -> dict[str, Any]:
    """``values`` of ``method`` in the current layout."""
    return {"layout": LAYOUT, "method": type(method).__name__, "num_tasks": method.num_tasks, "values": values}


def pack_state(method: Stateful) -> dict[str, Any]:
    """The method's state in the current layout (what ``get_extra_state`` returns)."""
    return packed(method, method.state_values())


def read_method_state(state: Any, method: Stateful) -> dict[str, Value]:
    """The values of a saved method state, checked against ``method`` (bound); raises
    :class:`MethodStateError` naming what the state holds and what the run expected."""
    expected = f"{type(method).__name__} for {method.num_tasks} tasks"
    slots = method.state_slots()
    if state is _MISSING or (isinstance(state, torch.Tensor) and state.dtype == torch.uint8 and state.numel() == 0):
        if slots:  # written before layout 1 by a method without state: not this one
            raise MethodStateError(f"holds no method state (a layout before {LAYOUT}); the run expects the state of {expected}")
        return {}
    if isinstance(state, torch.Tensor) and state.dtype == torch.uint8:
        raise MethodStateError(
            f"holds method state in the pickled layout of mtlbench before {LAYOUT}, which is never unpickled "
            f"(unpickling can run code); the run expects {LAYOUT} for {expected}: retrain, or resume from a checkpoint of this version"
        )
    if not isinstance(state, dict):
        raise MethodStateError(f"holds {_held(state)} as method state; the run expects {LAYOUT} for {expected}")
    if "layout" not in state and set(state) == set(slots):  # DB-MTL's plain dict before layout 1
        state = packed(method, state)
    layout, name, num_tasks = state.get("layout"), state.get("method"), state.get("num_tasks")
    if layout != LAYOUT:
        shown = layout if isinstance(layout, str) and len(layout) < 64 else _held(layout)
        raise MethodStateError(f"holds method state in layout {shown!r}; the run expects {LAYOUT} for {expected}")
    if not isinstance(name, str) or type(num_tasks) is not int:
        raise MethodStateError(f"holds a method state without a method name and task count; the run expects {expected}")
    if name != type(method).__name__ or num_tasks != method.num_tasks:
        shown = name if name.isidentifier() and len(name) < 64 else "an unknown method"
        raise MethodStateError(
            f"holds the state of {shown} for {num_tasks} tasks; the run is configured with {expected}: "
            "use the method and tasks of the run that wrote it"
        )
    values = state.get("values")
    if not isinstance(values, dict) or set(values) != set(slots):
        found = sorted(str(key)[:32] for key in values) if isinstance(values, dict) else _held(values)
        raise MethodStateError(f"holds {name} state with values {found}; the run expects {sorted(slots)}")
    for key, slot in slots.items():
        if not slot.fits(values[key], method.num_tasks):
            raise MethodStateError(f"holds {_held(values[key])} as {name}'s '{key}'; the run expects {slot.describe(method.num_tasks)}")
    return dict(values)


def missing_entry() -> object:
    """The marker :func:`read_method_state` takes for a checkpoint without a method entry."""
    return _MISSING
