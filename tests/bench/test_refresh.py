"""``refresh_every``: exact weights every k steps, one backward pass of the weighted losses in between."""

from __future__ import annotations

import pytest
import torch

from mtlbench.bench.run.errors import MethodConfigError
from mtlbench.bench.run.methods import GradDrop, UncertaintyWeighting, UPGrad
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.models import MultiTaskNet


def make_net(tasks):
    torch.manual_seed(0)
    return MultiTaskNet(tasks, backbone="test_resnet", decoder_channels=8, norm="group")


def sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


@pytest.fixture(scope="module")
def batch(tiny_cache):
    from mtlbench.datamodules import SyntheticScenesDataModule
    from tests.conftest import TINY

    datamodule = SyntheticScenesDataModule(cache_dir=tiny_cache, **TINY)
    datamodule.setup("fit")
    return datamodule.tasks, next(iter(datamodule.train_dataloader()))


def per_task_gradients(module: MultiTaskModule, images, targets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The naive loop at the module's current parameters: the shared Jacobian and each head's own gradient."""
    losses = module.task_losses(module.net(images), targets)
    shared = list(module.net.shared_parameters())
    rows, heads = [], {}
    for k, name in enumerate(module.task_names):
        module.net.zero_grad(set_to_none=True)
        losses[k].backward(retain_graph=True)
        rows.append(torch.cat([p.grad.flatten() for p in shared]))
        heads[name] = torch.cat([p.grad.flatten() for p in module.net.task_parameters(name)])
    module.net.zero_grad(set_to_none=True)
    return torch.stack(rows), heads


def test_refresh_every_one_takes_the_exact_methods_steps(batch):
    tasks, (images, targets) = batch
    module = MultiTaskModule(tasks, net=make_net, method=UPGrad(), optimizer=sgd, refresh_every=1)
    reference = MultiTaskModule(tasks, net=make_net, method=UPGrad(), optimizer=sgd)
    optimizer, reference_optimizer = module.configure_optimizers(), reference.configure_optimizers()
    for step in range(3):
        jacobian, heads = per_task_gradients(reference, images, targets)
        reference_optimizer.zero_grad(set_to_none=True)
        update = reference.method(jacobian, torch.zeros(len(tasks)))  # the zoo's UPGrad on the naive Jacobian
        offset = 0
        for param in reference.net.shared_parameters():
            param.grad = update[offset : offset + param.numel()].view_as(param).clone()
            offset += param.numel()
        for name in reference.task_names:
            offset = 0
            for param in reference.net.task_parameters(name):
                param.grad = heads[name][offset : offset + param.numel()].view_as(param).clone()
                offset += param.numel()
        reference_optimizer.step()
        module.optimization_step(images, targets, optimizer, step)
    for (name, got), expected in zip(module.net.named_parameters(), reference.net.parameters(), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4, msg=name)


def test_between_refreshes_the_last_weights_combine_the_current_gradients(batch):
    tasks, (images, targets) = batch
    module = MultiTaskModule(tasks, net=make_net, method=UPGrad(), optimizer=sgd, refresh_every=3)
    optimizer = module.configure_optimizers()
    module.optimization_step(images, targets, optimizer, 0)
    first = module.task_weights.clone()
    assert torch.equal(first, module.reported_weights) and bool(first.gt(0).all())
    for step in (1, 2):
        jacobian, heads = per_task_gradients(module, images, targets)
        module.optimization_step(images, targets, optimizer, step)
        got = torch.cat([p.grad.flatten() for p in module.net.shared_parameters()])
        torch.testing.assert_close(got, first @ jacobian, atol=1e-6, rtol=1e-4)
        for name in module.task_names:  # heads: their own task's gradient, unweighted, as on exact steps
            own = torch.cat([p.grad.flatten() for p in module.net.task_parameters(name)])
            torch.testing.assert_close(own, heads[name], atol=1e-6, rtol=1e-4)
        assert torch.equal(module.task_weights, first)
    jacobian, _ = per_task_gradients(module, images, targets)
    module.optimization_step(images, targets, optimizer, 3)  # refreshed from the exact Jacobian
    expected = module.method.weights(jacobian, torch.zeros(3)).float()  # solved in float64
    torch.testing.assert_close(module.task_weights, expected, atol=1e-5, rtol=1e-3)
    assert not torch.allclose(module.task_weights, first)


def test_reused_weights_are_checkpointed(batch):
    tasks, _ = batch
    module = MultiTaskModule(tasks, net=make_net, method=UPGrad(), refresh_every=4)
    assert "task_weights" in module.state_dict()
    assert module.method_name == "UPGrad (k=4)"
    assert "task_weights" not in MultiTaskModule(tasks, net=make_net, method=UPGrad()).state_dict()


@pytest.mark.parametrize(
    ("method", "every", "message"),
    [
        (GradDrop(), 2, "GradDrop's update is not a weighted sum of the task gradients"),
        (UncertaintyWeighting(), 2, "applies to gradient aggregators; UW is a loss weighting"),
        (UPGrad(), 0, "refresh_every must be a positive integer"),
    ],
)
def test_refresh_every_is_refused_where_it_cannot_apply(batch, method, every, message):
    tasks, _ = batch
    with pytest.raises(MethodConfigError, match=message):
        MultiTaskModule(tasks, net=make_net, method=method, refresh_every=every)
