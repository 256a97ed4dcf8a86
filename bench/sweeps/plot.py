"""``mtlbench plot RUN_DIR``: figures of a run's gradient statistics (PNG); with ``--study AXIS``,
the figure of a scaling study's runs (:mod:`mtlbench.bench.sweeps.study_plot`).

- ``grad_norms.png``: each task's gradient norm over training steps (log scale);
- ``cosine_inter_task_vs_inter_sample.png`` and
  ``magnitude_similarity_inter_task_vs_inter_sample.png``: the distributions of the pair
  statistics between tasks and between sub-batches of one task, side by side (the comparison
  of Elich et al. 2024: is a conflict specific to multi-task learning?).

The statistics file may come from someone else's run folder: it is checked before use (one line
naming what does not fit) and its task names are drawn as text, never as mathtext.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mtlbench.bench.run.errors import RunFileError
from mtlbench.bench.run.files import STATS_FILE
from mtlbench.leaderboards.atomic_write import write_atomic
from mtlbench.leaderboards.escape import plot_text
from mtlbench.leaderboards.untrusted import UntrustedFileError, load_json


def _series(probes: list[dict], prefix: str) -> list[float]:
    return [value for probe in probes for key, value in probe.items() if key.startswith(prefix)]


def read_stats(path: Path) -> tuple[list[str], list[dict]]:
    """The task names and probes of a gradient statistics file, checked: names are text, every
    probe an object with an integer step and numbers."""

    def refuse(reason: str) -> RunFileError:
        return RunFileError(
            f"{path} is not a gradient statistics file of mtlbench ({reason}); plot a run folder that a GradientProbe wrote"
        )

    try:
        stats = load_json(path, what="gradient statistics file")
    except UntrustedFileError as error:
        raise RunFileError(f"{error}; plot a run folder that a GradientProbe wrote") from None
    tasks, probes = (stats.get("tasks"), stats.get("probes")) if isinstance(stats, dict) else (None, None)
    if not isinstance(tasks, list) or not all(isinstance(task, str) and 0 < len(task) <= 200 for task in tasks):
        raise refuse("'tasks' must be a list of names")
    if not isinstance(probes, list) or not all(isinstance(probe, dict) for probe in probes):
        raise refuse("'probes' must be a list of objects")
    for index, probe in enumerate(probes):
        if type(probe.get("step")) is not int:
            raise refuse(f"probe {index} has no integer step")
        if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in probe.values()):
            raise refuse(f"probe {index} holds a value that is not a number")
    return tasks, probes


def plot_run(run_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Write the figures of ``run_dir``'s gradient statistics; returns their paths."""
    stats_path = Path(run_dir) / STATS_FILE
    if not stats_path.is_file():
        raise FileNotFoundError(f"{stats_path} not found; train with the GradientProbe callback (configs/trainer/*.yaml enable it)")
    tasks, probes = read_stats(stats_path)
    out_dir = Path(out_dir or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    figure, axis = plt.subplots(figsize=(6, 4))
    steps = [probe["step"] for probe in probes]
    for task in tasks:
        axis.plot(steps, [probe.get(f"norm/{task}", float("nan")) for probe in probes], marker="o", markersize=3, label=plot_text(task))
    axis.set(xlabel="training step", ylabel="gradient norm (shared parameters)", yscale="log", title="Per-task gradient norms")
    axis.legend()
    figure.tight_layout()
    written.append(out_dir / "grad_norms.png")
    write_atomic(written[-1], lambda stream: figure.savefig(stream, format="png", dpi=120))
    plt.close(figure)

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
        written.append(out_dir / f"{name}_inter_task_vs_inter_sample.png")
        write_atomic(written[-1], lambda stream, figure=figure: figure.savefig(stream, format="png", dpi=120))
        plt.close(figure)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder holding gradient_stats.json (with --study: a sweep's run folders)")
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
