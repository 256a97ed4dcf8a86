"""The ``mtlbench`` commands a user runs on a node, with W gloo processes; run by test_ddp.py.

    python -m tests.bench.ddp_cli CACHE OUT WORLD CHECKPOINT

Through ``mtlbench.bench.run.launch.main``, exactly as the console command: ``fit`` (skipped with 3 processes)
on the whole batch split over the processes, then ``validate`` and ``test`` of CHECKPOINT
(the 1-process fit's), each logging to its own folder under OUT. With 2 processes a last
1-epoch fit keeps the quickstart's BatchNorm, whose per-process statistics the run warns about.
Lightning's DDP launcher starts the other processes on this same command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mtlbench.bench.run.launch import main

REPO = Path(__file__).resolve().parents[2]
RELEASE = {"num_train": 24, "num_val": 9, "num_test": 9, "height": 48, "width": 64}
GLOBAL_BATCH, EPOCHS = 8, 3
PROBE = '[{"class_path": "mtlbench.bench.run.callbacks.GradientProbe", "init_args": {"every_n_steps": 2}}]'


def arguments(cache: str, folder: Path, world: int, batch: int) -> list[str]:
    """The quickstart on a tiny release with GroupNorm (exact across processes), PCGrad and SGD.
    (Adam would turn the float32 rounding of gradients that are about 0 into whole steps of its
    learning rate, whose sign differs between world sizes.)"""
    args = ["--config", str(REPO / "configs" / "quickstart.yaml"), f"--data.init_args.cache_dir={cache}"]
    args += [f"--data.init_args.{key}={value}" for key, value in RELEASE.items()]
    args += [f"--data.init_args.batch_size={batch}", "--model.net.init_args.norm=group"]
    args += ["--model.method", str(REPO / "configs" / "method" / "pcgrad.yaml"), f"--trainer.callbacks={PROBE}"]
    args += ["--model.optimizer", str(REPO / "configs" / "optim" / "sgd.yaml")]
    args += [f"--trainer.logger.init_args.save_dir={folder}", f"--trainer.default_root_dir={folder}", "--trainer.enable_progress_bar=false"]
    return args + ([f"--trainer.devices={world}", "--trainer.strategy=ddp"] if world > 1 else [])


def fit(cache: str, out: Path, world: int) -> int:
    return main(["fit", *arguments(cache, out / f"fit-{world}", world, GLOBAL_BATCH // world), f"--trainer.max_epochs={EPOCHS}"])


def evaluate(cache: str, out: Path, world: int, checkpoint: str) -> int:
    codes = [
        main([command, *arguments(cache, out / f"{command}-{world}", world, 3), f"--ckpt_path={checkpoint}"])
        for command in ("validate", "test")
    ]
    return max(codes)


if __name__ == "__main__":
    cache, out, world, checkpoint = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    code = fit(cache, out, world) if world == 2 else 0
    code = max(code, evaluate(cache, out, world, checkpoint))
    if world == 2:  # the quickstart's BatchNorm: trains, with a warning that the steps are not one process's
        batch_norm = [arg for arg in arguments(cache, out / "batch-norm", world, 4) if arg != "--model.net.init_args.norm=group"]
        code = max(code, main(["fit", *batch_norm, "--trainer.max_epochs=1", "--test_after_fit=false"]))
    sys.exit(code)
