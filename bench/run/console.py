"""The console a user sees: mtlbench's own lines, not its libraries' chatter.

By default, before LightningCLI starts, the libraries are quietened where they speak to the
console without need (each narrowly, by logger or by message):

- Lightning's "Seed set to N" (the run record holds the seed) and its "💡 Tip" advertisements;
- huggingface_hub's retry log while timm looks for weights offline (the one line that matters
  comes after: the weights cannot be had);
- torch's deprecation of ``LeafSpec`` raised from inside Lightning's own pytree helper;
- LightningCLI's warning that its ``args`` are meant for use from Python, which is how
  ``mtlbench`` calls it when it has taken ``--verbose`` out and how in-process sweeps run.

``mtlbench --verbose ...`` (or ``MTLBENCH_VERBOSE=1``, which DDP's processes inherit) leaves
everything as the libraries print it.
"""

from __future__ import annotations

import logging
import os
import warnings

VERBOSE_ENV = "MTLBENCH_VERBOSE"
ADVERTISEMENT = "💡 Tip"


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISEMENT)


def take_verbose_flag(args: list[str]) -> list[str]:
    """``args`` without ``--verbose``; when it was there, ``MTLBENCH_VERBOSE=1`` is set (for
    this process and the processes it starts)."""
    if "--verbose" in args:
        os.environ[VERBOSE_ENV] = "1"
    return [arg for arg in args if arg != "--verbose"]


def quiet_libraries() -> None:
    """Quieten the libraries as the module docstring says, unless verbose was asked for."""
    if os.environ.get(VERBOSE_ENV) == "1":
        return
    logging.getLogger("lightning_fabric.utilities.seed").setLevel(logging.WARNING)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropAdvertisements) for existing in logger.filters):
            logger.addFilter(_DropAdvertisements())
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python", category=UserWarning)
