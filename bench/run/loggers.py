"""Weights & Biases for benchmark runs, on top of Lightning's ``WandbLogger``."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger

WANDB_HOST = "api.wandb.ai"


def has_wandb_credentials() -> bool:
    """Whether W&B could log in without asking: ``WANDB_API_KEY`` or a netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(WANDB_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbRunLogger(WandbLogger):
    """Lightning's ``WandbLogger`` as a benchmark run needs it.

    - offline when no credentials are found (``offline: null``, the default), so a run never
      blocks on a login prompt; ``wandb sync`` uploads it later;
    - tagged ``method:…``, ``optimizer:…``, ``seed:…``, ``dataset:…`` and ``stl``/``mtl``, with
      the resolved config, from the run record (:meth:`describe_run`);
    - the run record ``results.json`` uploaded with the run (:meth:`attach_record`);
    - finished when the run ends (:meth:`finish`), so the next run of an in-process sweep gets
      its own W&B run instead of reusing this one.

    Args:
        project, entity, group, name, tags: as ``wandb.init``; sweeps set ``group`` to the sweep.
        save_dir: where W&B keeps its files (``<save_dir>/wandb``).
        offline: ``None`` decides from the credentials; ``True``/``False`` force it.
    """

    def __init__(
        self,
        project: str = "mtlbench",
        entity: str | None = None,
        group: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        save_dir: str = "runs",
        offline: bool | None = None,
    ) -> None:
        self.resolved_offline = not has_wandb_credentials() if offline is None else offline
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(
            name=name,
            save_dir=save_dir,
            project=project,
            offline=self.resolved_offline,
            entity=entity,
            group=group,
            tags=list(tags or []),
        )

    def describe_run(self, record: dict[str, Any]) -> None:
        """Tags and config from a fresh run record (called by ``RunRecord`` when a run starts);
        the record gets the W&B run's identity (``wandb``: entity, project, id, and the URL of an
        online run), so the leaderboard site can link to it."""
        tasks = [task["name"] for task in (record.get("dataset") or {}).get("tasks", [])]
        tags = [
            f"method:{(record.get('method') or {}).get('name')}",
            f"optimizer:{(record.get('optimizer') or {}).get('name')}",
            f"seed:{record.get('seed')}",
            f"dataset:{(record.get('dataset') or {}).get('name')}",
            "stl" if len(tasks) == 1 else "mtl",
        ]
        run = self.experiment
        run.tags = tuple(dict.fromkeys([*run.tags, *(tag[:64] for tag in tags)]))
        run.config.update({"mtlbench": record.get("config") or {}, "tasks": tasks}, allow_val_change=True)
        url = None if self.resolved_offline else getattr(run, "url", None)
        record["wandb"] = {"entity": run.entity or None, "project": run.project, "id": run.id, "url": url, "offline": self.resolved_offline}

    def attach_record(self, path: Path) -> None:
        """Upload the run record with the run (its final state: call it after the last write)."""
        self.experiment.save(str(path), base_path=str(Path(path).parent), policy="now")

    def finish(self, exit_code: int = 0) -> None:
        if self._experiment is not None:
            self._experiment.finish(exit_code=exit_code)
