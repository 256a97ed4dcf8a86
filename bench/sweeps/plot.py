"""``mtlbench plot RUN_DIR``: figures (PNG) of what a run folder holds, its gradient statistics
and its inter-task affinity; with ``--study AXIS``, the figure of a scaling study's runs
(:mod:`mtlbench.bench.sweeps.study_plot`).

From ``gradient_stats.json`` (the GradientProbe callback):

- ``grad_norms.png``: each task's gradient norm over training steps (log scale);
- ``cosine_inter_task_vs_inter_sample.png`` and
  ``magnitude_similarity_inter_task_vs_inter_sample.png``: the distributions of the pair
  statistics between tasks and between sub-batches of one task, side by side (the comparison
  of Elich et al. 2024: is a conflict specific to multi-task learning?).

From ``task_affinity.json`` (the TaskAffinity callback), the inter-task affinity of Fifty et al.
(2021), ``Z[i->j] = 1 - L_j(after a lookahead update on task i) / L_j(before)`` on one batch:

- ``affinity_matrix.png``: the mean affinity over the lookaheads, rows the task whose update is
  taken (from), columns the task whose loss changes (onto);
- ``affinity_over_training.png``: one panel per task j, the affinity onto j from each other task
  over the training steps;
- ``affinity_vs_gradients.png``: three predictors of which tasks belong together, one point per
  pair: the symmetrised affinity against the gradient cosine and magnitude similarity of the
  same steps.

Both files may come from someone else's run folder: each is checked before use (one line naming
what does not fit) and its task names are drawn as text, never as mathtext.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from mtlbench.bench.run.errors import RunFileError
from mtlbench.bench.run.files import AFFINITY_FILE, STATS_FILE
from mtlbench.leaderboards.atomic_write import write_atomic
from mtlbench.leaderboards.escape import plot_text
from mtlbench.leaderboards.schema import AFFINITY_DIRECTIONS, MAX_MAGNITUDE
from mtlbench.leaderboards.untrusted import UntrustedFileError, load_json

MAX_TASKS = 64  # tasks of an affinity or statistics file: more would make unreadable figures of T^2 cells
MAX_PROBES = 100_000  # probes of a statistics file: every step of a 100k-step run (the default probes every 200th)
MAX_PROBE_VALUES = 10_000  # values of one probe: GradientProbe writes 8,515 for MAX_TASKS tasks (4 per pair, 7 per task, 3)
MATRICES = ("affinity", "cos", "mag_sim")  # the T x T matrices of each lookahead
ADVICE = "plot a run folder that a TaskAffinity callback wrote"


def _series(probes: list[dict], prefix: str) -> list[float]:
    return [value for probe in probes for key, value in probe.items() if key.startswith(prefix)]


def read_stats(path: Path) -> tuple[list[str], list[dict]]:
    """The task names and probes of a gradient statistics file, checked: 1 to MAX_TASKS unique
    names, at most MAX_PROBES probes, each an object with an integer step and at most
    MAX_PROBE_VALUES numbers (the counts the figures' work grows with, refused before it starts)."""

    def refuse(reason: str) -> RunFileError:
        return RunFileError(
            f"{path} is not a gradient statistics file of mtlbench ({reason}); plot a run folder that a GradientProbe wrote"
        )

    try:
        stats = load_json(path, what="gradient statistics file")
    except UntrustedFileError as error:
        raise RunFileError(f"{error}; plot a run folder that a GradientProbe wrote") from None
    tasks, probes = (stats.get("tasks"), stats.get("probes")) if isinstance(stats, dict) else (None, None)
    names = isinstance(tasks, list) and all(isinstance(task, str) and 0 < len(task) <= 200 for task in tasks)
    if not names or not 1 <= len(tasks) <= MAX_TASKS or len(set(tasks)) != len(tasks):
        raise refuse(f"'tasks' must be a list of names, 1 to {MAX_TASKS} and each once")
    if not isinstance(probes, list) or len(probes) > MAX_PROBES or not all(isinstance(probe, dict) for probe in probes):
        raise refuse(f"'probes' must be a list of at most {MAX_PROBES} objects")
    for index, probe in enumerate(probes):
        if len(probe) > MAX_PROBE_VALUES:
            raise refuse(f"probe {index} holds {len(probe)} values, more than the {MAX_PROBE_VALUES} of {MAX_TASKS} tasks")
        if type(probe.get("step")) is not int:
            raise refuse(f"probe {index} has no integer step")
        if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in probe.values()):
            raise refuse(f"probe {index} holds a value that is not a number")
    return tasks, probes


@dataclass(frozen=True)
class Affinity:
    """A checked task affinity file: ``affinity``, ``cos`` and ``mag_sim`` are ``[L, T, T]``
    arrays over the ``L`` lookaheads in step order, rows and columns in the order of ``tasks``."""

    tasks: list[str]
    direction: str
    steps: list[int]
    affinity: np.ndarray
    cos: np.ndarray
    mag_sim: np.ndarray


def _is_matrix(value: Any, size: int) -> bool:
    """``value`` is a ``size`` x ``size`` list of lists of finite numbers within +-MAX_MAGNITUDE."""
    if not isinstance(value, list) or len(value) != size:
        return False
    return all(
        isinstance(row, list)
        and len(row) == size
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and abs(x) <= MAX_MAGNITUDE for x in row)
        for row in value
    )


def read_affinity(path: Path) -> Affinity:
    """The task affinity file at ``path``, checked: two or more unique task names, the lookahead
    direction, and lookaheads, each an object with an integer step and T x T matrices of numbers."""

    def refuse(reason: str) -> RunFileError:
        return RunFileError(f"{path} is not a task affinity file of mtlbench ({reason}); {ADVICE}")

    try:
        data = load_json(path, what="task affinity file")
    except UntrustedFileError as error:
        raise RunFileError(f"{error}; {ADVICE}") from None
    tasks, lookaheads = (data.get("tasks"), data.get("lookaheads")) if isinstance(data, dict) else (None, None)
    names = isinstance(tasks, list) and all(isinstance(task, str) and 0 < len(task) <= 200 for task in tasks)
    if not names or not 2 <= len(tasks) <= MAX_TASKS or len(set(tasks)) != len(tasks):
        raise refuse(f"'tasks' must be a list of 2 to {MAX_TASKS} unique names")
    if data.get("direction") not in AFFINITY_DIRECTIONS:
        raise refuse(f"'direction' must be one of {', '.join(AFFINITY_DIRECTIONS)}")
    if not isinstance(lookaheads, list) or not lookaheads or not all(isinstance(entry, dict) for entry in lookaheads):
        raise refuse("'lookaheads' must be a non-empty list of objects")
    for index, entry in enumerate(lookaheads):
        if type(entry.get("step")) is not int:
            raise refuse(f"lookahead {index} has no integer step")
        for key in MATRICES:
            if not _is_matrix(entry.get(key), len(tasks)):
                raise refuse(f"lookahead {index}'s '{key}' must be a {len(tasks)} x {len(tasks)} list of finite numbers")
    ordered = sorted(lookaheads, key=lambda entry: entry["step"])
    arrays = (np.array([entry[key] for entry in ordered], dtype=float) for key in MATRICES)
    return Affinity(tasks, data["direction"], [entry["step"] for entry in ordered], *arrays)


def _label(task: str) -> str:
    """A task name as a short figure label, drawn as text."""
    return plot_text(task if len(task) <= 24 else task[:23] + "…")


def _save(figure: Figure, path: Path) -> Path:
    write_atomic(path, lambda stream: figure.savefig(stream, format="png", dpi=120))
    plt.close(figure)
    return path


def _affinity_matrix(data: Affinity) -> Figure:
    """The mean affinity over the lookaheads as a heatmap centred at zero, each cell's value
    written; the colours span the off-diagonal cells (a task's affinity onto itself is larger
    and would wash out those between tasks)."""
    mean, size = data.affinity.mean(axis=0), len(data.tasks)
    limit = float(np.abs(mean[~np.eye(size, dtype=bool)]).max()) or 1.0
    side = 2.5 + 0.8 * size
    figure, axis = plt.subplots(figsize=(side + 1.5, side))
    image = axis.imshow(mean, cmap="RdBu", vmin=-limit, vmax=limit)
    for (row, column), value in np.ndenumerate(mean):
        color = "white" if abs(value) > 0.6 * limit else "black"
        shown = f"{value:.2g}" if abs(value) >= 1e-3 * limit else "0"  # no float noise such as -5.8e-19
        axis.text(column, row, shown, ha="center", va="center", fontsize=8, color=color)
    names = [_label(task) for task in data.tasks]
    axis.set_xticks(range(size), names, rotation=45, ha="right")
    axis.set_yticks(range(size), names)
    axis.set(xlabel="loss of task (onto)", ylabel="lookahead on task (from)")
    title = f"Inter-task affinity: mean of {len(data.steps)} lookaheads ({data.direction})\ncolours span the off-diagonal cells"
    axis.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axis, label="affinity Z (> 0: the lookahead lowers the loss)")
    figure.tight_layout()
    return figure


def _affinity_over_training(data: Affinity) -> Figure:
    """One panel per target task j, one line per other task i (one colour per task throughout):
    ``Z[i->j]`` over the training steps."""
    size = len(data.tasks)
    columns = min(size, 3)
    rows = -(-size // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.8 * columns + 2, 2.8 * rows + 0.6), squeeze=False, layout="constrained")
    marker = "o" if len(data.steps) <= 50 else None
    lines = {}  # one legend entry per task whose lookahead is taken
    for onto, axis in enumerate(axes.flat):
        if onto >= size:
            axis.set_visible(False)
            continue
        for source in range(size):
            if source != onto:
                values = data.affinity[:, source, onto]
                (lines[source],) = axis.plot(data.steps, values, color=f"C{source % 10}", marker=marker, markersize=2, linewidth=1)
        axis.axhline(0.0, color="black", linewidth=0.8)
        axis.set_title(f"onto {_label(data.tasks[onto])}", fontsize=10)
        if onto % columns == 0:
            axis.set_ylabel("affinity Z")
        if onto + columns >= size:  # no panel below
            axis.set_xlabel("training step")
    ordered = [lines[source] for source in range(size)]
    figure.legend(ordered, [_label(task) for task in data.tasks], loc="outside right upper", title="lookahead on", fontsize=8)
    figure.suptitle(f"Inter-task affinity over training ({data.direction} lookaheads; panel: the task whose loss changes)")
    return figure


def _correlation(x: list[float], y: list[float]) -> str:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return ""
    return f" (Pearson r = {np.corrcoef(x, y)[0, 1]:.2f})"


def _affinity_vs_gradients(data: Affinity) -> Figure:
    """Per unordered pair: the symmetrised mean affinity against the mean gradient cosine (left)
    and magnitude similarity (right) of the same steps."""
    affinity = data.affinity.mean(axis=0)
    pairs = list(itertools.combinations(range(len(data.tasks)), 2))
    x = [float(affinity[i, j] + affinity[j, i]) / 2 for i, j in pairs]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for axis, key, label in zip(axes, ("cos", "mag_sim"), ("gradient cosine", "gradient magnitude similarity"), strict=True):
        matrix = getattr(data, key).mean(axis=0)
        y = [float(matrix[i, j] + matrix[j, i]) / 2 for i, j in pairs]
        axis.scatter(x, y, s=18)
        for (i, j), at in zip(pairs, zip(x, y, strict=True), strict=True):
            name = f"{_label(data.tasks[i])} & {_label(data.tasks[j])}"
            axis.annotate(name, at, textcoords="offset points", xytext=(4, 3), fontsize=7)
        axis.axvline(0.0, color="black", linewidth=0.8)
        if key == "cos":
            axis.axhline(0.0, color="black", linewidth=0.8)
        axis.margins(x=0.25, y=0.1)  # room for the pair names
        axis.locator_params(axis="x", nbins=5)
        axis.set(xlabel="affinity (Z[i→j] + Z[j→i]) / 2", ylabel=f"mean {label}")
        axis.set_title(f"{label.capitalize()} vs affinity{_correlation(x, y)}", fontsize=10)
    figure.suptitle(f"Which tasks belong together: three predictors per pair of tasks ({len(data.steps)} lookaheads)")
    figure.tight_layout()
    return figure


def _plot_stats(tasks: list[str], probes: list[dict], out_dir: Path) -> list[Path]:
    """The gradient statistics figures: per-task norms, and inter-task vs inter-sample histograms."""
    figure, axis = plt.subplots(figsize=(6, 4))
    steps = [probe["step"] for probe in probes]
    for task in tasks:
        axis.plot(steps, [probe.get(f"norm/{task}", float("nan")) for probe in probes], marker="o", markersize=3, label=plot_text(task))
    axis.set(xlabel="training step", ylabel="gradient norm (shared parameters)", yscale="log", title="Per-task gradient norms")
    axis.legend()
    figure.tight_layout()
    written = [_save(figure, out_dir / "grad_norms.png")]

    for stat, label, limits in (("cos", "cosine similarity", (-1, 1)), ("mag_sim", "magnitude similarity", (0, 1))):
        inter_task, inter_sample = _series(probes, f"inter_task/{stat}/"), _series(probes, f"inter_sample/{stat}/")
        figure, axis = plt.subplots(figsize=(6, 4))
        bins = [limits[0] + i * (limits[1] - limits[0]) / 40 for i in range(41)]
        axis.hist(inter_task, bins=bins, alpha=0.6, density=True, label=f"inter-task ({len(inter_task)} pairs)")
        if inter_sample:
            axis.hist(inter_sample, bins=bins, alpha=0.6, density=True, label=f"inter-sample ({len(inter_sample)} pairs)")
        if stat == "cos":
            axis.axvline(0.0, color="black", linewidth=0.8)
        axis.set(xlabel=label, ylabel="density", title=f"Gradient {label}: between tasks vs within a task")
        axis.legend()
        figure.tight_layout()
        name = "cosine" if stat == "cos" else "magnitude_similarity"
        written.append(_save(figure, out_dir / f"{name}_inter_task_vs_inter_sample.png"))
    return written


def plot_run(run_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Write the figures of what ``run_dir`` holds (gradient statistics, task affinity; both
    files are checked before any figure is written); returns their paths."""
    stats_path, affinity_path = Path(run_dir) / STATS_FILE, Path(run_dir) / AFFINITY_FILE
    if not stats_path.exists() and not affinity_path.exists():
        raise FileNotFoundError(
            f"{stats_path} not found, nor {AFFINITY_FILE}; train with the GradientProbe callback (configs/trainer/*.yaml enable it) "
            "for gradient statistics or the TaskAffinity callback for inter-task affinity"
        )
    stats = read_stats(stats_path) if stats_path.exists() else None
    affinity = read_affinity(affinity_path) if affinity_path.exists() else None
    out_dir = Path(out_dir or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = _plot_stats(*stats, out_dir) if stats is not None else []
    if affinity is not None:
        written.append(_save(_affinity_matrix(affinity), out_dir / "affinity_matrix.png"))
        written.append(_save(_affinity_over_training(affinity), out_dir / "affinity_over_training.png"))
        written.append(_save(_affinity_vs_gradients(affinity), out_dir / "affinity_vs_gradients.png"))
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench plot", description=__doc__.splitlines()[0])
    held = f"a run folder holding {STATS_FILE} and/or {AFFINITY_FILE} (with --study: a sweep's run folders)"
    parser.add_argument("run_dir", type=Path, help=held)
    parser.add_argument("--out", type=Path, default=None, help="where to write the PNGs (default: the run folder)")
    parser.add_argument("--study", metavar="AXIS", default=None, help="plot a study sweep's test metric against AXIS (e.g. train_size)")
    parser.add_argument("--metric", default=None, help="with --study: TASK/METRIC or delta_m (default: the first metric all runs share)")
    args = parser.parse_args(argv)
    if args.study is not None:
        from mtlbench.bench.sweeps.study_plot import plot_sweep_study

        written = plot_sweep_study(args.run_dir, args.study, args.metric, args.out or args.run_dir)
    else:
        written = plot_run(args.run_dir, args.out)
    for path in written:
        print(path)
    return 0
