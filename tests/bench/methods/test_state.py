"""Method state survives a checkpoint round trip as tensors and numbers in a versioned layout,
is checked before use, and is never unpickled; reset() restores a fresh run."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from mtlbench.bench.run.methods import (
    GRADIENT_AGGREGATORS,
    LOSS_WEIGHTINGS,
    PCD,
    DualBalancing,
    FixedWeights,
    GradientAggregator,
    GradVac,
    NashMTL,
    UPGrad,
)
from mtlbench.bench.run.methods.state import LAYOUT, MethodStateError
from tests.bench.payloads import pickled_command

warnings.filterwarnings("ignore", message=".*not DPP.*")
ALL = (*LOSS_WEIGHTINGS, *GRADIENT_AGGREGATORS)


def make(cls):
    method = cls([1.0, 2.0, 3.0]) if cls is FixedWeights else cls()
    method.bind(3)
    return method


def step(method, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    losses = torch.rand(3, generator=generator) + 0.1
    if isinstance(method, GradientAggregator):
        jacobian = torch.randn(3, 8, generator=generator)
        return method(jacobian, losses)
    losses.requires_grad_()
    out = method(losses, grad_norms=torch.rand(3, generator=generator) + 0.1) if method.needs_grad_norms else method(losses)
    out.backward()
    if method.needs_losses_after_step:
        method.update(losses.detach() * 0.9)
    method.on_epoch_end()
    return torch.cat([out.detach().reshape(1), losses.grad])


def roundtrip(method):
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_checkpoint_roundtrip_continues_identically(cls):
    original = make(cls)
    for seed in range(3):
        step(original, seed)
    restored = make(cls)
    restored.load_state_dict(roundtrip(original))
    torch.manual_seed(7)
    expected = step(original, 10)
    torch.manual_seed(7)
    got = step(restored, 10)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_reset_restores_a_fresh_run(cls):
    used = make(cls)
    for seed in range(3):
        step(used, seed)
    used.reset()
    fresh = make(cls)
    torch.manual_seed(3)
    expected = step(fresh, 5)
    torch.manual_seed(3)
    torch.testing.assert_close(step(used, 5), expected)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_repr_lists_arguments_and_str_is_the_table_name(cls):
    method = make(cls)
    assert str(method) and " " not in str(method)
    assert type(method).__name__ in repr(method)


STATEFUL = [cls for cls in ALL if make(cls).state_slots()]


def test_every_stateful_method_is_listed():
    names = {cls.__name__ for cls in STATEFUL}
    assert names == {"DynamicWeightAverage", "FastAdaptiveMultitask", "NashMTL", "GradVac", "ExcessMTL", "DualBalancing", "PCD"}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_method_state_is_tensors_and_numbers_under_a_versioned_layout(cls):
    method = make(cls)
    for seed in range(3):
        step(method, seed)
    state = method.get_extra_state()
    assert state["layout"] == LAYOUT and state["method"] == cls.__name__ and state["num_tasks"] == 3
    assert set(state["values"]) == set(method.state_slots())
    assert all(value is None or isinstance(value, (torch.Tensor, int, float)) for value in state["values"].values())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["method"] == cls.__name__


@pytest.mark.parametrize("cls", STATEFUL, ids=lambda c: c.__name__)
def test_a_pickled_method_state_that_runs_a_command_is_refused_and_nothing_runs(cls, tmp_path):
    marker = tmp_path / "ran"
    method = make(cls)
    state = method.state_dict()
    state["_extra_state"] = pickled_command(marker)
    with pytest.raises(
        MethodStateError, match=rf"^holds method state in the pickled layout of mtlbench before {LAYOUT}, which is never unpickled"
    ):
        method.load_state_dict(state)
    assert not marker.exists()


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """The attack test above is only worth something if its payload works."""
    import pickle
    import time

    marker = tmp_path / "ran"
    pickle.loads(pickled_command(marker).numpy().tobytes()).wait()
    for _ in range(50):
        if marker.exists():
            break
        time.sleep(0.1)
    assert marker.exists()


def state_of(cls, num_tasks=3, steps=2):
    method = cls([1.0] * num_tasks) if cls is FixedWeights else cls()
    method.bind(num_tasks)
    for seed in range(steps):
        generator = torch.Generator().manual_seed(seed)
        method(torch.randn(num_tasks, 8, generator=generator), torch.rand(num_tasks, generator=generator) + 0.1)
    return method.get_extra_state()


def test_another_methods_state_is_refused_naming_both():
    with pytest.raises(MethodStateError, match=r"^holds the state of NashMTL for 3 tasks; the run is configured with PCD for 3 tasks"):
        make(PCD).set_extra_state(state_of(NashMTL))


def test_a_state_for_another_number_of_tasks_is_refused():
    with pytest.raises(MethodStateError, match=r"^holds the state of GradVac for 2 tasks; the run is configured with GradVac for 3 tasks"):
        make(GradVac).set_extra_state(state_of(GradVac, num_tasks=2))


@pytest.mark.parametrize(
    "value, shown",
    [
        (torch.zeros(4, dtype=torch.float64), r"a tensor of dtype float64 and shape \(4,\)"),
        ("0.5", "a str"),
        (torch.tensor([float("nan"), 1.0, 1.0]), r"a tensor of dtype float32 and shape \(3,\)"),
        (torch.ones(3, dtype=torch.long), r"a tensor of dtype int64 and shape \(3,\)"),
    ],
    ids=["shape", "string", "nan", "integer"],
)
def test_a_value_of_the_wrong_kind_is_refused(value, shown):
    state = state_of(NashMTL)
    state["values"]["prvs_alpha"] = value
    with pytest.raises(
        MethodStateError, match=rf"^holds {shown} as NashMTL's 'prvs_alpha'; the run expects a float tensor of shape \(3,\)$"
    ):
        make(NashMTL).set_extra_state(state)


def test_a_state_with_missing_or_extra_values_or_another_layout_is_refused():
    state = state_of(NashMTL)
    state["values"]["code"] = "os.system"
    with pytest.raises(MethodStateError, match=r"values \['code', 'normalization_factor', 'prvs_alpha', 'solved_scale', 'step'\]"):
        make(NashMTL).set_extra_state(state)
    state = state_of(NashMTL) | {"layout": "mtlbench.method_state/0"}
    with pytest.raises(MethodStateError, match=r"^holds method state in layout 'mtlbench.method_state/0'; the run expects"):
        make(NashMTL).set_extra_state(state)


def test_states_written_before_layout_1_load_when_they_are_data():
    empty = torch.zeros(0, dtype=torch.uint8)  # a torchjd method without state, before layout 1
    make(UPGrad).set_extra_state(empty)
    with pytest.raises(MethodStateError, match=r"^holds no method state \(a layout before .*\); the run expects the state of NashMTL"):
        make(NashMTL).set_extra_state(empty)
    used = make(DualBalancing)
    for seed in range(2):
        step(used, seed)
    restored = make(DualBalancing)
    restored.set_extra_state({"steps": used.steps, "buffer": used.buffer.clone()})  # DB-MTL's dict before layout 1
    torch.testing.assert_close(step(restored, 5), step(used, 5))
