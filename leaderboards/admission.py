"""Which runs a board admits: each run once, and only runs that fit the board's schema.

Records come from many hands (a copied run folder, a colleague's sweep, a W&B project), and one
odd record must never move a board. The rules below apply to the usable runs before any board is
built; a run that breaks one is listed in "Runs left out" with the reason:

- **once**: runs with the same dataset, model, optimizer, study setting, tasks, method, learning
  rate and seed are one run; the first by path is admitted, every other is a duplicate of it
  (a copied folder would otherwise count as one more seed). So are runs of the same
  configuration under different seeds whose test metrics, selected validation metrics and
  selection score are all exactly equal: a copied folder with its seed edited (two seeds that
  really ran never agree to the last bit on every metric).
- **one schema per task**: every run measures a task with the same metrics in the same
  directions. The schema of a task comes from its single-task baselines (the runs that define
  Delta_m's reference), else from the most common signature among the runs that have the task;
  the source is named in each reason. A run with another metric set or a flipped direction is
  left out instead of dropping or reordering Delta_m for its whole board.
- **a reference to divide by**: Delta_m divides by the single-task baselines, so a single-task
  run whose test metric is 0, or below float32's smallest normal number (metrics are computed
  in float32: nothing real lands there), is left out instead of making its board's relative
  changes undefined or overflow. Seeds of one baseline (same task, learning rate and the rest)
  whose metric takes both signs could average to 0 as well: where they do, the seeds with the
  other sign than the first by path are left out.
"""

from __future__ import annotations

import math
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


def _sign_conflicts(runs: list[Run]) -> dict[int, str]:
    """Single-task runs left out because their baseline's seeds average to a value Delta_m
    cannot divide by: id(run) -> reason."""
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.dataset, run.model, run.optimizer, run.setting, run.tasks, run.lr)].append(run)
    reasons: dict[int, str] = {}
    for seeds in groups.values():
        first = seeds[0]
        for metric in sorted(first.test):
            values = [run.test[metric] for run in seeds if metric in run.test]
            if abs(math.fsum(values) / len(values)) >= FLOAT32_TINY:
                continue
            for run in seeds[1:]:
                value = run.test.get(metric)
                if value is not None and (value > 0) != (first.test[metric] > 0) and id(run) not in reasons:
                    reasons[id(run)] = (
                        f"its test {metric} is {value:g}, of the other sign than {first.path}'s {first.test[metric]:g}: "
                        "their mean, the baseline Delta_m divides by, would be 0"
                    )
    return reasons


def load_admitted_runs(root: Path, test_metrics: str = "selected") -> tuple[list[Run], list[str]]:
    """:func:`mtlbench.leaderboards.records.load_runs`, then :func:`admit`: what every table reads."""
    runs, problems = load_runs(root, test_metrics)
    return admit(runs), problems


def _results(run: Run) -> tuple:
    """What a run measured: equal for two seeds only where one is a copy of the other."""
    return tuple(sorted(run.test.items())), tuple(sorted(run.val.items())), run.select


def admit(runs: list[Run]) -> list[Run]:
    """``runs`` with every usable run that breaks a rule marked ``left_out`` (its reason);
    the others unchanged, in the same order."""
    usable = sorted((run for run in runs if run.usable), key=lambda run: run.path.parts)
    reasons: dict[int, str] = {}
    first: dict[tuple, Run] = {}
    measured: dict[tuple, Run] = {}
    for run in usable:
        configuration = (run.dataset, run.model, run.optimizer, run.setting, run.tasks, run.method, run.lr)
        key, content = (*configuration, run.seed), (*configuration, _results(run))
        if key in first:
            reasons[id(run)] = f"duplicate of {first[key].path} (same method, optimizer, lr, seed and setting)"
        elif content in measured:
            original = measured[content]
            reasons[id(run)] = (
                f"same configuration and metrics as {original.path} (seed {original.seed}): a copy with its seed edited, counted once"
            )
        else:
            first[key], measured[content] = run, run
    schemas = _schemas([run for run in usable if id(run) not in reasons])
    for run in usable:
        if id(run) not in reasons and (why := _misfit(run, schemas) or (_no_reference(run) if run.is_single_task else "")):
            reasons[id(run)] = why
    reasons.update(_sign_conflicts([run for run in usable if run.is_single_task and id(run) not in reasons]))
    return [replace(run, left_out=reasons[id(run)]) if id(run) in reasons else run for run in runs]
