"""Every method config trains for real; bf16 works for every method; fp16 + gradients is refused;
Adam is invariant to a constant per-task loss scale on the heads (Elich et al. 2024)."""

from __future__ import annotations

import warnings
from collections.abc import Collection
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from mtlbench.bench.run.launch import MtlbenchCLI, main
from mtlbench.bench.run.methods import GRADIENT_AGGREGATORS, FixedWeights
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.models import MultiTaskNet
from tests.conftest import tiny_cli_args

warnings.filterwarnings("ignore", message=".*not DPP.*")
REPO = Path(__file__).resolve().parents[2]
METHOD_CONFIGS = sorted((REPO / "configs" / "method").glob("*.yaml"))
# The default run trains one method of each mechanism end to end; -m slow trains the others. Every
# method's arithmetic is checked in the default run by its float64 reference and property tests.
MECHANISMS = {
    "ew": "a plain loss weighting",
    "uw": "learned loss parameters in a group of their own",
    "famo": "a weighting with its own optimizer step",
    "gradnorm": "norms of the last shared layer",
    "pcgrad": "random draws on the parameter-space Jacobian",
    "graddrop": "random draws per coordinate",
    "upgrad": "a quadratic-program solver",
    "nash_mtl": "cvxpy's solver with state",
    "mgda_ub": "the representation's gradients",
    "db_mtl": "an aggregator with state",
}


# bf16 autocast meets each way task gradients are formed: the loss, the parameters' Jacobian, the
# representation's, and a per-coordinate draw
BF16_DEFAULT = ("ew", "upgrad", "mgda_ub", "graddrop")


def every_method(configs: list[Path], default: Collection[str] = tuple(MECHANISMS)) -> list:
    return [config if config.stem in default else pytest.param(config, marks=pytest.mark.slow) for config in configs]


def tiny_cli(tiny_cache: str, tmp_path: Path, *extra: str) -> MtlbenchCLI:
    quickstart = str(REPO / "configs" / "quickstart.yaml")
    args = [*tiny_cli_args(tiny_cache, tmp_path, quickstart), "--model.optimizer.init_args.lr=0.003", *extra]
    args.append("--trainer.enable_checkpointing=false")
    return MtlbenchCLI(args=args, run=False)


@torch.no_grad()
def mean_losses(module, batches):
    module.eval()
    out = torch.stack([module.task_losses(module(x), y) for x, y in batches]).mean(0)
    module.train()
    return out


# MGDA-UB's min-norm weights of the representation gradients leave depth, the task with the
# largest gradient, almost unweighted at first: on these 48 images its loss rises by epoch 2
# (3.77 -> 3.82) and falls by epoch 3 (3.22), while the other tasks fall from the start.
EPOCHS_NEEDED = {"mgda_ub": 3}


@pytest.mark.parametrize("config", every_method(METHOD_CONFIGS), ids=lambda p: p.stem)
def test_two_epochs_lower_every_task_loss(tiny_cache, tmp_path, config):
    pl.seed_everything(0)
    epochs = EPOCHS_NEEDED.get(config.stem, 2)
    cli = tiny_cli(tiny_cache, tmp_path, f"--model.method={config}", f"--trainer.max_epochs={epochs}")
    cli.datamodule.setup("fit")
    batches = list(cli.datamodule.train_dataloader())
    before = mean_losses(cli.model, batches)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    after = mean_losses(cli.model, batches)
    for task, b, a in zip(cli.model.task_names, before.tolist(), after.tolist(), strict=True):
        assert a < b, f"{config.stem}: {task} loss {b:.4f} -> {a:.4f}"


@pytest.mark.parametrize("config", every_method(METHOD_CONFIGS, BF16_DEFAULT), ids=lambda p: p.stem)
def test_bf16_step_is_finite_for_every_method(tiny_cache, tmp_path, config):
    cli = tiny_cli(tiny_cache, tmp_path, f"--model.method={config}", "--trainer.precision=bf16-mixed", "--trainer.fast_dev_run=2")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss_step"])


def test_fp16_with_a_gradient_method_is_refused_in_one_line(tiny_cache, tmp_path, capsys):
    args = ["fit", *tiny_cli_args(tiny_cache, tmp_path, str(REPO / "configs" / "quickstart.yaml"))]
    args += [f"--model.method={REPO / 'configs' / 'method' / 'upgrad.yaml'}", "--trainer.precision=16-true"]
    assert main(args) == 2
    message = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mtlbench: error:")]
    assert len(message) == 1 and "UPGrad needs per-task gradients" in message[0] and "bf16-mixed" in message[0]


def head_updates(optimizer_factory, loss_scale: float, steps: int, freeze_shared: bool, batch, tasks):
    torch.manual_seed(0)
    module = MultiTaskModule(
        tasks,
        net=lambda t: MultiTaskNet(t, backbone="test_resnet", decoder_channels=8),
        method=FixedWeights([loss_scale, 1.0, 1.0]),
    )
    if freeze_shared:
        for p in module.net.shared_parameters():
            p.requires_grad_(False)
    head = list(module.net.task_parameters(module.task_names[0]))
    start = [p.detach().clone() for p in head]
    optimizer = optimizer_factory([p for p in module.net.parameters() if p.requires_grad])
    images, targets = batch
    for _ in range(steps):
        optimizer.zero_grad()
        module.method(module.task_losses(module(images), targets)).backward()
        optimizer.step()
    return torch.cat([(p.detach() - s).flatten() for p, s in zip(head, start, strict=True)])


@pytest.mark.parametrize(("steps", "freeze_shared"), [(1, False), (5, True)])
def test_adam_head_update_ignores_a_constant_loss_scale_sgd_does_not(tiny_datamodule, steps, freeze_shared):
    datamodule = tiny_datamodule()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    c = 10.0

    def adam(params):
        return torch.optim.Adam(params, lr=1e-3, eps=1e-12)

    def sgd(params):
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    base = head_updates(adam, 1.0, steps, freeze_shared, batch, datamodule.tasks)
    scaled = head_updates(adam, c, steps, freeze_shared, batch, datamodule.tasks)
    torch.testing.assert_close(scaled, base, atol=1e-6, rtol=1e-4)
    base = head_updates(sgd, 1.0, steps, freeze_shared, batch, datamodule.tasks)
    scaled = head_updates(sgd, c, steps, freeze_shared, batch, datamodule.tasks)
    if steps == 1:  # SGD's first step scales exactly with the loss; later steps diverge further
        torch.testing.assert_close(scaled, c * base, atol=1e-6, rtol=1e-4)
    assert (scaled - base).norm() > 0.5 * base.norm()


@pytest.mark.parametrize("cls", GRADIENT_AGGREGATORS, ids=lambda c: c.__name__)
def test_every_aggregator_trains_in_feature_space(tiny_datamodule, cls):
    datamodule = tiny_datamodule()
    module = MultiTaskModule(
        datamodule.tasks, net=lambda t: MultiTaskNet(t, backbone="test_resnet", decoder_channels=8), method=cls(space="features")
    )
    trainer = pl.Trainer(accelerator="cpu", fast_dev_run=2, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=datamodule)
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_every_named_mechanism_is_a_method_config():
    assert set(MECHANISMS) | set(BF16_DEFAULT) <= {config.stem for config in METHOD_CONFIGS}
