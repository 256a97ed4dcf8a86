"""Property tests over every loss weighting."""

from __future__ import annotations

import itertools

import pytest
import torch

from mtlbench.bench.run.methods import LOSS_WEIGHTINGS, FixedWeights, LossWeighting

IDS = [cls.__name__ for cls in LOSS_WEIGHTINGS]


def bound(cls: type[LossWeighting], num_tasks: int = 3) -> LossWeighting:
    method = cls([1.0] * num_tasks) if cls is FixedWeights else cls()
    method.bind(num_tasks)
    return method


def call(method: LossWeighting, losses: torch.Tensor) -> torch.Tensor:
    if method.needs_grad_norms:
        return method(losses, grad_norms=torch.linspace(0.5, 2.0, losses.numel()))
    return method(losses)


@pytest.mark.parametrize("cls", LOSS_WEIGHTINGS, ids=IDS)
@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e8])
def test_scalar_and_gradient_are_finite(cls, scale):
    losses = (torch.tensor([0.3, 1.0, 2.5]) * scale).requires_grad_()
    out = call(bound(cls), losses)
    assert out.ndim == 0 and torch.isfinite(out)
    out.backward()
    assert torch.isfinite(losses.grad).all() and (losses.grad >= 0).all()


@pytest.mark.parametrize("cls", [c for c in LOSS_WEIGHTINGS if not c.randomized and c is not FixedWeights], ids=lambda c: c.__name__)
def test_permuting_tasks_permutes_the_loss_gradient(cls):
    losses = torch.tensor([0.3, 1.0, 2.5])
    reference = losses.clone().requires_grad_()
    call(bound(cls), reference).backward()
    for permutation in itertools.permutations(range(3)):
        index = torch.tensor(permutation)
        permuted = losses[index].clone().requires_grad_()
        method = bound(cls)
        if method.needs_grad_norms:
            method(permuted, grad_norms=torch.linspace(0.5, 2.0, 3)[index]).backward()
        else:
            method(permuted).backward()
        torch.testing.assert_close(permuted.grad, reference.grad[index])


def test_equal_weighting_is_the_plain_sum():
    losses = torch.tensor([0.3, 1.0, 2.5], requires_grad=True)
    out = bound(LOSS_WEIGHTINGS[0])(losses)
    assert out.item() == pytest.approx(3.8)
    out.backward()
    assert torch.equal(losses.grad, torch.ones(3))


def test_fixed_weights_needs_one_weight_per_task():
    with pytest.raises(ValueError, match="2 weights given for 3 tasks"):
        FixedWeights([1.0, 2.0]).bind(3)


def test_dwa_weights_follow_the_descent_rates():
    method = bound(LOSS_WEIGHTINGS[3])
    for epoch_losses in ([1.0, 1.0, 1.0], [1.0, 0.5, 1.0]):
        method(torch.tensor(epoch_losses))
        method.on_epoch_end()
    losses = torch.ones(3, requires_grad=True)
    method(losses).backward()
    # task 1 halved its loss: ratio 0.5 < 1, so it gets the smallest weight; weights sum to T
    assert losses.grad[1] < losses.grad[0] == pytest.approx(losses.grad[2].item())
    assert losses.grad.sum().item() == pytest.approx(3.0)


def test_gradnorm_moves_weight_towards_the_slow_task():
    from mtlbench.bench.run.methods import GradNorm

    method = GradNorm(alpha=1.5)
    method.bind(2)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    method(torch.tensor([1.0, 1.0]), grad_norms=torch.tensor([1.0, 1.0]))  # records L(0)
    optimizer.zero_grad()
    # task 0 trains slowly (loss still 1), task 1 fast (0.25); equal gradient norms
    method(torch.tensor([1.0, 0.25]), grad_norms=torch.tensor([1.0, 1.0])).backward()
    optimizer.step()
    method.after_step()
    assert method.weights[0] > 1.0 > method.weights[1]
    assert method.weights.sum().item() == pytest.approx(2.0)
