"""Two CPU processes (gloo DDP) training EW with the gradient probe; run by test_ddp.py."""

import json
import sys
import warnings
from pathlib import Path

import pytorch_lightning as pl

from bench.callbacks import GradientProbe, RunRecord
from bench.module import MultiTaskModule
from datamodules import SyntheticScenesDataModule
from models import MultiTaskNet


def make_net(tasks):
    return MultiTaskNet(tasks, backbone="test_resnet", decoder_channels=8)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    cache, out = sys.argv[1], Path(sys.argv[2])
    pl.seed_everything(0)
    datamodule = SyntheticScenesDataModule(cache_dir=cache, num_train=48, num_val=8, num_test=8, height=48, width=64, batch_size=8)
    probe = GradientProbe(every_n_steps=1)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        callbacks=[probe, RunRecord(str(out / "results.json"))],
        logger=pl.loggers.CSVLogger(out),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(MultiTaskModule(datamodule.tasks, net=make_net), datamodule=datamodule)
    if trainer.is_global_zero:
        (out / "probe.json").write_text(json.dumps({"world_size": trainer.world_size, "probes": probe.history}))
