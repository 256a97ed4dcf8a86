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
    # or, as a paper's protocol needs: baselines with one optimizer for every optimizer's runs
    # (Elich et al. 2024), their own lrs, and arguments of their own (a single-task network):
    # stl: {optimizer: Adam, lr: [0.01, 0.001], args: [--model.net=../model/segnet.yaml]}
    validation: false                 # optional: the protocol has no validation split, so runs do
                                      # not select their epoch by validation Delta_m (Nash-MTL's)
    tasks: [segmentation, depth, normal]
    wandb: {project: mtlbench}        # optional: also log to W&B, grouped by sweep name (the file's stem)
    axes: {train_size: [100, 400]}    # optional: a scaling study's grid (bench/sweeps/study_axes.py)

Every run gets a stable id (method, optimizer, lr, seed, study point; ``stl-<task>`` for
baselines) and the folder ``RUNS/<id>/version_0``. A run whose ``results.json`` says ``complete`` (or ``diverged``)
is skipped; any other run resumes from its last readable checkpoint in its own folder, or starts
afresh without one, so an interrupted sweep, rerun, runs only what was missing, exactly as the
uninterrupted sweep would have. Runs go locally, one after another in this process (``--jobs 1``,
the default: no interpreter start-up per run) or ``--jobs`` at a time, each with
``--gpus-per-run`` GPUs of its own (:mod:`mtlbench.bench.sweeps.devices`) on long-lived worker
processes that import the suite once (:mod:`mtlbench.bench.sweeps.worker`; a run over several
GPUs gets a process of its own, as DDP needs), or to SLURM via submitit (one job per run,
``--gpus-per-run`` GPUs each).

Model selection (``leaderboards/selection.py``): the single-task baselines run first; their
validation metrics (best lr per task, mean over seeds, each at its selected epoch) are written
to ``RUNS/baselines/<optimizer>.json``, and every multi-task run of that optimizer selects its
epoch by validation Delta_m against them (``--model.selection_baseline``). On SLURM the
multi-task jobs depend on the baseline jobs (``afterany``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import queue
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from tqdm import tqdm

from mtlbench.bench.run.errors import DIVERGED_EXIT
from mtlbench.bench.sweeps.devices import DevicePool, Slot, check_memory, run_arguments, slots, visible_devices
from mtlbench.bench.sweeps.devices import gpus_per_run as assigned_gpus
from mtlbench.bench.sweeps.foreign_code import announce
from mtlbench.bench.sweeps.run_ids import check_name, check_unique, lr_text, runs_lock
from mtlbench.bench.sweeps.study_axes import Point, grid
from mtlbench.bench.sweeps.worker import Worker, fit_in_process
from mtlbench.leaderboards.atomic_write import write_json_atomic
from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, UntrustedFileError, parse_yaml, read_text

RECORD = "results.json"
FINAL_STATUSES = ("complete", "diverged")
BASELINES = "baselines"


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    args: tuple[str, ...]  # arguments of `mtlbench fit`
    optimizer: str  # the spec's name of the optimizer entry
    baseline_of: str | None = None  # the task, for a single-task baseline run
    setting: str = ""  # the study point's suffix without task axes: runs sharing it share baselines
    baseline_optimizer: str = ""  # the optimizer whose baselines it selects by ("": its own)

    @property
    def selection_group(self) -> str:
        """The runs that select by the same single-task baselines: one optimizer at one setting."""
        return (self.baseline_optimizer or self.optimizer) + self.setting

    def record(self, runs_dir: Path) -> Path:
        return runs_dir / self.run_id / "version_0" / RECORD

    def checked_record(self, runs_dir: Path) -> dict | None:
        """The run's record, read as others' data and checked against the schema; None where
        there is none, or one that does not fit (another's folder may hold anything)."""
        from mtlbench.leaderboards.records import read_record
        from mtlbench.leaderboards.schema import validate_record

        try:
            record = read_record(self.record(runs_dir), runs_dir)
            validate_record(record)
        except ValueError:
            return None
        return record

    def is_complete(self, runs_dir: Path) -> bool:
        """Whether the run has its final record: complete, or diverged (a result: rerunning the
        same seed would diverge again)."""
        record = self.checked_record(runs_dir)
        return record is not None and record["status"] in FINAL_STATUSES


def _relative(spec_dir: Path, path: str) -> str:
    candidate = Path(path)
    return str(candidate if candidate.is_absolute() else (spec_dir / candidate).resolve())


def _method_entry(path: Path, name: str, entry: object) -> dict:
    """A method of the spec: a config file, or ``{config: FILE, args: [more fit arguments]}``
    (e.g. ``--model.refresh_every=4``), with the file made absolute."""
    if isinstance(entry, str):
        entry = {"config": entry}
    args = entry.get("args", []) if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), str) or not isinstance(args, list):
        raise ValueError(f"sweep spec {path}: method '{name}' must be a config file or {{config: FILE, args: [--model.refresh_every=4]}}")
    return {"config": _relative(path.parent, entry["config"]), "args": [str(arg) for arg in args]}


def _stl_entry(path: Path, spec: dict) -> dict | None:
    """The spec's ``stl`` as ``{optimizer, lr, args}`` (None: no baselines), paths made absolute."""
    entry = spec.get("stl")
    if entry is None or entry is False:
        return None
    usage = "'stl' takes true or {optimizer: NAME, lr: [...], args: [...]} (each optional)"
    if entry is True:
        entry = {}
    if not isinstance(entry, dict) or not set(entry) <= {"optimizer", "lr", "args"}:
        raise ValueError(f"sweep spec {path}: {usage}")
    optimizer, lrs, args = entry.get("optimizer"), entry.get("lr"), entry.get("args", [])
    if optimizer is not None and optimizer not in spec["optimizers"]:
        names = ", ".join(spec["optimizers"])
        raise ValueError(f"sweep spec {path}: stl.optimizer must be one of the optimizers ({names}), got {optimizer!r}")
    if lrs is not None and (not isinstance(lrs, list) or not lrs or not all(isinstance(lr, (int, float)) for lr in lrs)):
        raise ValueError(f"sweep spec {path}: stl.lr must be a non-empty list of learning rates, got {lrs!r}")
    if not isinstance(args, list):
        raise ValueError(f"sweep spec {path}: {usage}")
    args = [_config_argument(path.parent, str(arg)) for arg in args]
    return {"optimizer": optimizer, "lr": lrs, "args": args}


def _config_argument(spec_dir: Path, arg: str) -> str:
    """``--model.net=../model/segnet.yaml``: a relative ``.yaml`` value made absolute."""
    key, sep, value = arg.partition("=")
    return f"{key}={_relative(spec_dir, value)}" if sep and value.endswith((".yaml", ".yml")) else arg


def load_spec(path: Path) -> dict:
    """The parsed spec, with every config path made absolute; one-line errors for bad specs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} not found")
    try:
        spec = parse_yaml(read_text(path, limit=MAX_SPEC_BYTES, what="sweep spec")) or {}
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(f"sweep spec {path} is not valid YAML{line}: {getattr(error, 'problem', error)}") from None
    except UntrustedFileError:
        raise
    except (ValueError, RecursionError) as error:
        raise ValueError(f"sweep spec {path} is not read: {error}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"sweep spec {path}: expected a mapping of base, methods, optimizers, seeds (see configs/sweeps/quickstart.yaml)")
    spec.setdefault("name", path.stem)
    if spec.get("wandb") is not None and not isinstance(spec["wandb"], dict):
        raise ValueError(f"sweep spec {path}: 'wandb' takes a mapping such as {{project: mtlbench, entity: my-team}} (or {{}})")
    for key in ("base", "methods", "optimizers", "seeds"):
        if key not in spec:
            raise ValueError(f"sweep spec {path}: missing '{key}' (see configs/sweeps/quickstart.yaml)")
    for key, kind in (("methods", dict), ("optimizers", dict), ("seeds", list)):
        if not isinstance(spec[key], kind) or not spec[key]:
            raise ValueError(f"sweep spec {path}: '{key}' must be a non-empty {'mapping' if kind is dict else 'list'}")
    if not all(isinstance(seed, int) for seed in spec["seeds"]):
        raise ValueError(f"sweep spec {path}: 'seeds' must be integers, got {spec['seeds']}")
    spec["base"] = _relative(path.parent, spec["base"])
    spec["methods"] = {name: _method_entry(path, name, entry) for name, entry in spec["methods"].items()}
    for name, optimizer in spec["optimizers"].items():
        if not isinstance(optimizer, dict) or "config" not in optimizer or not optimizer.get("lr"):
            raise ValueError(f"sweep spec {path}: optimizer '{name}' needs 'config' and a non-empty 'lr' list")
        optimizer["config"] = _relative(path.parent, optimizer["config"])
    for config in [spec["base"], *(m["config"] for m in spec["methods"].values()), *(o["config"] for o in spec["optimizers"].values())]:
        if not Path(config).is_file():
            raise FileNotFoundError(f"sweep spec {path}: config {config} not found")
    perf = spec.get("perf", [])
    if not isinstance(perf, list) or not all(isinstance(item, str) for item in perf):
        raise ValueError(f"sweep spec {path}: 'perf' lists mtlbench perf records (files) for the leaderboard's cost columns")
    spec["perf"] = [Path(_relative(path.parent, item)) for item in perf]
    for record in spec["perf"]:
        if not record.is_file():
            raise FileNotFoundError(f"sweep spec {path}: perf record {record} not found; run mtlbench perf --out {record} or drop it")
    spec["stl"] = _stl_entry(path, spec)
    if not isinstance(spec.get("validation", True), bool):
        raise ValueError(f"sweep spec {path}: 'validation' is true (runs select their epoch on validation) or false")
    task_axes = {"tasks", "relatedness"} & set(spec.get("axes") or {})  # a study's task sets name the baselines' tasks
    if spec.get("stl") and not spec.get("tasks") and not task_axes:
        raise ValueError(f"sweep spec {path}: 'stl: true' needs the list of 'tasks'")
    spec["points"] = grid(path, spec.get("axes"), Path(spec["base"]), spec.get("tasks"))
    for kind, names in (("method", spec["methods"]), ("optimizer", spec["optimizers"]), ("task", stl_tasks(spec))):
        for name in names:
            check_name(kind, name)
    return spec


def stl_tasks(spec: dict) -> list[str]:
    """The tasks of the single-task baselines: the spec's ``tasks``, and every task a study's
    task sets train."""
    tasks = list(spec.get("tasks") or [])
    for point in spec["points"]:
        tasks += [task for task in point.tasks or () if task not in tasks]
    return tasks


def baseline_file(runs_dir: Path, group: str) -> Path:
    """The validation baselines of one selection group (an optimizer, at one study setting)."""
    return runs_dir / BASELINES / f"{group}.json"


def _loggers(spec: dict, runs_dir: Path, run_id: str) -> list[dict]:
    """CSV logs in ``RUNS/<id>/version_0`` (the run record's folder), plus W&B when the spec
    has a ``wandb`` section: runs grouped by sweep, named by id, offline without credentials."""
    loggers = [
        {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(runs_dir), "name": run_id, "version": 0}}
    ]
    if spec.get("wandb") is not None:
        wandb = {"project": "mtlbench", "group": spec["name"], **spec["wandb"], "name": run_id, "save_dir": str(runs_dir)}
        loggers.append({"class_path": "mtlbench.bench.run.loggers.WandbRunLogger", "init_args": wandb})
    return loggers


def plan(spec: dict, runs_dir: Path) -> list[PlannedRun]:
    """Every run of the sweep, in a stable order: all baselines first, then the methods."""
    baselines, methods, described = [], [], []
    overrides = tuple(spec.get("overrides", ()))

    def make(run_id: str, method: dict, optimizer: dict, lr: float, seed: int, extra: tuple[str, ...]) -> tuple[str, ...]:
        return (
            "--config",
            spec["base"],
            *overrides,
            f"--model.method={method['config']}",
            *method["args"],
            f"--model.optimizer={optimizer['config']}",
            f"--model.optimizer.init_args.lr={lr}",
            f"--seed_everything={seed}",
            f"--trainer.logger={json.dumps(_loggers(spec, runs_dir, run_id))}",
            "--trainer.enable_progress_bar=false",
            *extra,
        )

    points: list[Point] = spec.get("points") or [Point()]
    stl = spec.get("stl")
    selects = bool(stl) and spec.get("validation", True)  # multi-task runs choose their epoch by validation Delta_m
    settings = {point.setting_suffix: point for point in points}  # one set of baselines per setting
    for opt_name, optimizer in spec["optimizers"].items():
        selects_by = (stl or {}).get("optimizer") or opt_name
        if stl and selects_by == opt_name:
            ew = {"config": (spec["methods"].get("EW") or next(iter(spec["methods"].values())))["config"], "args": stl["args"]}
            for lr in stl["lr"] or optimizer["lr"]:
                for seed in spec["seeds"]:
                    for setting, point in settings.items():
                        for task in stl_tasks(spec):
                            run_id = f"stl-{task}-{opt_name}-lr{lr_text(lr)}-s{seed}{setting}"
                            extra = (*point.args, f"--data.init_args.tasks=[{task}]")
                            baselines.append(PlannedRun(run_id, make(run_id, ew, optimizer, lr, seed, extra), opt_name, task, setting))
                            described.append(
                                (run_id, f"the single-task run of {task!r} under {opt_name!r} (lr {lr!r}, seed {seed}{setting})")
                            )
        for lr in optimizer["lr"]:
            for seed in spec["seeds"]:
                for point in points:
                    if stl and point.tasks is not None and len(point.tasks) == 1:
                        continue  # a one-task set is its single-task baseline
                    selection = baseline_file(runs_dir, selects_by + point.setting_suffix) if selects else None
                    for method_name, method in spec["methods"].items():
                        run_id = f"{method_name}-{opt_name}-lr{lr_text(lr)}-s{seed}{point.suffix}"
                        extra = (
                            *point.args,
                            *(() if selection is None else (f"--model.selection_baseline={selection}",)),
                        )
                        args = make(run_id, method, optimizer, lr, seed, extra)
                        methods.append(PlannedRun(run_id, args, opt_name, setting=point.setting_suffix, baseline_optimizer=selects_by))
                        described.append((run_id, f"method {method_name!r} under {opt_name!r} (lr {lr!r}, seed {seed}{point.suffix})"))
    check_unique(described)
    return baselines + methods


def write_baselines(planned: list[PlannedRun], runs_dir: Path) -> dict[str, str]:
    """Write each optimizer's validation baselines from its complete single-task runs.

    Returns ``{selection group: reason}`` for the optimizers (at a study setting) whose
    baselines are incomplete (their multi-task runs cannot select by validation Delta_m and
    are not started)."""
    from mtlbench.leaderboards.records import parse_record, read_record
    from mtlbench.leaderboards.selection import baseline_table, stl_baseline

    blocked = {}
    for group in sorted({run.selection_group for run in planned if run.baseline_of}):
        mine = [run for run in planned if run.baseline_of and run.selection_group == group]
        complete = [run for run in mine if run.is_complete(runs_dir)]
        missing = sorted({run.baseline_of for run in mine} - {run.baseline_of for run in complete})
        if missing:
            blocked[group] = f"no complete single-task baseline for {', '.join(missing)}"
            continue
        records = [parse_record(read_record(run.record(runs_dir), runs_dir), run.record(runs_dir)) for run in complete]
        values, _ = stl_baseline(records, "val")
        if values:  # (a protocol without validation has none to select by)
            write_json_atomic(baseline_file(runs_dir, group), baseline_table(values))
    return blocked


def start_or_resume(run: PlannedRun, runs_dir: Path, clear: bool = True) -> tuple[list[str], list[str]]:
    """The ``mtlbench fit`` arguments of an unfinished run, and lines for its log.

    A run folder with a readable full checkpoint resumes from it (``last.ckpt``, else the newest
    ``best-*.ckpt``; unreadable ones are named and skipped), in the same folder: a run killed at
    any moment loses at most the epoch it was in, and ends with the record the uninterrupted run
    would have written. Without one, the folder is cleared and the run starts afresh."""
    from mtlbench.bench.run.checkpoints import resumable_checkpoint

    run_dir = run.record(runs_dir).parent
    checkpoint, skipped = resumable_checkpoint(run_dir)
    notes = [f"skipped unreadable checkpoint: {line}" for line in skipped]
    if checkpoint is None:
        if clear:  # (not on the ranks of a multi-process job, which all call this)
            shutil.rmtree(runs_dir / run.run_id, ignore_errors=True)
        return list(run.args), notes
    return [*run.args, f"--ckpt_path={checkpoint}"], [*notes, f"resuming from {checkpoint}"]


def _environment(jobs: int, slot: Slot = ()) -> dict[str, str]:
    """A run process's environment: unless ``OMP_NUM_THREADS`` is set, its share of the cores
    among ``jobs`` (torch would otherwise start as many threads as there are cores in each, and
    they would compete), and its devices where it is given some."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    if slot:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(slot)
    return env


@contextlib.contextmanager
def _run_log(run: PlannedRun, runs_dir: Path, slot: Slot, notes: list[str]) -> Iterator[Path]:
    """The run's log (``RUNS/<id>.log``) with the sweep's lines: its notes, and the devices it
    holds from the line before it starts to the line after it ends."""
    log = runs_dir / f"{run.run_id}.log"
    with open(log, "a") as stream:
        if slot:
            notes = [*notes, f"on GPU {','.join(slot)} (CUDA_VISIBLE_DEVICES) from {_now()}"]
        stream.writelines(f"mtlbench sweep: {note}\n" for note in notes)
    yield log
    if slot:
        with open(log, "a") as stream:
            print(f"mtlbench sweep: GPU {','.join(slot)} handed on at {_now()}", file=stream)


def _run_locally(run: PlannedRun, runs_dir: Path, jobs: int, pool: DevicePool | None = None) -> tuple[str, int]:
    """One run in a process of its own, for a run over several devices (DDP starts the run's
    other ranks by running its command again); with a device ``pool``, it holds devices of its
    own while it runs."""
    args, notes = start_or_resume(run, runs_dir)
    with pool.take() if pool is not None else contextlib.nullcontext(()) as slot, _run_log(run, runs_dir, slot, notes) as log:
        command = [sys.executable, "-m", "mtlbench.bench.run.launch", "fit", *args, *run_arguments(slot)]
        with open(log, "a") as stream:
            code = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, env=_environment(jobs, slot)).returncode
    return run.run_id, code


def _run_on_worker(run: PlannedRun, runs_dir: Path, workers: queue.Queue[tuple[Worker, Slot]]) -> tuple[str, int]:
    """One run on a free worker process (:mod:`mtlbench.bench.sweeps.worker`), on its devices."""
    worker, slot = workers.get()
    try:
        args, notes = start_or_resume(run, runs_dir)
        with _run_log(run, runs_dir, slot, notes) as log:
            code = worker.run([*args, *run_arguments(slot)], log)
    finally:
        workers.put((worker, slot))
    return run.run_id, code


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _run_in_process(run: PlannedRun, runs_dir: Path) -> tuple[str, int]:
    """One run in this process (no interpreter start-up per run), output in ``RUNS/<id>.log``.
    An exception ends the run, not the sweep; its record says ``failed``."""
    args, notes = start_or_resume(run, runs_dir)
    with _run_log(run, runs_dir, (), notes) as log, open(log, "a") as stream:
        code = fit_in_process(args, stream)
    return run.run_id, code


class LocalRunner:
    """Where a local sweep's runs go: a process per run where each run has several GPUs (DDP
    starts its other ranks by running its command again), else long-lived worker processes
    (``--jobs N``, or one GPU per run: each worker imports once and trains run after run on its
    own devices), else this process (``--jobs 1``, no devices assigned).

    Args:
        jobs: runs at a time.
        slots_: each job's devices (:func:`mtlbench.bench.sweeps.devices.slots`), or None.
    """

    def __init__(self, jobs: int, slots_: list[Slot] | None) -> None:
        self.jobs = jobs
        self.pool: DevicePool | None = None
        self.workers: queue.Queue[tuple[Worker, Slot]] | None = None
        if slots_ and len(slots_[0]) > 1:
            self.pool = DevicePool(slots_)
        elif jobs > 1 or slots_:
            self.workers = queue.Queue()
            for slot in slots_ or [()] * jobs:
                self.workers.put((Worker(_environment(jobs, slot)), slot))

    def run_all(self, todo: list[PlannedRun], runs_dir: Path, bar: tqdm) -> list[tuple[str, int]]:
        """Run ``todo``; (id, exit code) per run, in order."""
        with contextlib.ExitStack() as stack:
            if self.workers is not None:
                executor = stack.enter_context(ThreadPoolExecutor(max_workers=self.jobs))
                results = executor.map(lambda run: _run_on_worker(run, runs_dir, self.workers), todo)
            elif self.pool is not None:
                executor = stack.enter_context(ThreadPoolExecutor(max_workers=self.jobs))
                results = executor.map(lambda run: _run_locally(run, runs_dir, self.jobs, self.pool), todo)
            else:
                results = (_run_in_process(run, runs_dir) for run in todo)
            finished = []
            for result in results:
                finished.append(result)
                bar.update(1)
            return finished

    def close(self) -> None:
        """End the worker processes."""
        while self.workers is not None and not self.workers.empty():
            self.workers.get()[0].close()


def measured_memory(planned: list[PlannedRun], runs_dir: Path) -> tuple[float, float, str] | None:
    """(MiB reserved at most, the device's MiB, its name) over the sweep's runs that recorded a
    GPU run's memory; None before any did."""
    known = []
    for run in planned:
        record = run.checked_record(runs_dir)
        cost = (record or {}).get("cost") or {}
        if isinstance(cost.get("peak_reserved_mb"), (int, float)) and isinstance(cost.get("device_memory_mb"), (int, float)):
            names = (record.get("environment") or {}).get("gpus") or ["the GPU"]
            known.append((float(cost["peak_reserved_mb"]), float(cost["device_memory_mb"]), str(names[0])))
    return max(known) if known else None


def _check_sharing(planned: list[PlannedRun], runs_dir: Path, runs_per_gpu: int) -> bool:
    """Whether a run's memory is known (and so checked: a one-line ValueError where
    ``runs_per_gpu`` runs do not fit on a device)."""
    known = measured_memory(planned, runs_dir)
    if known is not None:
        check_memory(runs_per_gpu, *known)
    return known is not None


def _outcome(code: int) -> str:
    return {0: "done", DIVERGED_EXIT: "diverged"}.get(code, "failed")


def run_sweep(
    spec_path: Path,
    runs_dir: Path,
    jobs: int = 1,
    slurm: dict | None = None,
    gpus_per_run: int | None = None,
    runs_per_gpu: int = 1,
    wait: bool = False,
) -> dict[str, list[str]]:
    """Run what is missing, baselines first, holding the runs folder against other sweeps
    (:func:`mtlbench.bench.sweeps.run_ids.runs_lock`; ``wait``: wait for one that holds it);
    returns the ids skipped, done, failed, blocked (a multi-task run whose baselines failed) or
    submitted. Locally, ``gpus_per_run`` devices
    for each of the ``jobs`` runs at a time, shared by up to ``runs_per_gpu`` runs
    (:mod:`mtlbench.bench.sweeps.devices`): then the first run goes alone unless a run's GPU
    memory is already recorded, and the sweep stops with one line where that many do not fit."""
    if runs_per_gpu < 1:
        raise ValueError(f"sweep: --runs-per-gpu takes 1 or more, got {runs_per_gpu}")
    spec = load_spec(spec_path)
    given = None
    if slurm is None:
        wants_devices = (gpus_per_run or 0) > 0 or (gpus_per_run is None and jobs > 1)
        devices = visible_devices() if wants_devices else []
        per_run = assigned_gpus(gpus_per_run, jobs, devices)
        if runs_per_gpu > 1 and not per_run:
            what = f"--runs-per-gpu {runs_per_gpu} shares GPUs between runs, and this sweep assigns none"
            raise ValueError(f"sweep: {what}; add --gpus-per-run 1")
        given = slots(jobs, per_run, devices, runs_per_gpu) if per_run else None  # refused here, before any run starts
    elif runs_per_gpu > 1:
        raise ValueError("sweep: --runs-per-gpu is for local sweeps; on SLURM each run is a job with --gpus of its own")
    runs_dir = Path(runs_dir).resolve()
    planned = plan(spec, runs_dir)  # names and run ids refused here, before the folder is touched
    announce([arg for run in planned for arg in run.args], sys.stdout)
    with runs_lock(runs_dir, wait):
        return _run_planned(planned, runs_dir, jobs, slurm, given, runs_per_gpu)


def _run_planned(
    planned: list[PlannedRun], runs_dir: Path, jobs: int, slurm: dict | None, given: list[Slot] | None, runs_per_gpu: int
) -> dict[str, list[str]]:
    """:func:`run_sweep`'s work, while it holds the runs folder."""
    todo = [run for run in planned if not run.is_complete(runs_dir)]
    outcome = {
        "skipped": [run.run_id for run in planned if run not in todo],
        "done": [],
        "diverged": [],
        "failed": [],
        "blocked": [],
        "submitted": [],
    }
    if slurm is not None:
        outcome["submitted"] = _submit(planned, todo, runs_dir, dict(slurm))
        return outcome
    measured = runs_per_gpu > 1 and _check_sharing(planned, runs_dir, runs_per_gpu)  # a refusal comes before any run
    runner = LocalRunner(jobs, given)
    with tqdm(total=len(todo), desc="runs", unit="run") as bar, contextlib.closing(runner):
        if runs_per_gpu > 1 and todo and not measured:
            pilot, todo = todo[0], todo[1:]  # alone on its device, to measure a run's memory
            for run_id, code in runner.run_all([pilot], runs_dir, bar):
                outcome[_outcome(code)].append(run_id)
            _check_sharing(planned, runs_dir, runs_per_gpu)
        first = [run for run in todo if run.baseline_of]
        for run_id, code in runner.run_all(first, runs_dir, bar):
            outcome[_outcome(code)].append(run_id)
        blocked = write_baselines(planned, runs_dir)
        second = [run for run in todo if not run.baseline_of and run.selection_group not in blocked]
        outcome["blocked"] = [run.run_id for run in todo if not run.baseline_of and run.selection_group in blocked]
        bar.update(len(outcome["blocked"]))
        for run_id, code in runner.run_all(second, runs_dir, bar):
            outcome[_outcome(code)].append(run_id)
    return outcome


class FitJob:
    """One run as a submitit job, on every task (DDP rank) of it; requeued when preempted or
    timed out, and then resumed from the run's last readable checkpoint (:func:`start_or_resume`).

    SLURM sends the job ``USR2`` ``slurm_signal_delay_s`` before its time limit, or on
    preemption; submitit then calls :meth:`checkpoint` on the first task and requeues the job
    with what it returns: the same run, resumed, so Lightning restores the weights, optimizer,
    method state, generators and loops from the last saved epoch. Under SLURM
    Lightning reads the ranks from SLURM's variables; under submitit's local executor
    they are exported from submitit's job environment.

    Args:
        run: the planned run.
        runs_dir: the sweep's run folder.
        planned: every run of the sweep, for a multi-task run: its baselines are written
            first (the job depends on the baseline jobs); ``None`` for a baseline run.
    """

    def __init__(self, run: PlannedRun, runs_dir: Path, planned: list[PlannedRun] | None = None) -> None:
        self.run, self.runs_dir, self.planned = run, runs_dir, planned

    def __call__(self, resume: bool = False) -> int:
        import submitit

        if "SLURM_JOB_ID" not in os.environ:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if self.planned is not None:
            blocked = write_baselines(self.planned, self.runs_dir)
            if self.run.selection_group in blocked:
                raise RuntimeError(f"{self.run.run_id}: {blocked[self.run.selection_group]}")
        from mtlbench.bench.run.launch import main as cli_main

        args, notes = start_or_resume(self.run, self.runs_dir, clear=False) if resume else (list(self.run.args), [])
        for note in notes:
            print(f"mtlbench sweep: {note}", file=sys.stderr)
        code = cli_main(["fit", *args])
        if code not in (0, DIVERGED_EXIT):  # a diverged run is a result, its record says so
            raise RuntimeError(f"{self.run.run_id}: mtlbench fit exited with {code}; see the job's log")
        return code

    def checkpoint(self, resume: bool = False):
        """What submitit requeues: this run, resumed from its last checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(FitJob(self.run, self.runs_dir, self.planned), resume=True)


def _submit(planned: list[PlannedRun], todo: list[PlannedRun], runs_dir: Path, slurm: dict) -> list[str]:
    """One submitit job per run: baselines first, then the multi-task runs, which on SLURM wait
    for them (``afterany``) and elsewhere (submitit's local executor) are submitted once they end.
    A job has ``gpus_per_node`` GPUs and as many tasks, one DDP rank each."""
    import submitit

    executor = submitit.AutoExecutor(folder=runs_dir / ".submitit", cluster=slurm.pop("cluster", None))
    executor.update_parameters(**slurm)
    processes = slurm.get("tasks_per_node", 1)
    if processes > 1:  # Lightning runs DDP across the job's tasks
        todo = [replace(run, args=(*run.args, f"--trainer.devices={processes}", "--trainer.strategy=ddp")) for run in todo]
    submitted, first_jobs = [], []
    for run in (run for run in todo if run.baseline_of):
        shutil.rmtree(runs_dir / run.run_id, ignore_errors=True)
        first_jobs.append(executor.submit(FitJob(run, runs_dir)))
        submitted.append(run.run_id)
    if first_jobs and executor.cluster == "slurm":
        # afterany, not afterok: a failed baseline then ends the dependent jobs with a clear error
        # instead of leaving them pending forever.
        executor.update_parameters(slurm_additional_parameters={"dependency": "afterany:" + ":".join(job.job_id for job in first_jobs)})
    elif first_jobs:
        for job in first_jobs:
            job.wait()
    for run in (run for run in todo if not run.baseline_of):
        shutil.rmtree(runs_dir / run.run_id, ignore_errors=True)
        executor.submit(FitJob(run, runs_dir, planned))
        submitted.append(run.run_id)
    return submitted


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtlbench sweep", description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--runs", type=Path, default=None, help="folder of the run folders (default: runs/<spec name>)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (locally)")
    parser.add_argument("--wait", action="store_true", help="wait for another sweep that uses the runs folder, instead of stopping")
    parser.add_argument(
        "--gpus-per-run",
        "--gpus",
        dest="gpus_per_run",
        type=int,
        default=None,
        help="GPUs of each run (DDP over them when more than 1): locally its own CUDA_VISIBLE_DEVICES "
        "(default: 1 when --jobs > 1 on a machine with GPUs, else none assigned); on SLURM, per job (default 1)",
    )
    parser.add_argument(
        "--runs-per-gpu",
        type=int,
        default=1,
        help="runs sharing each GPU (locally; for models that leave a GPU mostly idle): the first run goes alone "
        "to measure its memory, and the sweep stops with one line where that many runs do not fit",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write the leaderboard (default: <runs>/leaderboard)")
    parser.add_argument("--slurm", action="store_true", help="submit one SLURM job per run with submitit")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--timeout-min", type=int, default=600, help="time limit of a job; it is then requeued and resumes")
    parser.add_argument("--signal-delay-s", type=int, default=120, help="seconds before the limit at which a job is told to stop")
    parser.add_argument("--cluster", choices=["slurm", "local", "debug"], default=None, help="submitit executor (default: slurm)")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise ValueError(f"sweep: --jobs takes 1 or more, got {args.jobs}")
    slurm = None
    if args.slurm:
        gpus = 1 if args.gpus_per_run is None else args.gpus_per_run  # (--gpus is its other spelling)
        if gpus < 0:
            raise ValueError(f"sweep: --gpus-per-run takes 0 (CPU jobs) or more, got {gpus}")
        # Lightning's SLURM environment expects one task per GPU, each a DDP rank; USR2 comes
        # --signal-delay-s before the time limit, and the job is requeued and resumed
        slurm = {"gpus_per_node": gpus, "tasks_per_node": max(gpus, 1), "timeout_min": args.timeout_min}
        slurm.update(slurm_partition=args.slurm_partition, slurm_signal_delay_s=args.signal_delay_s, cluster=args.cluster)
        slurm = {key: value for key, value in slurm.items() if value is not None}
    if args.runs is None:
        args.runs = Path("runs") / Path(args.spec).stem
    try:
        raw = parse_yaml(read_text(args.spec, limit=MAX_SPEC_BYTES, what="sweep spec")) if args.spec.is_file() else None
    except (yaml.YAMLError, ValueError, RecursionError):
        raw = None  # load_spec says where
    if isinstance(raw, dict) and raw.get("study") == "linear_regression":  # the exact study: no runs, one process
        from mtlbench.bench.sweeps.study_plot import write_study

        for path in write_study(args.spec, raw, args.out or args.runs):
            print(path)
        return 0
    options = {"gpus_per_run": args.gpus_per_run, "runs_per_gpu": args.runs_per_gpu, "wait": args.wait}
    outcome = run_sweep(args.spec, args.runs, jobs=args.jobs, slurm=slurm, **options)
    print(", ".join(f"{len(ids)} {name}" for name, ids in outcome.items()))
    for run_id in outcome["failed"]:
        print(f"failed: {run_id} (log: {args.runs / (run_id + '.log')})")
    for run_id in outcome["blocked"]:
        print(f"not started: {run_id} (its single-task baselines failed)")
    for run_id in outcome["diverged"]:
        print(f"diverged: {run_id} (a result: the leaderboard lists it; log: {args.runs / (run_id + '.log')})")
    if not outcome["submitted"]:
        from mtlbench.leaderboards.cli import render_and_summarise

        out = args.out if args.out is not None else args.runs / "leaderboard"
        from mtlbench.leaderboards.records import network_of_arguments

        spec = load_spec(args.spec)
        stl = spec["stl"] or {}
        baselines = {"stl_optimizer": stl.get("optimizer"), "stl_model": network_of_arguments(stl.get("args", []), Path.cwd())}
        print(render_and_summarise(args.runs, out, perf=spec.get("perf"), **baselines)[1])
    return 1 if outcome["failed"] or outcome["blocked"] else 0
