"""The Jacobian producer gives the true per-task gradients, in both spaces, at the floor cost."""

from __future__ import annotations

import contextlib

import pytest
import torch

from mtlbench.bench.run.jacobian import aggregated_backward
from mtlbench.bench.run.methods import GradientAggregator
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.models import MultiTaskNet


class SumOfRows(GradientAggregator):
    """Test aggregator: the plain sum of the task gradients (= EW), recording its input."""

    def forward(self, jacobian, losses):
        self.seen = jacobian.clone()
        return jacobian.sum(dim=0)


def module_with(method, tasks):
    torch.manual_seed(0)
    module = MultiTaskModule(tasks, net=lambda t: MultiTaskNet(t, backbone="test_resnet", decoder_channels=8), method=method)
    module.eval()  # BatchNorm in eval mode: every pass computes the same function
    return module


def produce(module, images, targets):
    """One aggregated backward through the producer, as the training step makes it."""
    batched = module.batches_task_gradients()
    return aggregated_backward(
        module.net, module.method, images, targets, module.training_losses, module.collective, batched, contextlib.nullcontext
    )


def grads(module):
    return {name: p.grad.clone() for name, p in module.net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("space", ["parameters", "features"])
@pytest.mark.parametrize("batched", [False, True])
def test_sum_aggregator_reproduces_the_summed_loss_gradient(tiny_datamodule, space, batched):
    datamodule = tiny_datamodule()
    datamodule.setup("fit")
    images, targets = next(iter(datamodule.train_dataloader()))
    reference = module_with(None, datamodule.tasks)
    reference.task_losses(reference(images), targets).sum().backward()
    expected = grads(reference)

    module = module_with(SumOfRows(space=space), datamodule.tasks)
    module.jacobian_batched = batched
    produce(module, images, targets)
    got = grads(module)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)


def test_parameter_jacobian_rows_are_the_per_task_gradients(tiny_datamodule):
    datamodule = tiny_datamodule()
    datamodule.setup("fit")
    images, targets = next(iter(datamodule.train_dataloader()))
    method = SumOfRows()
    module = module_with(method, datamodule.tasks)
    produce(module, images, targets)
    for row, name in enumerate(module.task_names):
        single = module_with(None, datamodule.tasks)
        single.task_losses(single(images), targets)[row].backward()
        expected = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in single.net.shared_parameters()])
        torch.testing.assert_close(method.seen[row], expected, atol=1e-5, rtol=1e-4, msg=name)


def test_autograd_calls_per_step(tiny_datamodule, monkeypatch):
    """Feature space: T head passes + one encoder pass. Parameter space: T + T."""
    datamodule = tiny_datamodule()
    datamodule.setup("fit")
    images, targets = next(iter(datamodule.train_dataloader()))
    calls = {"grad": 0, "backward": 0}
    real_grad, real_backward = torch.autograd.grad, torch.Tensor.backward

    def counting_grad(*args, **kwargs):
        calls["grad"] += 1
        return real_grad(*args, **kwargs)

    def counting_backward(self, *args, **kwargs):
        calls["backward"] += 1
        return real_backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    monkeypatch.setattr(torch.Tensor, "backward", counting_backward)
    for space, expected in (("features", {"grad": 3, "backward": 1}), ("parameters", {"grad": 6, "backward": 0})):
        calls.update(grad=0, backward=0)
        module = module_with(SumOfRows(space=space), datamodule.tasks)
        module.jacobian_batched = False
        produce(module, images, targets)
        assert calls == expected, space
