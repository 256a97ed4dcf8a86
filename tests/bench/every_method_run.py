"""Trains method configs of configs/method/ (all of them, or the stems given after OUT) for a few
steps on the tiny release, in this process, one after another; each record lands in
OUT/<method>/. Run by test_determinism.py."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

from mtlbench.bench.run.launch import main
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
METHODS = sorted((REPO / "configs" / "method").glob("*.yaml"))

if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # two of these run side by side on two cores
    cache, out, only = sys.argv[1], Path(sys.argv[2]), set(sys.argv[3:])
    for method in (method for method in METHODS if not only or method.stem in only):
        args = tiny_cli_args(cache, out / method.stem, str(REPO / "configs" / "quickstart.yaml"))
        args += ["--data.init_args.num_train=16", "--trainer.max_epochs=2", "--trainer.enable_checkpointing=false"]
        args += [f"--model.method={method}", "--trainer.callbacks.init_args.every_n_steps=1"]
        if main(["fit", *args]) != 0:
            sys.exit(f"{method.stem} failed")
