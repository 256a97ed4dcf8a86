"""The Jacobian producer at the floor gives what the naive loop gives, for every aggregator,
in train mode (BatchNorm on batch statistics, dropout), batched or sequential, whole or chunked."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from mtlbench.bench.run.errors import MethodConfigError
from mtlbench.bench.run.jacobian import JacobianBuffer, aggregated_backward
from mtlbench.bench.run.methods import GRADIENT_AGGREGATORS, MGDA, GradDrop, UPGrad
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.models import MultiTaskNet


def train_mode_net(tasks, norm: str = "batch", dropout: float = 0.0) -> MultiTaskNet:
    torch.manual_seed(0)
    net = MultiTaskNet(tasks, backbone="test_resnet", decoder_channels=8, norm=norm)
    if dropout:  # a dropout inside the shared encoder: its mask must be the same for every task
        net.neck.smooth = nn.Sequential(net.neck.smooth, nn.Dropout2d(dropout))
    return net.train()


MODELS = {"batch_norm": {}, "group_norm": {"norm": "group"}, "batch_norm_dropout": {"dropout": 0.3}}


@pytest.fixture(scope="module")
def batch(tiny_cache):
    from mtlbench.datamodules import SyntheticScenesDataModule
    from tests.conftest import TINY

    datamodule = SyntheticScenesDataModule(cache_dir=tiny_cache, **TINY)
    datamodule.setup("fit")
    return datamodule.tasks, next(iter(datamodule.train_dataloader()))


@contextlib.contextmanager
def seeded():
    """The method's random draws (PCGrad, GradDrop ...), the same for the reference and the producer."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        yield


def naive_jacobian(module: MultiTaskModule, images, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """One full backward(retain_graph=True) per task, the shared .grad copied into a matrix."""
    losses = module.task_losses(module.net(images), targets)
    shared = list(module.net.shared_parameters())
    rows = []
    for k in range(losses.shape[0]):
        module.net.zero_grad(set_to_none=True)
        losses[k].backward(retain_graph=True)
        rows.append(torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in shared]))
    module.net.zero_grad(set_to_none=True)
    return torch.stack(rows), losses.detach()


def produce(module: MultiTaskModule, images, targets, batched: bool, max_bytes=None):
    return aggregated_backward(
        module.net,
        module.method,
        images,
        targets,
        module.training_losses,
        module.collective,
        batched,
        seeded,
        JacobianBuffer(),
        max_bytes,
    )


def shared_grad(module: MultiTaskModule) -> torch.Tensor:
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in module.net.shared_parameters()])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("batched", [False, True])
def test_fast_jacobian_equals_the_naive_loop(batch, model, batched):
    tasks, (images, targets) = batch
    module = MultiTaskModule(tasks, net=lambda t: train_mode_net(t, **MODELS[model]), method=UPGrad())
    state = {k: v.clone() for k, v in module.net.state_dict().items()}
    torch.manual_seed(1)
    expected, _ = naive_jacobian(module, images, targets)
    module.net.load_state_dict(state)  # BatchNorm's running statistics moved: start from the same ones
    torch.manual_seed(1)  # the same dropout mask
    step = produce(module, images, targets, batched)
    torch.testing.assert_close(step.jacobian, expected, atol=1e-6, rtol=1e-4)
    assert bool(expected.abs().sum(dim=1).gt(0).all())


@pytest.mark.parametrize("method_class", GRADIENT_AGGREGATORS, ids=lambda c: c.__name__)
def test_every_aggregator_gets_its_update_of_the_naive_jacobian(batch, method_class, model="batch_norm_dropout"):
    tasks, (images, targets) = batch
    reference_method, method = method_class(), method_class()
    module = MultiTaskModule(tasks, net=lambda t: train_mode_net(t, **MODELS[model]), method=method)
    reference_method.bind(len(tasks))
    state = {k: v.clone() for k, v in module.net.state_dict().items()}
    torch.manual_seed(1)
    jacobian, losses = naive_jacobian(module, images, targets)
    with seeded():
        expected = reference_method(jacobian, losses)
    module.net.load_state_dict(state)
    torch.manual_seed(1)
    produce(module, images, targets, batched=False)
    torch.testing.assert_close(shared_grad(module), expected, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("method_class", [UPGrad, MGDA])
def test_chunked_gramian_gives_the_same_step_within_the_memory_limit(batch, method_class):
    tasks, (images, targets) = batch
    whole = MultiTaskModule(tasks, net=lambda t: train_mode_net(t, norm="group"), method=method_class())
    chunked = MultiTaskModule(tasks, net=lambda t: train_mode_net(t, norm="group"), method=method_class())
    width = sum(p.numel() for p in whole.net.shared_parameters())
    produce(whole, images, targets, batched=False)
    step = produce(chunked, images, targets, batched=False, max_bytes=3 * width * 4 / 5)  # five groups at least
    assert step.jacobian is None  # never materialised
    torch.testing.assert_close(shared_grad(chunked), shared_grad(whole), atol=1e-6, rtol=1e-4)
    for (name, a), b in zip(whole.net.named_parameters(), chunked.net.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_chunking_refuses_a_method_that_needs_the_whole_jacobian(batch):
    tasks, (images, targets) = batch
    module = MultiTaskModule(tasks, net=lambda t: train_mode_net(t, norm="group"), method=GradDrop())
    with pytest.raises(MethodConfigError, match="needs all of it"):
        produce(module, images, targets, batched=False, max_bytes=1024)
