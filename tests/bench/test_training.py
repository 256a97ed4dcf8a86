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


def test_epoch_means_of_task_losses_and_weights_are_lightnings_own(tiny_cache, tmp_path, monkeypatch):
    """The per-task training losses and UPGrad's task weights are summed over an epoch by the
    module and logged once per epoch; the logged file (every epoch's means, the steps' losses,
    validation) is byte for byte the one of Lightning's own per-step ``self.log(on_epoch=True)``."""
    from pathlib import Path

    from mtlbench.bench.run.launch import main
    from tests.conftest import tiny_cli_args

    repo = Path(__file__).resolve().parents[2]
    args = [
        *tiny_cli_args(tiny_cache, tmp_path / "summed", str(repo / "configs" / "quickstart.yaml")),
        f"--model.method={repo / 'configs' / 'method' / 'upgrad.yaml'}",
        "--model.refresh_every=2",
        "--trainer.max_epochs=2",
        "--trainer.callbacks=[]",
        "--trainer.log_every_n_steps=1",
        "--test_after_fit=false",
    ]
    assert main(["fit", *args]) == 0

    def per_step(self, what, per_task, batch_size):  # what the module did before: a self.log per task and step
        for name, value in zip(self.task_names, per_task, strict=True):
            self.log(f"train/{name}/{what}", value, on_step=False, on_epoch=True, batch_size=batch_size)

    monkeypatch.setattr(MultiTaskModule, "_add_to_epoch", per_step)
    assert main(["fit", *[arg.replace("summed", "per_step") for arg in args]]) == 0
    summed, logged = (next((tmp_path / side).rglob("metrics.csv")).read_text() for side in ("summed", "per_step"))
    assert "train/depth/weight" in summed and "train/segmentation/loss" in summed
    assert summed == logged
