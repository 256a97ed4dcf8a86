"""``mtlbench sweep SPEC``: methods x optimizers x learning rates x seeds, plus single-task baselines.

A sweep spec (YAML, see ``configs/sweeps/``)::

    base: ../quickstart.yaml          # the run config every run starts from (relative to the spec)
    overrides: ["--trainer.max_epochs=2"]   # CLI arguments added to every run
    methods: {EW: ../method/ew.yaml, UW: ../method/uw.yaml}
    optimizers:
      Adam: {config: ../optim/adam.yaml, lr: [0.001]}
      SGD: {config: ../optim/sgd.yaml, lr: [0.05]}
    seeds: [0, 1]
    stl: true                         # add one single-task EW run per task, optimizer, lr and seed
    tasks: [segmentation, depth, normal]

Every run gets a stable id (method, optimizer, lr, seed; ``stl-<task>`` for baselines) and the
folder ``RUNS/<id>/version_0``. A run whose ``results.json`` says ``complete`` is skipped; any
other run folder is cleared and the run is started again, so an interrupted sweep, rerun,
runs only what was missing. Runs go locally, one after another in this process (``--jobs 1``,
the default: no interpreter start-up per run) or ``--jobs`` processes at a time, or to SLURM
via submitit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

RECORD = "results.json"


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    args: tuple[str, ...]  # arguments of `mtlbench fit`

    def record(self, runs_dir: Path) -> Path:
        return runs_dir / self.run_id / "version_0" / RECORD

    def is_complete(self, runs_dir: Path) -> bool:
        try:
            return json.loads(self.record(runs_dir).read_text()).get("status") == "complete"
        except (OSError, ValueError):
            return False


def _relative(spec_dir: Path, path: str) -> str:
    candidate = Path(path)
    return str(candidate if candidate.is_absolute() else (spec_dir / candidate).resolve())


def load_spec(path: Path) -> dict:
    """The parsed spec, with every config path made absolute; one-line errors for bad specs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} not found")
    spec = yaml.safe_load(path.read_text()) or {}
    for key in ("base", "methods", "optimizers", "seeds"):
        if key not in spec:
            raise ValueError(f"sweep spec {path}: missing '{key}' (see configs/sweeps/quickstart.yaml)")
    spec["base"] = _relative(path.parent, spec["base"])
    spec["methods"] = {name: _relative(path.parent, config) for name, config in spec["methods"].items()}
    for name, optimizer in spec["optimizers"].items():
        if "config" not in optimizer or not optimizer.get("lr"):
            raise ValueError(f"sweep spec {path}: optimizer '{name}' needs 'config' and a non-empty 'lr' list")
        optimizer["config"] = _relative(path.parent, optimizer["config"])
    for config in [spec["base"], *spec["methods"].values(), *(o["config"] for o in spec["optimizers"].values())]:
        if not Path(config).is_file():
            raise FileNotFoundError(f"sweep spec {path}: config {config} not found")
    if spec.get("stl") and not spec.get("tasks"):
        raise ValueError(f"sweep spec {path}: 'stl: true' needs the list of 'tasks'")
    return spec


def plan(spec: dict, runs_dir: Path) -> list[PlannedRun]:
    """Every run of the sweep, in a stable order: baselines first, then the methods."""
    runs = []
    overrides = tuple(spec.get("overrides", ()))

    def make(run_id: str, method: str, optimizer: dict, lr: float, seed: int, extra: tuple[str, ...]) -> PlannedRun:
        args = (
            "--config",
            spec["base"],
            *overrides,
            f"--model.method={method}",
            f"--model.optimizer={optimizer['config']}",
            f"--model.optimizer.init_args.lr={lr}",
            f"--seed_everything={seed}",
            f"--trainer.logger.init_args.save_dir={runs_dir}",
            f"--trainer.logger.init_args.name={run_id}",
            "--trainer.logger.init_args.version=0",
            "--trainer.enable_progress_bar=false",
            *extra,
        )
        return PlannedRun(run_id, args)

    for opt_name, optimizer in spec["optimizers"].items():
        for lr in optimizer["lr"]:
            for seed in spec["seeds"]:
                if spec.get("stl"):
                    ew = spec["methods"].get("EW") or next(iter(spec["methods"].values()))
                    for task in spec["tasks"]:
                        runs.append(
                            make(f"stl-{task}-{opt_name}-lr{lr:g}-s{seed}", ew, optimizer, lr, seed, (f"--data.init_args.tasks=[{task}]",))
                        )
                for method_name, method in spec["methods"].items():
                    runs.append(make(f"{method_name}-{opt_name}-lr{lr:g}-s{seed}", method, optimizer, lr, seed, ()))
    return runs


def _run_locally(run: PlannedRun, runs_dir: Path) -> tuple[str, int]:
    """One run in its own process, its output in ``RUNS/<id>.log``."""
    shutil.rmtree(runs_dir / run.run_id, ignore_errors=True)  # unfinished or failed: start again
    log = runs_dir / f"{run.run_id}.log"
    with open(log, "w") as stream:
        code = subprocess.run([sys.executable, "-m", "bench.cli", "fit", *run.args], stdout=stream, stderr=subprocess.STDOUT).returncode
    return run.run_id, code


def _run_in_process(run: PlannedRun, runs_dir: Path) -> tuple[str, int]:
    """One run in this process (no interpreter start-up per run), output in ``RUNS/<id>.log``.
    An exception ends the run, not the sweep; its record says ``failed``."""
    import contextlib
    import logging

    from bench.cli import main as cli_main

    shutil.rmtree(runs_dir / run.run_id, ignore_errors=True)
    log = runs_dir / f"{run.run_id}.log"
    with open(log, "w") as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        handler = logging.StreamHandler(stream)
        logging.getLogger().addHandler(handler)
        try:
            code = cli_main(["fit", *run.args])
        except Exception as error:
            print(f"run failed: {type(error).__name__}: {error}", file=stream)
            code = 1
        finally:
            logging.getLogger().removeHandler(handler)
    return run.run_id, code


def run_sweep(spec_path: Path, runs_dir: Path, jobs: int = 1, slurm: dict | None = None) -> dict[str, list[str]]:
    """Run what is missing; returns the ids that were skipped, done, failed (or submitted)."""
    spec = load_spec(spec_path)
    runs_dir = Path(runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    planned = plan(spec, runs_dir)
    todo = [run for run in planned if not run.is_complete(runs_dir)]
    outcome = {"skipped": [run.run_id for run in planned if run not in todo], "done": [], "failed": [], "submitted": []}
    if slurm is not None:
        import submitit

        executor = submitit.AutoExecutor(folder=runs_dir / ".submitit", cluster=slurm.pop("cluster", None))
        executor.update_parameters(**slurm)
        for run in todo:
            shutil.rmtree(runs_dir / run.run_id, ignore_errors=True)
            executor.submit(submitit.helpers.CommandFunction([sys.executable, "-m", "bench.cli", "fit", *run.args]))
            outcome["submitted"].append(run.run_id)
        return outcome
    with tqdm(total=len(todo), desc="runs", unit="run") as bar:
        if jobs <= 1:  # sequentially in this process: no start-up cost per run
            results = (_run_in_process(run, runs_dir) for run in todo)
            for run_id, code in results:
                outcome["done" if code == 0 else "failed"].append(run_id)
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for run_id, code in pool.map(lambda run: _run_locally(run, runs_dir), todo):
                    outcome["done" if code == 0 else "failed"].append(run_id)
                    bar.update(1)
    return outcome


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench sweep", description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--runs", type=Path, default=Path("runs/sweep"), help="folder of the run folders")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (locally)")
    parser.add_argument("--out", type=Path, default=None, help="also write the leaderboard here")
    parser.add_argument("--slurm", action="store_true", help="submit one SLURM job per run with submitit")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per SLURM job")
    parser.add_argument("--timeout-min", type=int, default=600)
    args = parser.parse_args(argv)
    slurm = None
    if args.slurm:
        slurm = {"gpus_per_node": args.gpus, "timeout_min": args.timeout_min, "slurm_partition": args.slurm_partition}
        slurm = {key: value for key, value in slurm.items() if value is not None}
    outcome = run_sweep(args.spec, args.runs, jobs=args.jobs, slurm=slurm)
    print(", ".join(f"{len(ids)} {name}" for name, ids in outcome.items()))
    for run_id in outcome["failed"]:
        print(f"failed: {run_id} (log: {args.runs / (run_id + '.log')})")
    if args.out is not None and not outcome["submitted"]:
        from leaderboards.cli import render_leaderboard

        print(render_leaderboard(args.runs, args.out))
    return 1 if outcome["failed"] else 0
