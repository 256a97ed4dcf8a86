"""Method state survives a checkpoint round trip; reset() restores a fresh run."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from bench.methods import GRADIENT_AGGREGATORS, LOSS_WEIGHTINGS, FixedWeights, GradientAggregator

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


def test_a_method_state_that_names_code_is_refused_without_running_it(tmp_path):
    """A checkpoint is data: a state blob that would call os.system is refused, not run."""
    import os
    import pickle

    from bench.errors import CheckpointError
    from bench.methods import NashMTL

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    method = make(NashMTL)
    state = method.state_dict()
    key = next(name for name in state if name.endswith("_extra_state"))
    state[key] = torch.frombuffer(bytearray(pickle.dumps(Payload())), dtype=torch.uint8).clone()
    with pytest.raises(CheckpointError, match=r"names (posix|os)\.system, which a method state never holds"):
        method.load_state_dict(state)
    assert not marker.exists()
