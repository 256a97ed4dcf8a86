"""The ``mtlbench`` console script: dispatches before importing anything heavy.

``leaderboard`` and ``report`` read run records only and never import torch; ``sweep`` imports the trainer
only when it starts a run; ``data``, ``plot``, ``perf`` and ``gpu-check`` import only what they use; everything else is
LightningCLI (:mod:`mtlbench.bench.run.launch`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from mtlbench.bench.run.console import take_verbose_flag  # torch-free

    args = take_verbose_flag(list(sys.argv[1:] if argv is None else argv))  # so `mtlbench --verbose data ...` dispatches
    light = {
        "leaderboard": "mtlbench.leaderboards.cli",
        "report": "mtlbench.leaderboards.report",
        "sweep": "mtlbench.bench.sweeps.sweep",
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
        from mtlbench.bench.run.launch import guarded

        if args[0] == "data":
            from mtlbench.bench.cli.data import main as tool
        else:
            from mtlbench.bench.sweeps.plot import main as tool
        return guarded(lambda: tool(args[1:]), args)
    from mtlbench.bench.run.launch import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
