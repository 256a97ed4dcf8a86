"""Trains the DDP exactness test's configurations with 1, 2 or 3 processes, on the path users take.

    python -m tests.bench.ddp_equivalence CACHE OUT WORLD [CONFIG ...]

The real datamodule (synthetic scenes, whose images differ in their ignored labels and their
depth and normal holes), Lightning's DDP with gloo on CPU reading through the datamodule's
distributed samplers (nothing sharded by hand), validation after every epoch on an odd split
(7 images: padded under 2 and 3 processes), 7 training images in one global batch of 6 per
epoch (6, 3 or 2 per process; the seventh is dropped), 3 epochs. The network uses GroupNorm
(per-sample normalisation: torch's SyncBatchNorm has no CPU path) and is made smooth (SiLU for
ReLU, average for max pooling: :func:`smooth`), so every world size should take the same steps
to rounding.

Rank 0 writes OUT/<config>-world<W>-rank0.pt: the initial and final parameters, the method's
state, the validation history, the gradient-probe history, the task-affinity history and
GradDrop's purities and draws (:func:`recording_draws`); the other ranks write their final
parameters, so the test can check that the ranks agree.

``NEGATIVE`` configurations are the positive ones with one reduction removed (the mean of
per-rank means, a weighting evaluated at the local losses, a local Gramian, draws that differ
by rank); run with 2 or 3 processes they must differ from the 1-process run by more than the
tolerance, or the test could not catch the loss of that reduction.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback
from torch import nn
from torchjd.aggregation import _graddrop

import mtlbench.bench.run.jacobian
import mtlbench.bench.run.module
from mtlbench.bench.run.callbacks import GradientProbe, TaskAffinity
from mtlbench.bench.run.methods import (
    IMTLG,
    MGDA,
    CAGrad,
    DualBalancing,
    DynamicWeightAverage,
    EqualWeighting,
    FastAdaptiveMultitask,
    GradDrop,
    GradNorm,
    NashMTL,
    PCGrad,
    UncertaintyWeighting,
    UPGrad,
)
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.datamodules import SyntheticScenesDataModule
from mtlbench.models import MultiTaskNet

RELEASE = {"num_train": 7, "num_val": 7, "num_test": 2, "height": 32, "width": 32}
GLOBAL_BATCH, EPOCHS, PROBE_EVERY = 6, 3, 2
STEPS_PER_EPOCH = RELEASE["num_train"] // GLOBAL_BATCH

LOSS_WEIGHTINGS = {
    "EW": EqualWeighting,
    "UW": UncertaintyWeighting,
    "DWA": DynamicWeightAverage,
    "FAMO": FastAdaptiveMultitask,
    "GradNorm": GradNorm,
}
AGGREGATORS = {
    "PCGrad": PCGrad,
    "MGDA": MGDA,
    "CAGrad": CAGrad,
    "Nash-MTL": NashMTL,
    "UPGrad": UPGrad,
    "IMTL-G": IMTLG,
    "DB-MTL": DualBalancing,
    "GradDrop": GradDrop,
}
CONFIGS: dict[str, Callable[[], Any]] = {
    **{name: make for name, make in LOSS_WEIGHTINGS.items()},
    **{
        f"{name}-{space}": (lambda make=make, space=space: make(space=space))
        for name, make in AGGREGATORS.items()
        for space in ("parameters", "features")
    },
    "UPGrad-parameters-k3": UPGrad,
    "MGDA-features-k3": lambda: MGDA(space="features"),
    "UPGrad-chunked": UPGrad,
}
# module options of the configurations above: weights reused between exact steps (refresh_every)
# and the Jacobian's Gramian accumulated by groups of parameters (jacobian_memory_mb)
MODULE_OPTIONS = {
    "UPGrad-parameters-k3": {"refresh_every": 3},
    "MGDA-features-k3": {"refresh_every": 3},
    "UPGrad-chunked": {"jacobian_memory_mb": 1.0},
}


# ----------------------------------------------------------------------------- negative controls
class PerRankMeans(MultiTaskModule):
    """Each rank's loss is the mean over its own shard's valid pixels: the gradient is the mean
    of per-rank means, not the batch's mean (the valid-pixel shares are dropped)."""

    def training_losses(self, outputs, targets):
        return self.task_losses(outputs, targets)


class LocalWeighting(MultiTaskModule):
    """A loss weighting evaluated at this rank's losses instead of the global ones."""

    def _weighted_loss(self, losses, global_losses):
        return super()._weighted_loss(losses, losses.detach())


def _local_gramian_update(method, rows, losses, collective, samples):
    """feature_update with this rank's Gramian in place of the sum over ranks."""
    weights = method.weights_from_gramian(rows @ rows.T / collective.world_size, losses)
    return weights.to(rows.dtype) @ rows, weights


@contextlib.contextmanager
def _local_gramian() -> Iterator[None]:
    with mock.patch.object(mtlbench.bench.run.jacobian, "feature_update", _local_gramian_update):
        yield


@contextlib.contextmanager
def _draws_by_rank() -> Iterator[None]:
    """Randomised methods draw from generators seeded by step and rank: unsynchronised draws (on
    every rank other than those of one process)."""
    synchronised = mtlbench.bench.run.module.step_rng
    with mock.patch.object(
        mtlbench.bench.run.module, "step_rng", lambda seed, step, device: synchronised(seed + 7919 * (dist.get_rank() + 1), step, device)
    ):
        yield


# name: (the configuration it breaks, module class, patch)
NEGATIVE: dict[str, tuple[str, type[MultiTaskModule], Callable[[], contextlib.AbstractContextManager]]] = {
    "EW-per-rank-means": ("EW", PerRankMeans, contextlib.nullcontext),
    "DWA-local-weighting": ("DWA", LocalWeighting, contextlib.nullcontext),
    "GradNorm-local-weighting": ("GradNorm", LocalWeighting, contextlib.nullcontext),
    "MGDA-features-local-gramian": ("MGDA-features", MultiTaskModule, _local_gramian),
    # GradDrop's draws decide every coordinate at every step; PCGrad's order matters only when a
    # task conflicts with two others, which the smooth network's three steps need not show
    # (measured: unsynchronised PCGrad draws stayed within 0.2x the tolerance under 2 processes)
    "GradDrop-features-draws-by-rank": ("GradDrop-features", MultiTaskModule, _draws_by_rank),
}


@contextlib.contextmanager
def _local_affinity() -> Iterator[None]:
    """The task affinity's losses taken on this rank's shard, not averaged over ranks."""

    def local(self, pl_module, images, targets):
        torch.manual_seed(0)
        return pl_module.training_losses(pl_module.net(images), targets)[: len(self._task_names)].detach().float()

    with mock.patch.object(TaskAffinity, "_global_losses", local):
        yield


# a reduction the training does not see: its control is on the affinity, not the parameters
AFFINITY_NEGATIVE = {"EW-local-affinity": ("EW", MultiTaskModule, _local_affinity)}


# ----------------------------------------------------------------------------- one run
class ValidationHistory(Callback):
    """Every validation's logged values (``val/...``), as one process would log them."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        self.history.append({key: float(value) for key, value in trainer.callback_metrics.items() if key.startswith("val/")})


def smooth(module: nn.Module) -> nn.Module:
    """``module`` with every ReLU made a SiLU and every max-pool an average pool of the same window.

    A ReLU or a max-pool makes the gradient jump where a pre-activation crosses zero or two
    pooled values cross: float32 rounding that differs between 1 and 3 processes (the shards'
    convolutions and the reduced parameters round differently) then moves a value across by
    chance. Measured with the ReLU network: at the third step of GradDrop in features space a
    stem pre-activation was -1.9e-7 on one process and +9.5e-8 on three, so one pixel's gradient
    reached the first convolution in one run and not the other, and the runs parted by 1.6e-4
    in that convolution's weights (every other layer within 3e-8). A smooth network leaves the
    reductions as the only thing the test sees."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.SiLU())
        elif isinstance(child, nn.MaxPool2d):
            setattr(module, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, count_include_pad=False))
        else:
            smooth(child)
    return module


def make_net(tasks):
    return smooth(MultiTaskNet(tasks, backbone="test_resnet", decoder_channels=8, norm="group"))


def sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def method_state(module: MultiTaskModule) -> dict[str, torch.Tensor]:
    """The method's parameters, buffers and saved state values, as float64 tensors by name."""
    state: dict[str, torch.Tensor] = {}
    for name, value in module.method.state_dict().items():
        if isinstance(value, torch.Tensor):
            state[name] = value.detach().double().clone()
        elif isinstance(value, dict):  # the method's extra state: {"values": {slot: value}}
            for slot, item in value.get("values", {}).items():
                if isinstance(item, torch.Tensor):
                    state[f"{name}.{slot}"] = item.detach().double().clone()
                elif isinstance(item, (int, float)):
                    state[f"{name}.{slot}"] = torch.tensor(float(item), dtype=torch.float64)
    return state


def flat_parameters(module: MultiTaskModule) -> torch.Tensor:
    """The network's and the method's parameters, flattened."""
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


@contextlib.contextmanager
def recording_draws(draws: list[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[None]:
    """Records GradDrop's sign purity P and its uniform draws U at every call, as torchjd's
    GradDrop computes them, without consuming the generator (its state is put back after the
    peek): a coordinate keeps its positive gradients where P > U."""
    original = _graddrop.GradDrop.forward

    def forward(self, matrix: torch.Tensor, /) -> torch.Tensor:
        if matrix.shape[0] and matrix.shape[1]:
            purity = 0.5 * (torch.ones_like(matrix[0]) + matrix.sum(dim=0) / matrix.abs().sum(dim=0))
            state = torch.get_rng_state()
            uniform = torch.rand(purity.shape, dtype=matrix.dtype, device=matrix.device)
            torch.set_rng_state(state)
            draws.append((purity.detach().double().clone(), uniform.double().clone()))
        return original(self, matrix)

    with mock.patch.object(_graddrop.GradDrop, "forward", forward):
        yield


def run(name: str, world: int, cache: str, out: Path) -> None:
    base, module_class, patch = {**NEGATIVE, **AFFINITY_NEGATIVE}.get(name, (name, MultiTaskModule, contextlib.nullcontext))
    pl.seed_everything(0, verbose=False)
    probe, history = GradientProbe(every_n_steps=PROBE_EVERY), ValidationHistory()
    affinity = TaskAffinity(every_n_steps=PROBE_EVERY)
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=world,
        strategy="ddp" if world > 1 else "auto",
        callbacks=[probe, affinity, history],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out,
    )
    datamodule = SyntheticScenesDataModule(cache_dir=cache, batch_size=GLOBAL_BATCH // world, **RELEASE)
    module = module_class(datamodule.tasks, net=make_net, method=CONFIGS[base](), optimizer=sgd, **MODULE_OPTIONS.get(base, {}))
    initial, draws = flat_parameters(module), []
    with patch(), recording_draws(draws):
        trainer.fit(module, datamodule=datamodule)
    result = {"params": flat_parameters(module)}
    if trainer.is_global_zero:
        result.update(initial=initial, method_state=method_state(module), val=history.history, probes=probe.history)
        result.update(affinity=affinity.history, draws=draws)
    torch.save(result, out / f"{name}-world{world}-rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    cache, out, world = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    for config in sys.argv[4:] or [*CONFIGS, *((*NEGATIVE, *AFFINITY_NEGATIVE) if world > 1 else [])]:
        run(config, world, cache, out)
