"""A short training run lowers every task's loss; EW's step is the summed-loss backward."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from mtlbench.bench.run.methods import EqualWeighting
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.models import MultiTaskNet


def tiny_module(tasks, lr: float = 3e-3) -> MultiTaskModule:
    return MultiTaskModule(
        tasks,
        net=lambda t: MultiTaskNet(t, backbone="test_resnet", decoder_channels=16),
        optimizer=lambda params: torch.optim.Adam(params, lr=lr),
    )


@torch.no_grad()
def mean_task_losses(module: MultiTaskModule, batches) -> torch.Tensor:
    module.eval()
    losses = torch.stack([module.task_losses(module(images), targets) for images, targets in batches]).mean(0)
    module.train()
    return losses


def test_short_training_lowers_every_task_loss(tiny_datamodule):
    pl.seed_everything(0)
    datamodule = tiny_datamodule()
    datamodule.setup("fit")
    batches = list(datamodule.train_dataloader())
    module = tiny_module(datamodule.tasks)
    before = mean_task_losses(module, batches)
    trainer = pl.Trainer(
        max_epochs=5, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, datamodule=datamodule)
    after = mean_task_losses(module, batches)
    for task, b, a in zip(module.task_names, before.tolist(), after.tolist(), strict=True):
        assert a < 0.8 * b, f"{task}: loss {b:.3f} -> {a:.3f}"


def test_equal_weighting_step_is_the_summed_loss_backward(tiny_datamodule):
    """The module's manual step with EW gives exactly the gradient of sum_k L_k."""
    datamodule = tiny_datamodule()
    datamodule.setup("fit")
    images, targets = next(iter(datamodule.train_dataloader()))
    torch.manual_seed(0)
    module = tiny_module(datamodule.tasks)
    reference = tiny_module(datamodule.tasks)
    reference.load_state_dict(module.state_dict())
    assert isinstance(module.method, EqualWeighting)

    module.method(module.task_losses(module(images), targets)).backward()
    reference.task_losses(reference(images), targets).sum().backward()
    for (name, p), q in zip(module.net.named_parameters(), reference.net.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), name


def test_gradient_clipping_argument_is_validated():
    import pytest

    from mtlbench.tasks import depth_task

    with pytest.raises(ValueError, match="grad_clip_norm must be positive"):
        MultiTaskModule([depth_task()], net=lambda t: MultiTaskNet(t, backbone="test_resnet"), grad_clip_norm=0.0)


def test_method_lr_gives_the_methods_parameters_a_group_of_their_own():
    """Nash-MTL's and FAMO's code train a weighting's parameters (UW's log-variances) at 0.025
    beside the network's 1e-4: one optimizer, two groups; without method_lr, one group."""
    from mtlbench.bench.run.methods import UncertaintyWeighting
    from mtlbench.tasks import depth_task, segmentation_task

    tasks = [segmentation_task(5), depth_task()]

    def net(specs):
        return MultiTaskNet(specs, backbone="test_resnet", decoder_channels=8)

    def adam(params):
        return torch.optim.Adam(params, lr=1e-4)

    module = MultiTaskModule(tasks, net=net, method=UncertaintyWeighting(), optimizer=adam, method_lr=0.025)
    network, weighting = module.configure_optimizers().param_groups
    assert (network["lr"], weighting["lr"]) == (1e-4, 0.025)
    assert {id(p) for p in weighting["params"]} == {id(p) for p in module.method.trainable_parameters()}
    assert len(network["params"]) == len(list(module.net.parameters()))
    (single,) = MultiTaskModule(tasks, net=net, method=UncertaintyWeighting(), optimizer=adam).configure_optimizers().param_groups
    assert single["lr"] == 1e-4
    (only,) = MultiTaskModule(tasks, net=net, method=EqualWeighting(), optimizer=adam, method_lr=0.025).configure_optimizers().param_groups
    assert only["lr"] == 1e-4  # EW has no parameters of its own: no empty group
    with pytest.raises(ValueError, match="method_lr must be positive or None, got 0"):
        MultiTaskModule(tasks, net=net, optimizer=adam, method_lr=0)
