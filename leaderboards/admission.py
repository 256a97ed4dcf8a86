"""Which runs a board admits: each run once, and only runs that fit the board's schema.

Records come from many hands (a copied run folder, a colleague's sweep, a W&B project), and one
odd record must never move a board. Two rules, applied to the usable runs before any board is
built; a run that breaks one is listed in "Runs left out" with the reason:

- **once**: runs with the same dataset, model, optimizer, study setting, tasks, method, learning
  rate and seed are one run; the first by path is admitted, every other is a duplicate of it
  (a copied folder would otherwise count as one more seed).
- **one schema per task**: every run measures a task with the same metrics in the same
  directions. The schema of a task comes from its single-task baselines (the runs that define
  Delta_m's reference), else from the most common signature among the runs that have the task;
  the source is named in each reason. A run with another metric set or a flipped direction is
  left out instead of dropping or reordering Delta_m for its whole board.
- **a reference to divide by**: Delta_m divides by the single-task baselines, so a single-task
  run whose test metric is 0, or below float32's smallest normal number (metrics are computed
  in float32: nothing real lands there), is left out instead of making its board's relative
  changes undefined or overflow.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from mtlbench.leaderboards.records import Run, load_runs

Signature = tuple[tuple[str, bool], ...]  # (metric, higher is better), sorted


def _signature(run: Run, task: str) -> Signature:
    metrics = sorted(key.split("/", 1)[1] for key in run.test if key.split("/", 1)[0] == task)
    return tuple((metric, run.higher_is_better.get(f"{task}/{metric}", True)) for metric in metrics)


def _shown(signature: Signature) -> str:
    return ", ".join(f"{metric} ({'higher' if up else 'lower'})" for metric, up in signature) or "none"


def _schemas(runs: list[Run]) -> dict[tuple[str, str], tuple[Signature, str]]:
    """(dataset, task) -> the task's signature and where it comes from."""
    single: dict[tuple[str, str], Counter] = defaultdict(Counter)
    every: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for run in runs:
        for task in run.tasks:
            (single if run.is_single_task else every)[(run.dataset, task)][_signature(run, task)] += 1
    schemas = {}
    for key in sorted(set(single) | set(every)):
        votes, source = (single[key], "single-task baselines") if key in single else (every[key], "runs")
        signature, count = sorted(votes.items(), key=lambda item: (-item[1], item[0]))[0]
        schemas[key] = (signature, f"as {count} of its {sum(votes.values())} {source}")
    return schemas


def _misfit(run: Run, schemas: dict[tuple[str, str], tuple[Signature, str]]) -> str:
    """Why ``run`` does not fit its tasks' schemas ('' when it does)."""
    for task in run.tasks:
        signature, source = schemas[(run.dataset, task)]
        mine = _signature(run, task)
        if mine == signature:
            continue
        wanted, held = dict(signature), dict(mine)
        flipped = sorted(metric for metric in wanted.keys() & held.keys() if wanted[metric] != held[metric])
        if flipped and wanted.keys() == held.keys():
            metric = flipped[0]
            ways = ("higher" if held[metric] else "lower", "higher" if wanted[metric] else "lower")
            return f"{task}/{metric} says {ways[0]} is better, the board {ways[1]} ({source}): not comparable"
        return f"{task} measured by {_shown(mine)}, the board by {_shown(signature)} ({source}): not comparable"
    extra = sorted(key for key in run.val if key not in run.test)
    if extra:
        return f"validation metric {extra[0]} is not among its test metrics: not comparable"
    return ""


FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # 1.18e-38


def _no_reference(run: Run) -> str:
    """Why a single-task run cannot be a baseline to divide by ('' when it can)."""
    for metric, value in sorted(run.test.items()):
        if abs(value) < FLOAT32_TINY:
            return f"its test {metric} is {value:g}: Delta_m divides by the single-task baseline, which cannot be 0 or subnormal"
    return ""


def load_admitted_runs(root: Path, test_metrics: str = "selected") -> tuple[list[Run], list[str]]:
    """:func:`mtlbench.leaderboards.records.load_runs`, then :func:`admit`: what every table reads."""
    runs, problems = load_runs(root, test_metrics)
    return admit(runs), problems


def admit(runs: list[Run]) -> list[Run]:
    """``runs`` with every usable run that breaks a rule marked ``left_out`` (its reason);
    the others unchanged, in the same order."""
    usable = sorted((run for run in runs if run.usable), key=lambda run: run.path.parts)
    reasons: dict[int, str] = {}
    first: dict[tuple, Run] = {}
    for run in usable:
        key = (run.dataset, run.model, run.optimizer, run.setting, run.tasks, run.method, run.lr, run.seed)
        if key in first:
            reasons[id(run)] = f"duplicate of {first[key].path} (same method, optimizer, lr, seed and setting)"
        else:
            first[key] = run
    schemas = _schemas([run for run in usable if id(run) not in reasons])
    for run in usable:
        if id(run) not in reasons and (why := _misfit(run, schemas) or (_no_reference(run) if run.is_single_task else "")):
            reasons[id(run)] = why
    return [replace(run, left_out=reasons[id(run)]) if id(run) in reasons else run for run in runs]
