"""Selection on the validation split only: the test set is evaluated once per run (PROTOCOL.md).

- Epoch: each run tests the checkpoint of its lowest ``val/select``, chosen while it trains: the
  validation Delta_m against the single-task baselines for multi-task runs of a sweep, the
  summed validation loss for single-task runs (and for runs given no baselines).
- Single-task baseline of a task: among its learning rates, the one whose seeds reach the
  lowest mean validation loss; the baseline is the mean over those seeds of their metrics at
  their selected epochs (validation metrics for selecting, test metrics for Delta_m).
- Learning rate of a method: the one whose seeds have the lowest mean validation Delta_m
  against the validation baselines (the mean selection score when there are none).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable

from mtlbench.leaderboards.delta_m import delta_m
from mtlbench.leaderboards.records import Run


def _score(values: Iterable[float | None]) -> float:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    return statistics.fmean(finite) if finite else math.inf


def best_learning_rate(runs: Iterable[Run], score) -> float | None:
    """The learning rate whose runs have the lowest mean ``score(run)`` (ties: the smaller lr)."""
    by_lr: dict[float | None, list[float | None]] = defaultdict(list)
    for run in runs:
        by_lr[run.lr].append(score(run))
    if not by_lr:
        return None
    return min(by_lr, key=lambda lr: (_score(by_lr[lr]), math.inf if lr is None else lr))


def stl_baseline(single_task_runs: Iterable[Run], split: str) -> tuple[dict[str, float], dict[str, float | None]]:
    """Baseline values ``{"task/metric": value}`` on ``split`` ('val' or 'test') from single-task
    runs of one dataset, model and optimizer, and the learning rate chosen for each task."""
    by_task: dict[str, list[Run]] = defaultdict(list)
    for run in single_task_runs:
        by_task[run.tasks[0]].append(run)
    baseline: dict[str, float] = {}
    chosen: dict[str, float | None] = {}
    for task, runs in sorted(by_task.items()):
        lr = best_learning_rate(runs, lambda run: run.select)
        chosen[task] = lr
        members = [run for run in runs if run.lr == lr]
        for metric in sorted({metric for run in members for metric in getattr(run, split)}):
            values = [getattr(run, split)[metric] for run in members if metric in getattr(run, split)]
            baseline[metric] = statistics.fmean(values)
    return baseline, chosen


def validation_delta_m(run: Run, val_baseline: dict[str, float]) -> float | None:
    """The run's validation Delta_m at its selected epoch, or None without the needed values."""
    if not run.val or any(metric not in val_baseline or val_baseline[metric] == 0 for metric in run.val):
        return None
    if not all(math.isfinite(value) for value in run.val.values()):
        return math.inf
    return delta_m(run.val, val_baseline, run.higher_is_better)


def baseline_table(baseline: dict[str, float]) -> dict[str, dict[str, float]]:
    """``{"task/metric": v}`` -> ``{task: {metric: v}}``, the layout of ``selection_baseline`` files."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in baseline.items():
        task, metric = key.split("/", 1)
        table[task][metric] = value
    return dict(table)
