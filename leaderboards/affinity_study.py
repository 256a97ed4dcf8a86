"""``mtlbench affinity RUNS --out DIR``: does recorded inter-task affinity predict which tasks train
well together? (Fifty et al., NeurIPS 2021, checked on a sweep of ``configs/sweeps/study_affinity.yaml``.)

The sweep trains, per seed, one network on all T tasks (recording ``task_affinity``), every
pair of tasks, every task alone, and the groupings ``mtlbench groups`` chose. From its records:

- ``pairs.csv``: for every pair and seed, the three predictors the all-task run of that seed
  recorded (the affinity symmetrised, ``(Z_ij + Z_ji) / 2``; the gradient cosine; the magnitude
  similarity) and the pair network's measured Delta_m (%, against the single-task baselines'
  mean over seeds, on the pair's metrics; lower is better);
- ``correlations.csv``: per predictor and seed, Spearman's rank correlation between the
  predictor and the pair's benefit (``-Delta_m``): 1 when it orders the pairs as training does;
- ``groupings.csv``: per seed, the Delta_m over every task's metrics of the single-task
  networks, the all-in-one network, and the groupings of at most B networks chosen from the
  affinity averaged over seeds (each task's metrics from the network that trained it);
- ``affinity_study.png`` and ``affinity_study.md``: the figure and the tables.

Records are data from others: read bounded and validated (:mod:`mtlbench.leaderboards.records`),
names escaped where rendered.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mtlbench.leaderboards.atomic_write import write_atomic, write_text_atomic
from mtlbench.leaderboards.delta_m import delta_m
from mtlbench.leaderboards.escape import csv_text, markdown_text, plot_text
from mtlbench.leaderboards.groups import best_groupings
from mtlbench.leaderboards.records import Run, load_runs, read_record
from mtlbench.leaderboards.selection import stl_baseline

PREDICTORS = ("affinity", "cos", "mag_sim")
LABELS = {"affinity": "affinity (symmetrised)", "cos": "gradient cosine", "mag_sim": "magnitude similarity"}


@dataclass
class Study:
    """What the sweep's records hold, by seed."""

    tasks: tuple[str, ...]
    baseline: dict[str, float]  # "task/metric" -> the single-task runs' mean test value
    directions: dict[str, bool]
    by_tasks: dict[tuple[tuple[str, ...], int], Run]  # (sorted task set, seed) -> run
    predictors: dict[int, dict[str, list[list[float]]]]  # seed -> predictor -> T x T matrix

    @property
    def seeds(self) -> list[int]:
        return sorted(self.predictors)

    def network(self, tasks: tuple[str, ...], seed: int) -> Run:
        run = self.by_tasks.get((tuple(sorted(tasks)), seed))
        if run is None:
            raise ValueError(
                f"no complete run of tasks {', '.join(tasks)} at seed {seed}; run the sweep (and the groups' sweep) to the end"
            )
        return run

    def delta(self, networks: list[tuple[str, ...]], seed: int) -> float:
        """Delta_m over every metric of the tasks, each from the network that trained it."""
        metrics = {key: value for tasks in networks for key, value in self.network(tasks, seed).test.items()}
        return delta_m(metrics, self.baseline, self.directions)


def read_study(root: Path) -> Study:
    runs, problems = load_runs(root)
    if problems:
        raise ValueError(f"{problems[0]}; fix or remove it")
    usable = [run for run in runs if run.usable]
    if not usable:
        raise ValueError(f"no complete run under {root}; run mtlbench sweep configs/sweeps/study_affinity.yaml first")
    tasks = max((run.tasks for run in usable), key=len)
    baseline, _ = stl_baseline([run for run in usable if run.is_single_task], "test")
    directions = {key: up for run in usable for key, up in run.higher_is_better.items()}
    by_tasks = {(tuple(sorted(run.tasks)), run.seed): run for run in usable if run.seed is not None}
    predictors = {}
    for run in usable:
        if run.tasks == tasks and run.seed is not None:
            section = read_record(root / run.path, root).get("task_affinity")
            if isinstance(section, dict) and tuple(section.get("tasks", ())) == tasks:
                predictors[run.seed] = {key: section[key] for key in PREDICTORS}
    if not predictors:
        raise ValueError(f"no run of all {len(tasks)} tasks under {root} recorded task_affinity; train it with the TaskAffinity callback")
    missing = [metric for metric in directions if metric not in baseline]
    if missing:
        raise ValueError(f"no single-task baseline for {missing[0]}; the sweep needs stl: true")
    return Study(tasks, baseline, directions, by_tasks, predictors)


def pair_rows(study: Study) -> list[dict[str, object]]:
    rows = []
    for seed in study.seeds:
        values = study.predictors[seed]
        for i, j in itertools.combinations(range(len(study.tasks)), 2):
            pair = (study.tasks[i], study.tasks[j])
            row: dict[str, object] = {"pair": f"{pair[0]}~{pair[1]}", "seed": seed}
            row["affinity"] = (values["affinity"][i][j] + values["affinity"][j][i]) / 2
            row["cos"], row["mag_sim"] = values["cos"][i][j], values["mag_sim"][i][j]
            row["delta_m"] = study.delta([pair], seed)
            rows.append(row)
    return rows


def correlation_rows(pairs: list[dict[str, object]]) -> list[dict[str, object]]:
    from scipy.stats import spearmanr  # only here: the leaderboard's other commands start without scipy

    rows = []
    for predictor in PREDICTORS:
        for seed in sorted({row["seed"] for row in pairs}):
            members = [row for row in pairs if row["seed"] == seed]
            values = [row[predictor] for row in members]
            constant = len(set(values)) == 1  # no order to compare: undefined
            rho = math.nan if constant else float(spearmanr(values, [-row["delta_m"] for row in members]).statistic)
            rows.append({"predictor": predictor, "seed": seed, "spearman": rho})
    return rows


def grouping_rows(study: Study, networks: tuple[int, ...]) -> list[dict[str, object]]:
    mean = [
        [statistics.fmean(study.predictors[seed]["affinity"][i][j] for seed in study.seeds) for j in range(len(study.tasks))]
        for i in range(len(study.tasks))
    ]
    search = best_groupings(mean, max(networks))
    choices = {"single-task": [(task,) for task in study.tasks], "all-in-one": [study.tasks]}
    for budget in networks:
        chosen = max((grouping for grouping in search.best if len(grouping.groups) <= budget), key=lambda grouping: grouping.score)
        choices[f"groups B={budget}"] = [tuple(study.tasks[index] for index in group) for group in chosen.groups]
    rows = []
    for name, partition in choices.items():
        shown = " | ".join("+".join(group) for group in partition)
        for seed in study.seeds:
            rows.append(
                {"grouping": name, "networks": len(partition), "partition": shown, "seed": seed, "delta_m": study.delta(partition, seed)}
            )
    return rows


def _csv(rows: list[dict[str, object]]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else csv_text(value)) for key, value in row.items()})
    return stream.getvalue()


def _mean_std(values: list[float]) -> str:
    if any(math.isnan(value) for value in values):
        return "undefined"
    return f"{statistics.fmean(values):+.3f} ± {statistics.pstdev(values):.3f}"


def markdown(correlations: list[dict[str, object]], groupings: list[dict[str, object]]) -> str:
    lines = ["| predictor | Spearman with -Delta_m (mean ± std over seeds) | per seed |", "|---|---|---|"]
    for predictor in PREDICTORS:
        values = [row["spearman"] for row in correlations if row["predictor"] == predictor]
        lines.append(f"| {LABELS[predictor]} | {_mean_std(values)} | {', '.join(f'{value:+.2f}' for value in values)} |")
    lines += ["", "| grouping | networks | partition | Delta_m % (mean ± std over seeds) |", "|---|---|---|---|"]
    by_name: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in groupings:
        by_name[row["grouping"]].append(row)
    for name, rows in by_name.items():
        values = [row["delta_m"] for row in rows]
        lines.append(f"| {name} | {rows[0]['networks']} | {markdown_text(rows[0]['partition'])} | {_mean_std(values)} |")
    return "\n".join(lines) + "\n"


def figure(pairs: list[dict[str, object]], groupings: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({row["pair"] for row in pairs})
    mean = {
        name: {key: statistics.fmean(row[key] for row in pairs if row["pair"] == name) for key in (*PREDICTORS, "delta_m")}
        for name in names
    }
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    for axis, predictor in zip(axes, PREDICTORS, strict=False):
        axis.scatter([mean[name][predictor] for name in names], [mean[name]["delta_m"] for name in names], s=14)
        for name in names:
            axis.annotate(plot_text(name.replace("~", "+")), (mean[name][predictor], mean[name]["delta_m"]), fontsize=5)
        axis.set(xlabel=f"{LABELS[predictor]} (all-task run)", ylabel="pair Delta_m % (lower is better)", title=LABELS[predictor])
    order = list(dict.fromkeys(row["grouping"] for row in groupings))
    values = [[row["delta_m"] for row in groupings if row["grouping"] == name] for name in order]
    axes[3].bar(range(len(order)), [statistics.fmean(v) for v in values], yerr=[statistics.pstdev(v) for v in values], capsize=3)
    axes[3].set_xticks(range(len(order)), [plot_text(name) for name in order], rotation=20, fontsize=8)
    axes[3].axhline(0.0, color="black", linewidth=0.8)
    axes[3].set(ylabel="Delta_m % over all tasks", title="Groupings (mean ± std over seeds)")
    fig.suptitle("Pairs: seed-mean predictor vs seed-mean measured Delta_m", fontsize=10)
    fig.tight_layout()
    write_atomic(path, lambda stream: fig.savefig(stream, format="png", dpi=120))
    plt.close(fig)


def write_study(root: Path, out: Path, networks: tuple[int, ...] = (2, 3)) -> list[Path]:
    study = read_study(root)
    pairs = pair_rows(study)
    correlations, groupings = correlation_rows(pairs), grouping_rows(study, networks)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "pairs.csv", out / "correlations.csv", out / "groupings.csv", out / "affinity_study.md", out / "affinity_study.png"]
    for path, text in zip(written, (_csv(pairs), _csv(correlations), _csv(groupings), markdown(correlations, groupings)), strict=False):
        write_text_atomic(path, text)
    figure(pairs, groupings, written[-1])
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench affinity", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, metavar="RUNS", help="the study sweep's run folder (or the published records/)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the CSVs, the table and the figure")
    parser.add_argument("--networks", type=int, nargs="+", default=[2, 3], metavar="B", help="the groupings' network budgets")
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        raise FileNotFoundError(f"runs folder {args.runs} not found; pass the study sweep's run folder")
    for path in write_study(args.runs, args.out, tuple(args.networks)):
        print(path)
    return 0
