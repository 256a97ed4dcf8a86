"""Benchmarks, behind one entry point: ``mtlbench perf [WHAT] ...``.

- ``steps`` (the default): seconds per training step and peak memory of methods against EW,
  the floor and the naive loop, measured in one process (:mod:`bench.perf.steps`);
- ``comm``: bytes each rank sends per step under DDP, per method family (:mod:`bench.perf.comm`);
- ``probe``: the gradient diagnostics' overhead at their default cadence (:mod:`bench.perf.probe`);
- ``loader``: the data loader's throughput (:mod:`bench.perf.loader`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

COMMANDS = {"steps": "bench.perf.steps", "comm": "bench.perf.comm", "probe": "bench.perf.probe", "loader": "bench.perf.loader"}


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    what = args.pop(0) if args and args[0] in COMMANDS else "steps"
    return importlib.import_module(COMMANDS[what]).main(args) or 0
