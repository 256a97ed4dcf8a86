"""Base of the real datasets: a release on local disk, found by argument or environment variable."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtlbench.datamodules.base import DenseDataModule
from mtlbench.datamodules.errors import DatasetError


class LocalReleaseDataModule(DenseDataModule):
    """A preprocessed release the user downloaded: nothing is fetched, a missing root is an error
    that names the argument, the environment variable and the expected layout.

    ``num_val=None`` holds out the dataset's standard number of validation images
    (``standard_num_val``).
    """

    root_env: str = ""
    standard_num_val: int = 0

    def __init__(
        self,
        root: str | None = None,
        tasks: Sequence[str] | None = None,
        num_val: int | None = None,
        augment: bool = True,
        color_jitter: float = 0.0,
        batch_size: int = 8,
        num_workers: int = 4,
        pin_memory: bool | None = None,
        **study: Any,
    ) -> None:
        """``study``: the scaling-study settings of :class:`DenseDataModule` (``train_size``,
        ``label_noise``, ``noisy_task``, ``missing_input``, ``missing_mode``, ``missing_patch``)."""
        super().__init__(
            tasks=tasks,
            num_val=self.standard_num_val if num_val is None else num_val,
            augment=augment,
            color_jitter=color_jitter,
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            **study,
        )
        self._root = root

    @property
    def root(self) -> Path:
        given = self._root or os.environ.get(self.root_env)
        if not given:
            raise DatasetError(
                f"{type(self).__name__}: no dataset root; pass --data.init_args.root PATH or set {self.root_env}"
                f" (expected layout: {self.spec.layout_hint})"
            )
        return Path(given).expanduser()
