"""Sweep throughput, the code before against the code after, one after the other on this machine.

    .venv/bin/python scripts/sweep_throughput.py --before e46ce93 --after HEAD --out /tmp/throughput

Each side is the project at a git revision (``git archive``), imported through ``PYTHONPATH``
with this venv's packages. For each side, in turn:

1. start-up: ``mtlbench fit --help`` and ``mtlbench leaderboard --help`` (``--repeats`` times;
   the median, in seconds);
2. one reference run (``mtlbench fit --config configs/reference.yaml``): its wall time and the
   time budget its record holds;
3. the same 24-run subset of the reference sweep (``configs/sweeps/reference.yaml``: EW, DWA,
   PCGrad and UPGrad x Adam and SGD x seeds 0-2, no single-task baselines) with ``--jobs``:
   its wall time.

Then it prints the ratios (before / after) and checks that every run of the subset recorded
the same numbers on both sides (metrics, gradient statistics, selection, epochs, and the whole
``metrics.csv`` each run logged), and writes
everything to ``OUT/throughput.json``. The synthetic release is generated before any timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"bench": "bench", "tasks": "tasks", "models": "models", "datamodules": "datamodules", "leaderboards": "leaderboards"}
METHODS = {"EW": "ew", "DWA": "dwa", "PCGrad": "pcgrad", "UPGrad": "upgrad"}
NUMBERS = ("status", "metrics", "gradient_statistics", "epochs_completed", "seed")


def checkout(revision: str, into: Path) -> Path:
    """The project at ``revision`` in ``into/tree``, importable as ``mtlbench`` from ``into/path``."""
    tree = into / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True, check=True).stdout
    archive_path = into / "tree.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(tree, filter="data")
    package = into / "path" / "mtlbench"
    package.mkdir(parents=True)
    for name, folder in FOLDERS.items():
        (package / name).symlink_to(tree / folder)
    return tree


def environment(side: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(side / "path")
    env["PYTHONWARNINGS"] = "ignore"
    return env


def mtlbench(side: Path, *args: str, cwd: Path, log: Path | None = None) -> float:
    """Seconds ``mtlbench ARGS`` took, run with ``side``'s code (its output to ``log``)."""
    started = time.perf_counter()
    with open(log or os.devnull, "w") as stream:
        command = [sys.executable, "-m", "mtlbench.bench.cli.entry", *args]
        done = subprocess.run(command, cwd=cwd, env=environment(side), stdout=stream, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mtlbench {' '.join(args)} failed with {done.returncode}" + (f"; see {log}" if log else ""))
    return seconds


def imported_from(side: Path) -> str:
    code = "import mtlbench.bench.cli.entry as e; print(e.__file__)"
    return subprocess.run([sys.executable, "-c", code], env=environment(side), capture_output=True, text=True, check=True).stdout.strip()


def subset_spec(tree: Path, into: Path) -> Path:
    configs = tree / "configs"
    spec = {
        "base": str(configs / "reference.yaml"),
        "methods": {name: str(configs / "method" / f"{file}.yaml") for name, file in METHODS.items()},
        "optimizers": {
            "Adam": {"config": str(configs / "optim" / "adam.yaml"), "lr": [0.001]},
            "SGD": {"config": str(configs / "optim" / "sgd.yaml"), "lr": [0.05]},
        },
        "seeds": [0, 1, 2],
        "stl": False,
        "tasks": ["segmentation", "depth", "normal"],
    }
    path = into / "reference_subset.yaml"
    path.write_text(json.dumps(spec, indent=1))  # JSON is YAML
    return path


def numbers(runs: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(runs.glob("*/version_0/results.json")):
        record = json.loads(path.read_text())
        kept = {key: record.get(key) for key in NUMBERS}
        metrics = dict(kept["metrics"] or {})
        metrics["test_weights"] = Path(str(metrics.get("test_weights"))).name  # a path into each side's own folder
        kept["metrics"] = metrics
        selection = dict(record.get("selection") or {})
        selection.pop("checkpoint", None)  # a path: each side's own folder
        kept["selection"] = selection
        logged = path.parent / "metrics.csv"  # what the run logged: train losses and weights per epoch, validation
        kept["metrics.csv"] = logged.read_text() if logged.is_file() else None
        found[path.parents[1].name] = kept
    return found


def measure(name: str, revision: str, out: Path, jobs: int, repeats: int) -> dict:
    side = out / name
    tree = checkout(revision, side)
    where = imported_from(side)
    if not where.startswith(str(side)):
        raise SystemExit(f"{name}: mtlbench was imported from {where}, not from {side}")
    work = side / "work"
    work.mkdir()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", revision], capture_output=True, text=True).stdout.strip()
    result: dict = {"revision": commit}
    for command in (["fit", "--help"], ["leaderboard", "--help"]):
        times = [mtlbench(side, *command, cwd=work) for _ in range(repeats)]
        result[" ".join(command)] = {"median_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times]}
        print(f"{name}: mtlbench {' '.join(command)}: {result[' '.join(command)]['median_s']} s (median of {repeats})", flush=True)
    reference = ["fit", "--config", str(tree / "configs" / "reference.yaml"), "--trainer.enable_progress_bar=false"]
    wall = mtlbench(side, *reference, cwd=work, log=side / "reference_run.log")
    record = json.loads(next((work / "runs" / "reference").glob("version_*/results.json")).read_text())
    result["reference_run"] = {"wall_s": round(wall, 1), "budget": record.get("budget")}
    print(f"{name}: one reference run: {wall:.1f} s; budget {record.get('budget')}", flush=True)
    spec = subset_spec(tree, side)
    runs = side / "runs"
    wall = mtlbench(side, "sweep", str(spec), "--runs", str(runs), "--jobs", str(jobs), cwd=work, log=side / "sweep.log")
    found = numbers(runs)
    budgets = [json.loads(p.read_text()).get("budget") or {} for p in runs.glob("*/version_0/results.json")]
    parts = sorted({part for budget in budgets for part in budget})
    result["sweep"] = {
        "wall_s": round(wall, 1),
        "runs": len(found),
        "complete": sum(entry["status"] == "complete" for entry in found.values()),
        "budget_sum_s": {part: round(sum(b.get(part, 0) for b in budgets), 1) for part in parts},
    }
    print(f"{name}: 24-run subset, --jobs {jobs}: {wall:.1f} s, {result['sweep']['complete']} complete runs", flush=True)
    result["numbers"] = found
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="e46ce93", help="revision before the change (default: the last before issue 29's speed-ups)")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="start-up timings per command")
    parser.add_argument("--after-first", action="store_true", help="measure the code after first, then the code before")
    parser.add_argument("--out", type=Path, required=True, help="an empty or new folder")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} is not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    print("generating the synthetic release (not timed)", flush=True)
    code = (
        "from mtlbench.datamodules import SyntheticScenesDataModule as D; "
        "D(tasks=['segmentation', 'depth', 'normal'], num_train=400, num_val=100, num_test=100, height=32, width=32).prepare_data()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    if args.after_first:
        after = measure("after", args.after, args.out, args.jobs, args.repeats)
        before = measure("before", args.before, args.out, args.jobs, args.repeats)
    else:
        before = measure("before", args.before, args.out, args.jobs, args.repeats)
        after = measure("after", args.after, args.out, args.jobs, args.repeats)
    same = sorted(run for run in before["numbers"] if after["numbers"].get(run) == before["numbers"][run])
    differ = sorted(set(before["numbers"]) ^ set(after["numbers"]) | {run for run in before["numbers"] if run not in same})
    summary = {
        "before": {key: value for key, value in before.items() if key != "numbers"},
        "after": {key: value for key, value in after.items() if key != "numbers"},
        "sweep_speedup": round(before["sweep"]["wall_s"] / after["sweep"]["wall_s"], 2),
        "reference_run_speedup": round(before["reference_run"]["wall_s"] / after["reference_run"]["wall_s"], 2),
        "fit_help_speedup": round(before["fit --help"]["median_s"] / after["fit --help"]["median_s"], 2),
        "leaderboard_help_speedup": round(before["leaderboard --help"]["median_s"] / after["leaderboard --help"]["median_s"], 2),
        "runs_with_identical_numbers": len(same),
        "runs_that_differ": differ,
        "cpu": os.cpu_count(),
        "order": "after, then before" if args.after_first else "before, then after",
    }
    (args.out / "throughput.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({key: value for key, value in summary.items() if key not in ("before", "after")}, indent=1))
    print(f"24-run subset: before {before['sweep']['wall_s']} s, after {after['sweep']['wall_s']} s: {summary['sweep_speedup']}x")
    return 0 if not differ and len(same) == 24 else 1


if __name__ == "__main__":
    sys.exit(main())
