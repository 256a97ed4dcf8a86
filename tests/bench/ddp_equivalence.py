"""Trains every method of the DDP exactness test on fixed batches, with 1 or 2 processes.

    python -m tests.bench.ddp_equivalence OUT WORLD [CONFIG ...]

With WORLD=1 each step sees the whole batch of 8 samples; with WORLD=2 (gloo DDP on CPU,
launched by Lightning) rank r sees samples 4r..4r+3 of the same batch. The network uses
GroupNorm (per-sample normalisation: torch's SyncBatchNorm has no CPU path), so the two runs
should take the same steps. Rank 0 writes the final parameters and the gradient-probe history
of every config to OUT/<config>-world<WORLD>.pt; rank 1 writes its parameters too, so the test
can check that the ranks agree.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from bench.callbacks import GradientProbe
from bench.methods import (
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
from bench.module import MultiTaskModule
from datamodules.tasks import depth_task, normal_task, segmentation_task
from models import MultiTaskNet

TASKS = [segmentation_task(4), depth_task(), normal_task()]
GLOBAL_BATCH, STEPS_PER_EPOCH, EPOCHS, SIZE = 8, 2, 3, 32

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
CONFIGS = {
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


def batches() -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Fixed global batches with ignored pixels in every task, unevenly spread over samples."""
    generator = torch.Generator().manual_seed(1234)
    out = []
    for _ in range(STEPS_PER_EPOCH):
        images = torch.randn(GLOBAL_BATCH, 3, SIZE, SIZE, generator=generator)
        labels = torch.randint(-1, 4, (GLOBAL_BATCH, SIZE, SIZE), generator=generator)
        depth = torch.rand(GLOBAL_BATCH, 1, SIZE, SIZE, generator=generator) * 5
        depth[depth < 0.5 + 0.5 * torch.arange(GLOBAL_BATCH).view(-1, 1, 1, 1) / GLOBAL_BATCH] = 0  # fewer valid pixels later on
        normal = torch.nn.functional.normalize(torch.randn(GLOBAL_BATCH, 3, SIZE, SIZE, generator=generator), dim=1)
        normal[:, :, : SIZE // 4] = 0
        out.append((images, {"segmentation": labels, "depth": depth, "normal": normal}))
    return out


class Shards(Dataset):
    """Batch ``i`` of :func:`batches`, or this rank's half of it."""

    def __init__(self, world: int, rank: int) -> None:
        self.items = batches()
        self.world, self.rank = world, rank

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        images, targets = self.items[index]
        part = slice(self.rank * GLOBAL_BATCH // self.world, (self.rank + 1) * GLOBAL_BATCH // self.world)
        return images[part], {name: target[part] for name, target in targets.items()}


def make_net(tasks):
    return MultiTaskNet(tasks, backbone="test_resnet", decoder_channels=8, norm="group")


def sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def run(name: str, world: int, out: Path) -> None:
    pl.seed_everything(0, verbose=False)
    probe = GradientProbe(every_n_steps=2)
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=world,
        strategy="ddp" if world > 1 else "auto",
        use_distributed_sampler=False,
        callbacks=[probe],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=out,
    )
    module = MultiTaskModule(TASKS, net=make_net, method=CONFIGS[name](), optimizer=sgd, **MODULE_OPTIONS.get(name, {}))
    loader = DataLoader(Shards(world, trainer.global_rank), batch_size=None, shuffle=False)
    initial = flat_parameters(module)
    trainer.fit(module, train_dataloaders=loader)
    result = {"initial": initial, "params": flat_parameters(module), "probes": probe.history}
    torch.save(result, out / f"{name}-world{world}-rank{trainer.global_rank}.pt")


def flat_parameters(module: MultiTaskModule) -> torch.Tensor:
    """The network's and the method's parameters, flattened."""
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    out, world = Path(sys.argv[1]), int(sys.argv[2])
    for name in sys.argv[3:] or CONFIGS:
        run(name, world, out)
