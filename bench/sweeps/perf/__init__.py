"""Benchmarks, behind one entry point: ``mtlbench perf [WHAT] ...``.

- ``steps`` (the default): seconds per training step and peak memory of methods against EW,
  the floor and the naive loop, measured in one process (:mod:`mtlbench.bench.sweeps.perf.steps`);
- ``comm``: bytes each rank sends per step under DDP, per method family (:mod:`mtlbench.bench.sweeps.perf.comm`);
- ``probe``: the gradient diagnostics' overhead at their default cadence (:mod:`mtlbench.bench.sweeps.perf.probe`);
- ``affinity``: the task affinity's overhead at its default cadence (the same module, ``mtlbench perf affinity``);
- ``loader``: the data loader's throughput (:mod:`mtlbench.bench.sweeps.perf.loader`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

COMMANDS = {
    "steps": "mtlbench.bench.sweeps.perf.steps",
    "comm": "mtlbench.bench.sweeps.perf.comm",
    "probe": "mtlbench.bench.sweeps.perf.probe",
    "affinity": "mtlbench.bench.sweeps.perf.probe",
    "loader": "mtlbench.bench.sweeps.perf.loader",
}


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    what = args.pop(0) if args and args[0] in COMMANDS else "steps"
    module = importlib.import_module(COMMANDS[what])
    return (module.main(args, observer="affinity") if what == "affinity" else module.main(args)) or 0
