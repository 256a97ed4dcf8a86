"""The ``mtlbench`` console script: dispatches before importing anything heavy.

``leaderboard`` and ``report`` read run records only and never import torch; ``sweep`` imports the trainer
only when it starts a run; ``data``, ``plot``, ``perf`` and ``gpu-check`` import only what they use;
``mtlbench --help`` imports nothing; everything else is LightningCLI (:mod:`mtlbench.bench.run.launch`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

USAGE = """usage: mtlbench [--verbose] COMMAND ...

Multi-task learning benchmark: train, sweep and compare ways of combining dense-prediction tasks.

training (LightningCLI; `mtlbench fit --help` lists every option):
  fit                 train a run, then test its selected checkpoint (--config configs/quickstart.yaml)
  validate            evaluate a checkpoint on the validation split
  test                evaluate a checkpoint on the test split
  predict             run a checkpoint's model on data

suite:
  sweep SPEC          methods x optimizers x seeds (+ single-task baselines), resumable
  leaderboard RUNS    tables of a sweep's run records (Delta_m, ranks, costs)
  reproduce BOARD     rerun part of a published board here; which verdicts still hold
  report RUNS         a paper protocol's comparison with its published numbers
  groups RUNS         task groupings from recorded inter-task affinity (Fifty et al. 2021)
  affinity RUNS       the affinity study: predicted vs measured pairs, chosen groupings
  plot RUN_DIR        figures of a run's gradient statistics (or a study's: --study AXIS)
  data check ROOT     check a dataset release and name what is missing
  perf                seconds per step and memory of the methods
  gpu-check           the GPU checks: step times, a DDP fit, determinism

options:
  --verbose           keep the libraries' warnings and info lines
  -h, --help          show this message (COMMAND --help: the command's own)
"""


def main(argv: Sequence[str] | None = None) -> int:
    from mtlbench.bench.run.console import take_verbose_flag  # torch-free

    args = take_verbose_flag(list(sys.argv[1:] if argv is None else argv))  # so `mtlbench --verbose data ...` dispatches
    if args in (["--help"], ["-h"]):  # without LightningCLI's parser (and so without Lightning and torch)
        print(USAGE, end="")
        return 0
    light = {
        "leaderboard": "mtlbench.leaderboards.cli",
        "report": "mtlbench.leaderboards.report",
        "groups": "mtlbench.leaderboards.groups",
        "affinity": "mtlbench.leaderboards.affinity_study",
        "sweep": "mtlbench.bench.sweeps.sweep",
        "reproduce": "mtlbench.bench.sweeps.reproduce",
        "perf": "mtlbench.bench.sweeps.perf",
        "gpu-check": "mtlbench.bench.cli.gpu_check",
    }
    if args[:1] and args[0] in light:
        import importlib

        try:
            return importlib.import_module(light[args[0]]).main(args[1:])
        except (OSError, ValueError) as error:  # a missing or unwritable path, a malformed input: one line
            if os.environ.get("MTLBENCH_DEBUG"):
                raise
            print(f"mtlbench: error: {error}", file=sys.stderr)
            return 2
    if args[:1] in (["data"], ["plot"]):  # the dataset tools and the gradient figures: quiet, errors in one line
        from mtlbench.bench.run.guard import guarded

        if args[0] == "data":
            from mtlbench.bench.cli.data import main as tool
        else:
            from mtlbench.bench.sweeps.plot import main as tool
        return guarded(lambda: tool(args[1:]), args)
    from mtlbench.bench.run.launch import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
