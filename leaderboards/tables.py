"""Leaderboard tables from run records: per-group statistics over seeds, then rendering.

A *board* is one (dataset, model, optimizer) combination, per scaling-study setting and, where
a study varies them, per task set; its rows are the multi-task methods, each at the learning
rate chosen on validation. Single-task runs of the same dataset, model
and optimizer are the baselines: their test metrics, averaged over seeds, are M_b of Delta_m.
Each seed of a method gives one Delta_m; the table shows mean +- sample std over seeds, and
:mod:`mtlbench.leaderboards.verdicts` compares every method with EW's seeds (bootstrap intervals,
Welch's t-test corrected with Holm's method over the board, probability of improvement).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from mtlbench.leaderboards.costs import PerfCosts
from mtlbench.leaderboards.delta_m import delta_m, relative_changes
from mtlbench.leaderboards.records import Run
from mtlbench.leaderboards.selection import best_learning_rate, stl_baseline, validation_delta_m
from mtlbench.leaderboards.verdicts import (
    ALPHA,
    NOT_SHOWN,
    BoardStatistics,
    Comparison,
    SingleTaskStatistics,
    compare_with_reference,
    compare_with_single_task,
)

SIGNIFICANCE = ALPHA
NEGATIVE_TRANSFER = "\u2020"  # dagger: the task is worse than its single-task baseline
NOT_SIGNIFICANT = "\u2248"  # almost equal: Delta_m not shown different from EW (Holm-corrected)


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class Row:
    """One method of one board, summarised over its seeds."""

    method: str
    lr: float | None
    seeds: list[int | None]
    metrics: dict[str, tuple[float, float]]  # "task/metric" -> (mean, std)
    delta_metric: list[float]  # one per seed (metric-weighted)
    delta_task: list[float]  # one per seed (task-weighted)
    task_change: dict[str, float]  # task -> mean relative change in % (positive = worse than STL)
    task_change_seeds: dict[str, list[float]]  # task -> each seed's change (mean over the task's metrics)
    seconds_per_step: float | None
    peak_memory_mb: float | None
    gradients: dict[str, float]
    rank: float = math.nan
    relative_cost: float | None = None
    p_value_vs_ew: float | None = None  # Welch's t-test against EW, uncorrected
    comparison: Comparison | None = None  # against EW: interval, Holm-corrected p, probability of improvement
    interval: tuple[float, float] | None = None  # 95 % bootstrap interval of the mean metric-weighted Delta_m
    runs: list[Run] = field(default_factory=list)  # the seeds' runs, in seed order

    @property
    def label(self) -> str:
        return self.method if self.lr is None else f"{self.method} (lr {self.lr:g})"

    @property
    def not_different_from_ew(self) -> bool:
        return self.comparison is not None and self.comparison.verdict == NOT_SHOWN


@dataclass
class Board:
    dataset: str
    model: str
    optimizer: str
    metrics: list[str]
    higher_is_better: dict[str, bool]
    baseline: dict[str, float]  # test metrics of the single-task baselines
    val_baseline: dict[str, float] = field(default_factory=dict)  # their validation metrics, for selecting
    rows: list[Row] = field(default_factory=list)
    missing_baselines: list[str] = field(default_factory=list)
    cost_source: str = "per-run timings (separate runs: noisy)"  # where the cost columns come from (plain text)
    cost_from_perf: bool = False  # cost_source describes an `mtlbench perf` record
    setting: str = ""  # the scaling-study setting of its runs ("" outside studies)
    tasks: tuple[str, ...] = ()  # the tasks of its multi-task runs, named in the title where a study varies them
    name_tasks: bool = False
    study_order: tuple[float, ...] = ()  # the values of its study axes, to sort settings by
    statistics: BoardStatistics = field(default_factory=BoardStatistics)  # every method against EW
    single_task_seeds: dict[str, list[float]] = field(default_factory=dict)  # "Δm" or task -> each seed's single-task networks'
    against_single_task: SingleTaskStatistics = field(default_factory=SingleTaskStatistics)

    @property
    def title(self) -> str:
        parts = [self.dataset, self.model, self.optimizer, *([self.setting] if self.setting else [])]
        return " / ".join(parts) + (f" / tasks {'+'.join(self.tasks)}" if self.name_tasks else "")


def build_boards(runs: list[Run], stl_optimizer: str | None = None, stl_model: str | None = None) -> list[Board]:
    """Boards of every (dataset, model, optimizer) that has multi-task runs.

    Learning rates are chosen on validation (``mtlbench.leaderboards.selection``): per task for the
    single-task baselines, per method for the rows; a row names its lr when several were run.
    ``stl_optimizer``: the baselines of every board are the single-task runs of this optimizer
    (Elich et al. 2024: SGD's rows against Adam's baselines); by default each optimizer's own.
    ``stl_model``: likewise the single-task runs of this network (Nash-MTL's MTAN rows against
    single-task SegNets); by default the board's own.
    """
    usable = [run for run in runs if run.usable]
    single: dict[tuple[str, str, str, str], list[Run]] = defaultdict(list)
    groups: dict[tuple[str, str, str, str, tuple[str, ...], str], list[Run]] = defaultdict(list)
    for run in usable:
        key = (run.dataset, run.model, run.optimizer, run.setting)
        if run.is_single_task:
            single[key].append(run)
        else:
            groups[(*key, run.tasks, run.method)].append(run)
    boards: dict[tuple[str, str, str, str, tuple[str, ...]], Board] = {}
    for (dataset, model, optimizer, setting, tasks, method), candidates in sorted(groups.items()):
        key = (dataset, model, optimizer, setting, tasks)
        if key not in boards:
            baselines = single.get((dataset, stl_model or model, stl_optimizer or optimizer, setting), [])
            test_baseline, chosen = stl_baseline(baselines, "test")
            val_baseline, _ = stl_baseline(baselines, "val")
            metrics = sorted({metric for run in candidates for metric in run.test})
            boards[key] = Board(dataset, model, optimizer, metrics, dict(candidates[0].higher_is_better), test_baseline, val_baseline)
            boards[key].setting, boards[key].tasks = setting, tasks
            boards[key].study_order = tuple(-math.inf if value is None else value for value in candidates[0].study.values())
            boards[key].missing_baselines = [metric for metric in metrics if metric not in test_baseline]
            if not boards[key].missing_baselines:
                boards[key].single_task_seeds = _single_task_seeds(
                    boards[key], [run for run in baselines if run.lr == chosen[run.tasks[0]]]
                )
        board = boards[key]

        def score(run: Run, board: Board = board) -> float | None:
            return validation_delta_m(run, board.val_baseline) if board.val_baseline else run.select

        lr = best_learning_rate(candidates, score)
        several = len({run.lr for run in candidates}) > 1
        board.rows.append(_row(method, lr if several else None, [run for run in candidates if run.lr == lr], board))
    task_sets = defaultdict(set)
    for key in boards:
        task_sets[key[:4]].add(key[4])
    for key, board in boards.items():
        board.name_tasks = len(task_sets[key[:4]]) > 1
        _rank_and_compare(board)
    # study settings in the order of their values (train_size 50 before 400), not as text
    return [boards[key] for key in sorted(boards, key=lambda key: (*key[:3], boards[key].study_order, key[3], key[4]))]


def _task_changes(test: dict[str, float], board: Board, higher_is_better: dict[str, bool]) -> dict[str, float]:
    """Each task's change against the single-task baselines, the mean over its metrics (%)."""
    per_task = defaultdict(list)
    for metric, change in relative_changes(test, board.baseline, higher_is_better).items():
        per_task[metric.split("/")[0]].append(change)
    return {task: statistics.fmean(values) for task, values in per_task.items()}


def _single_task_seeds(board: Board, chosen: list[Run]) -> dict[str, list[float]]:
    """Per seed that trained every task alone (at the chosen learning rates): the Δm of those
    single-task networks taken together, and each task's change, against the baselines (their
    mean over seeds), i.e. the seed-to-seed spread of what every method is compared with."""
    by_seed: dict[int | None, dict[str, float]] = defaultdict(dict)
    for run in chosen:
        by_seed[run.seed].update({metric: value for metric, value in run.test.items() if metric in board.metrics})
    seeds: dict[str, list[float]] = defaultdict(list)
    for seed in sorted(seed for seed, test in by_seed.items() if seed is not None and set(test) == set(board.metrics)):
        seeds["Δm"].append(delta_m(by_seed[seed], board.baseline, board.higher_is_better))
        for task, change in _task_changes(by_seed[seed], board, board.higher_is_better).items():
            seeds[task].append(change)
    return dict(seeds)


def _row(method: str, lr: float | None, members: list[Run], board: Board) -> Row:
    members = sorted(members, key=lambda run: (run.seed is None, run.seed))
    metrics = {metric: _mean_std([run.test[metric] for run in members if metric in run.test]) for metric in board.metrics}
    delta_metric, delta_task, changes, seed_changes = [], [], defaultdict(list), defaultdict(list)
    if not board.missing_baselines:
        task_of = {metric: metric.split("/")[0] for metric in board.metrics}
        for run in members:
            delta_metric.append(delta_m(run.test, board.baseline, run.higher_is_better))
            delta_task.append(delta_m(run.test, board.baseline, run.higher_is_better, task_of=task_of))
            for metric, change in relative_changes(run.test, board.baseline, run.higher_is_better).items():
                changes[task_of[metric]].append(change)
            for task, change in _task_changes(run.test, board, run.higher_is_better).items():
                seed_changes[task].append(change)
    costs = [run.seconds_per_step for run in members if run.seconds_per_step is not None]
    memories = [run.peak_memory_mb for run in members if run.peak_memory_mb is not None]
    gradient_keys = sorted({key for run in members for key in run.gradients})
    return Row(
        method=method,
        lr=lr,
        seeds=[run.seed for run in members],
        metrics=metrics,
        delta_metric=delta_metric,
        delta_task=delta_task,
        task_change={task: statistics.fmean(values) for task, values in changes.items()},
        task_change_seeds=dict(seed_changes),
        runs=members,
        seconds_per_step=statistics.median(costs) if costs else None,
        peak_memory_mb=max(memories) if memories else None,
        gradients={key: statistics.fmean(run.gradients[key] for run in members if key in run.gradients) for key in gradient_keys},
    )


def _rank_and_compare(board: Board) -> None:
    """Mean rank over metrics, cost relative to EW, and every method's Delta_m against EW's
    (:func:`mtlbench.leaderboards.verdicts.compare_with_reference`)."""
    for metric in board.metrics:
        up = board.higher_is_better.get(metric, True)
        ordered = sorted(board.rows, key=lambda row: -row.metrics[metric][0] if up else row.metrics[metric][0])
        for position, row in enumerate(ordered, start=1):
            row.rank = (0.0 if math.isnan(row.rank) else row.rank) + position / len(board.metrics)
    ew = next((row for row in board.rows if row.method == "EW"), None)
    for row in board.rows:
        if ew is not None and ew.seconds_per_step and row.seconds_per_step:
            row.relative_cost = row.seconds_per_step / ew.seconds_per_step
    if not board.missing_baselines and len(board.rows) > 1:
        board.statistics = compare_with_reference({row.method: row.delta_metric for row in board.rows})
        for row in board.rows:
            row.interval = board.statistics.intervals.get(row.method)
            row.comparison = board.statistics.comparisons.get(row.method)
            row.p_value_vs_ew = row.comparison.p_value if row.comparison else None
    if board.single_task_seeds:
        quantities = {row.method: {"Δm": row.delta_metric, **row.task_change_seeds} for row in board.rows}
        board.against_single_task = compare_with_single_task(quantities, board.single_task_seeds)

    def order(row: Row) -> tuple[float, str]:
        mean = _mean_std(row.delta_metric)[0]
        return (math.inf if math.isnan(mean) else mean, row.label)

    board.rows.sort(key=order)


def apply_perf_costs(boards: list[Board], perfs: list[PerfCosts]) -> None:
    """Take each board's cost columns from the perf record of its model, where one is given:
    the ratio to EW and the peak memory measured in one run, instead of per-run timings."""
    for board in boards:
        perf = next((p for p in perfs if p.backbone == board.model), None)
        if perf is None:
            continue
        board.cost_source, board.cost_from_perf = perf.source, True
        for row in board.rows:
            cost = perf.methods.get(row.method)
            row.relative_cost = cost.x_ew if cost else None
            row.peak_memory_mb = cost.peak_memory_mb if cost else None


def optimizer_comparison(boards: list[Board]) -> dict[tuple[str, str], dict[str, dict[str, tuple[float, int]]]]:
    """(dataset, model) -> method -> optimizer -> (mean Delta_m, rank by Delta_m)."""
    out: dict[tuple[str, str], dict[str, dict[str, tuple[float, int]]]] = defaultdict(lambda: defaultdict(dict))
    for board in boards:
        scored = [(row, _mean_std(row.delta_metric)[0]) for row in board.rows if row.delta_metric]
        for rank, (row, value) in enumerate(sorted(scored, key=lambda item: item[1]), start=1):
            out[(board.dataset, board.model)][row.method][board.optimizer] = (value, rank)
    return out
