"""Figures and tables of scaling studies.

- :func:`plot_sweep_study`: a study sweep's runs (``axes:`` in the spec): a test metric, or
  Delta_m against the single-task runs of the same setting, against the swept axis; one line
  per method and number of tasks (single-task runs are the STL line), the mean over seeds with
  a band of one standard deviation (error bars where the axis is categorical: relatedness).
- :func:`plot_linear_study`: the exact linear-regression study (:mod:`mtlbench.bench.sweeps.linear_study`):
  test risk against p/n, the median over draws with its interquartile band, on log axes, the
  closed-form STL expectation dashed.

Names from records are drawn as text (:func:`mtlbench.leaderboards.escape.plot_text`), never mathtext.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mtlbench.bench.run.errors import RunFileError
from mtlbench.bench.sweeps.linear_study import Curve, LinearStudy, load_linear_spec, peaks, run_study
from mtlbench.leaderboards.admission import load_admitted_runs
from mtlbench.leaderboards.atomic_write import write_json_atomic, write_png, write_text_atomic
from mtlbench.leaderboards.delta_m import delta_m
from mtlbench.leaderboards.escape import plot_text
from mtlbench.leaderboards.records import Run
from mtlbench.leaderboards.study import CONFIG_AXES, TASK_AXES

DELTA_M = "delta_m"


def _x_value(run: Run, axis: str) -> float | str | None:
    if axis in CONFIG_AXES:
        return run.study.get(axis)
    if axis == "tasks":
        return len(run.tasks)
    return "+".join(run.tasks[1:]) or "none (STL)"  # relatedness: the auxiliary tasks beside the first


def _line(run: Run, axis: str, context: dict) -> str:
    """A run's line: STL, or its method with its task set (as a count where counts tell the sets
    apart; not when the task count is the x axis), plus the values of the other axes that vary."""
    if run.is_single_task:
        name = "STL"
    elif axis in TASK_AXES:  # the x axis tells the task sets apart
        name = run.method
    else:
        name = f"{run.method} ({'+'.join(run.tasks) if context['name_tasks'] else f'{len(run.tasks)} tasks'})"
    if context["several_optimizers"]:
        name += f", {run.optimizer}"
    for other in context["varying"]:
        value = run.study.get(other)
        name += f", {other}={'all' if value is None else format(value, 'g')}"
    return name


def _setting_without(run: Run, axis: str) -> tuple:
    """What a run shares with its single-task baselines: everything but the task sets."""
    return (run.dataset, run.model, run.optimizer, run.lr, run.setting)


def study_series(runs: list[Run], axis: str, metric: str) -> dict[str, dict[float | str, list[float]]]:
    """``{line: {x: [one value per seed]}}`` of ``metric`` (``task/metric`` or ``delta_m``)."""
    usable = [run for run in runs if run.usable]
    task_sets = {run.tasks for run in usable if not run.is_single_task}
    context = {
        "several_optimizers": len({run.optimizer for run in usable}) > 1,
        "name_tasks": len(task_sets) > len({len(tasks) for tasks in task_sets}),
        "varying": [other for other in CONFIG_AXES if other != axis and len({run.study.get(other) for run in usable}) > 1],
    }
    baselines: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in usable:
        if run.is_single_task:
            for key, value in run.test.items():
                baselines[_setting_without(run, axis)][key].append(value)
    series: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for run in usable:
        x = _x_value(run, axis)
        if x is None:
            continue
        if metric == DELTA_M:
            if run.is_single_task:
                continue
            base = {key: statistics.fmean(values) for key, values in baselines[_setting_without(run, axis)].items()}
            if any(key not in base for key in run.test):
                continue
            value = delta_m(run.test, base, run.higher_is_better)
        elif metric in run.test:
            value = run.test[metric]
        else:
            continue
        series[_line(run, axis, context)][x].append(value)
    return series


def _natural(text: str) -> list:
    """Sort key that orders the numbers inside labels by value (train_size=50 before 200)."""
    return [(0, float(part), "") if re.fullmatch(r"\d+(\.\d+)?", part) else (1, 0.0, part) for part in re.split(r"(\d+(?:\.\d+)?)", text)]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def plot_sweep_study(runs_dir: Path, axis: str, metric: str | None, out_dir: Path) -> list[Path]:
    """Write ``study_<axis>_<metric>.png`` and ``.csv`` for the runs under ``runs_dir``."""
    if axis not in (*CONFIG_AXES, *TASK_AXES):
        raise RunFileError(f"unknown study axis {axis!r}; choose one of {', '.join((*CONFIG_AXES, *TASK_AXES))}")
    runs, _ = load_admitted_runs(Path(runs_dir))
    if not any(run.usable for run in runs):
        raise RunFileError(f"{runs_dir} holds no complete run record; run the study's sweep first")
    if metric is None:  # the first metric of the task every run trains
        common = set.intersection(*(set(run.test) for run in runs if run.usable))
        if not common:
            raise RunFileError(f"the runs under {runs_dir} share no test metric; pass --metric delta_m or TASK/METRIC")
        metric = sorted(common)[0]
    series = study_series(runs, axis, metric)
    if not series:
        raise RunFileError(f"no run under {runs_dir} has {metric!r} and a value of the axis {axis!r}")
    numeric = all(isinstance(x, (int, float)) for points in series.values() for x in points)
    categories = sorted({str(x) for points in series.values() for x in points}, key=lambda x: (x != "none (STL)", x))
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    table = [["line", axis, "metric", "mean", "std", "seeds"]]
    for line, points in sorted(series.items(), key=lambda item: _natural(item[0])):
        xs = sorted(points, key=lambda x: x if numeric else str(x))
        stats = [_mean_std(points[x]) for x in xs]
        position = list(xs) if numeric else [categories.index(str(x)) for x in xs]
        mean = [m for m, _ in stats]
        if numeric:
            axes.plot(position, mean, marker="o", markersize=4, label=plot_text(line))
            axes.fill_between(position, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.2)
        else:  # categories: error bars, since a band needs neighbours
            bars = {"yerr": [s for _, s in stats], "marker": "o", "markersize": 5, "capsize": 4, "linestyle": "none"}
            axes.errorbar(position, mean, **bars, label=plot_text(line))
        table += [[line, x, metric, f"{m:.6g}", f"{s:.3g}", len(points[x])] for x, (m, s) in zip(xs, stats, strict=True)]
    values = sorted({x for points in series.values() for x in points}) if numeric else []
    if len(values) > 2 and values[0] > 0:  # sizes and widths grow geometrically: a log axis, ticked at the values
        axes.set_xscale("log", base=2)
        axes.set_xticks(values, [f"{x:g}" for x in values])
        axes.minorticks_off()
    if metric == DELTA_M:
        axes.axhline(0.0, color="black", linewidth=0.8, linestyle="--")
    if not numeric:
        axes.set_xticks(range(len(categories)), [plot_text(c) for c in categories], fontsize=8)
    label = "Delta_m vs STL (%, lower is better)" if metric == DELTA_M else f"test {metric}"
    axes.set(xlabel=plot_text(axis), ylabel=plot_text(label), title=plot_text(f"{label} against {axis}: mean +- std over seeds"))
    axes.title.set_fontsize(9)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"study_{axis}_{metric.replace('/', '_')}"
    png = out_dir / f"{stem}.png"
    write_png(png, figure, 120)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(table)
    write_text_atomic(out_dir / f"{stem}.csv", buffer.getvalue())
    return [png, out_dir / f"{stem}.csv"]


def plot_linear_study(rows: list[dict], study: LinearStudy, panels: dict[str, list[Curve]], png: Path) -> Path:
    """The linear study's figure: one panel per title, risk against p/n."""
    by_curve: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_curve[row["curve"]].append(row)
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for axis, (title, curves) in zip(axes[0], panels.items(), strict=True):
        for curve in curves:
            points = sorted(by_curve[curve.label], key=lambda row: row["ratio"])
            ratios = [row["ratio"] for row in points]
            (line,) = axis.plot(ratios, [row["median"] for row in points], marker="o", markersize=3, label=plot_text(curve.label))
            axis.fill_between(ratios, [row["q25"] for row in points], [row["q75"] for row in points], alpha=0.15, color=line.get_color())
            theory = [(row["ratio"], row["theory"]) for row in points if row["theory"] is not None and math.isfinite(row["theory"])]
            if curve.estimator == "stl" and theory:
                for side in ([t for t in theory if t[0] < 1], [t for t in theory if t[0] > 1]):
                    if side:
                        axis.plot(*zip(*side, strict=True), linestyle="--", color=line.get_color(), linewidth=1)
        axis.axvline(1.0, color="black", linewidth=0.6, linestyle=":")
        axis.set(xscale="log", yscale="log", xlabel="p / n (features per sample of one task)", ylabel="test risk (median over draws)")
        axis.set_title(plot_text(title), fontsize=9)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3, which="both")
    figure.suptitle(
        f"Min-norm least squares: n={study.n} per task, signal {study.signal:g}, noise {study.noise:g}, {study.draws} draws; "
        "bands: quartiles; dashed: closed-form STL expectation",
        fontsize=9,
    )
    figure.tight_layout()
    write_png(png, figure, 110)
    return png


def write_study(spec_path, spec: dict, out_dir) -> list:
    """Run a ``study: linear_regression`` spec; write ``linear.json`` (the rows), ``linear.md``
    (the peaks) and ``linear.png`` into ``out_dir``; returns the paths."""
    study, panels = load_linear_spec(spec_path, spec)
    rows = run_study(study)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "linear.json", {"schema": "mtlbench.linear_study/1", "spec": spec, "rows": rows})
    lines = [
        f"# Double descent of min-norm least squares: n = {study.n} samples per task, {study.draws} draws per point",
        "",
        "| curve | p/n at the peak | peak risk (median) | p/n at the lowest risk | lowest risk |",
        "|---|---|---|---|---|",
        *(f"| {s['curve']} | {s['peak_ratio']:g} | {s['peak']:.3g} | {s['best_ratio']:g} | {s['best']:.3g} |" for s in peaks(rows)),
        "",
    ]
    write_text_atomic(out / "linear.md", "\n".join(lines))
    return [out / "linear.json", out / "linear.md", plot_linear_study(rows, study, panels, out / "linear.png")]
