"""The ``mtlbench`` console script: dispatches before importing anything heavy.

``leaderboard`` and ``report`` read run records only and never import torch; ``sweep`` imports the trainer
only when it starts a run; ``data``, ``plot`` and ``perf`` import only what they use; everything else is
LightningCLI (:mod:`bench.cli`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    light = {"leaderboard": "leaderboards.cli", "report": "leaderboards.report", "sweep": "bench.sweep", "perf": "bench.perf"}
    if args[:1] and args[0] in light:
        import importlib

        try:
            return importlib.import_module(light[args[0]]).main(args[1:])
        except (OSError, ValueError) as error:  # a missing or unwritable path, a malformed input: one line
            if os.environ.get("MTLBENCH_DEBUG"):
                raise
            print(f"mtlbench: error: {error}", file=sys.stderr)
            return 2
    from bench.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
