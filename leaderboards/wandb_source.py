"""Run records from a Weights & Biases project (runs logged with ``mtlbench.bench.run.loggers.WandbRunLogger``
upload their ``results.json``), fetched into a folder the leaderboard then reads like any other."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mtlbench.leaderboards.untrusted import MAX_RECORD_BYTES

RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # what a W&B run id is made of: a folder name, never a path


class WandbSourceError(RuntimeError):
    """The W&B project cannot be read; the message says why and what to do."""


def fetch_records(project: str, destination: Path, group: str | None = None) -> int:
    """Download the run record of every run of ``project`` ("entity/project"), optionally of
    one sweep ``group``, to ``destination/<run id>/results.json``; returns how many."""
    import wandb

    try:
        api = wandb.Api(timeout=60)
        runs = list(api.runs(project, filters={"group": group} if group else {}))
    except Exception as error:  # wandb raises several types for no key, no network, no project
        raise WandbSourceError(
            f"cannot read W&B project '{project}' ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "log in with `wandb login` or set WANDB_API_KEY, and check the entity/project name"
        ) from None
    fetched, skipped = 0, []
    for run in runs:
        if not isinstance(run.id, str) or not RUN_ID.fullmatch(run.id):
            continue  # an id that is not a plain name would place its record outside destination
        sizes = {file.name: getattr(file, "size", None) for file in run.files()}
        if "results.json" not in sizes:
            continue  # a run that never wrote its record: nothing to rank
        size = sizes["results.json"]
        if not isinstance(size, int) or not 0 < size <= MAX_RECORD_BYTES:
            skipped.append(f"W&B run {run.id}: its results.json is {size} bytes, not 1 to {MAX_RECORD_BYTES}; not fetched")
            continue  # the leaderboard would not read it; never fill the disk with it
        run.file("results.json").download(root=str(Path(destination) / run.id), replace=True)
        fetched += 1
    for line in skipped:
        print(f"mtlbench leaderboard: {line}", file=sys.stderr)
    return fetched
