"""The run record: ``results.json``, the one file the leaderboard reads about a run.

Written atomically at the start of fitting, after every validation epoch, after testing and on
failure, so a killed run leaves its last complete state and its status says how far it got.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from mtlbench.bench.run import budget
from mtlbench.bench.run.errors import Diverged
from mtlbench.bench.run.machine import this_machine
from mtlbench.leaderboards.atomic_write import write_json_atomic
from mtlbench.leaderboards.schema import validate_record
from mtlbench.leaderboards.untrusted import load_json

SCHEMA = "mtlbench.run/1"
RECORD_NAME = "results.json"
_PACKAGES = ("mtlbench", "torch", "torchvision", "pytorch-lightning", "timm", "torchmetrics", "numpy", "albumentations", "torchjd")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(directory: Path) -> dict[str, Any]:
    """Commit and dirtiness of the checkout holding ``directory`` (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _task_metrics(metrics: dict[str, Any], stage: str, task_names: list[str]) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` from Lightning's ``callback_metrics`` keys ``stage/task/metric``."""
    table: dict[str, dict[str, float]] = {name: {} for name in task_names}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == stage and parts[1] in table and parts[2] != "loss":
            table[parts[1]][parts[2]] = float(value)
    return table


def _mean_tasks(tables: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Metric-wise mean of several ``{task: {metric: value}}`` tables."""
    return {task: {metric: sum(t[task][metric] for t in tables) / len(tables) for metric in tables[0][task]} for task in tables[0]}


def _is_test_entry(entry: Any, tasks: set[str]) -> bool:
    """Whether ``entry`` is ``{"epoch": int, "tasks": {task: {metric: number}}}`` over ``tasks``."""
    if not isinstance(entry, dict) or type(entry.get("epoch")) is not int or not isinstance(entry.get("tasks"), dict):
        return False
    table = entry["tasks"]
    return set(table) == tasks and all(
        isinstance(metrics, dict) and all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in metrics.values())
        for metrics in table.values()
    )


def earlier_last_epoch_tests(path: Path, history: list[dict[str, Any]], tasks: set[str]) -> list[dict[str, Any]]:
    """The last epochs' test metrics held by the record at ``path``, written by an earlier fit of
    this run (a finished run continued for more epochs: those epochs' weights were deleted once
    tested). Taken only from a valid record whose validation history is ``history``, the one
    the resumed checkpoint holds, so they belong to the very weights that were trained; else []."""
    try:
        earlier = load_json(path, path.parent, what="run record")
        validate_record(earlier)
    except (OSError, ValueError):  # unreadable, not JSON, or not a run record
        return []
    metrics = earlier["metrics"]
    entries = metrics.get("test_last_epochs")
    if not history or metrics.get("val") != history or not isinstance(entries, list):
        return []
    validated = {entry["epoch"]: entry for entry in entries if _is_test_entry(entry, tasks)}
    validated_epochs = {entry["epoch"] for entry in history}
    return [validated[epoch] for epoch in sorted(validated) if epoch in validated_epochs]


class RunRecord(Callback):
    """Keeps ``results.json`` (schema ``mtlbench.run/1``) up to date in the run's log folder.

    Fields: status (running / fitted / complete / failed / diverged, with ``divergence``), resolved config, seed, method,
    optimizer, dataset and tasks, metric directions, per-epoch validation metrics with the
    selection score ``val/select``, the model selection, test metrics of the selected
    checkpoint and of the last epochs, cost (from callbacks that offer ``record_fields()``),
    versions and git commit, and the machine (:func:`~mtlbench.bench.run.machine.this_machine`:
    rank 0's under DDP).

    Whoever runs a test names what it evaluates by setting :attr:`evaluating` first:
    ``"selected"`` (the default; the run is then complete) or ``("last_epoch", epoch)``; and
    :attr:`also_last_epoch` names a last epoch whose checkpoint holds the selected weights (its
    entry is then the selected test's, with no second test of the same weights).

    Args:
        path: where to write; default ``<trainer.log_dir>/results.json``.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path) if path else None
        self.config: dict[str, Any] | None = None
        self.record: dict[str, Any] = {}
        self.evaluating: str | tuple[str, int] = "selected"
        self.also_last_epoch: int | None = None  # a last epoch whose weights the selected test evaluates too
        self._restored: dict[str, Any] | None = None  # the state of a checkpoint the fit resumes from

    # ------------------------------------------------------------------ writing
    def _target(self, trainer: pl.Trainer) -> Path:
        if self.path is None:
            self.path = Path(trainer.log_dir or trainer.default_root_dir) / RECORD_NAME
        return self.path

    def _write(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        with budget.part("record"):
            for callback in trainer.callbacks:
                if callback is not self and hasattr(callback, "record_fields"):
                    self.record.update(callback.record_fields())
            self.record["updated"] = _now()
            write_json_atomic(self._target(trainer), self.record)

    def _start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.record:
            return
        datamodule = trainer.datamodule
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self.record = {
            "schema": SCHEMA,
            "status": "running",
            "stage": stage,
            "started": _now(),
            "run_dir": str(self._target(trainer).parent),
            "config": self.config,
            "seed": int(os.environ["PL_GLOBAL_SEED"]) if "PL_GLOBAL_SEED" in os.environ else None,
            "method": {"name": pl_module.method_name, "repr": repr(pl_module.method), "refresh_every": pl_module.refresh_every},
            "optimizer": None
            if optimizer is None
            else {
                "name": type(optimizer).__name__,
                **{k: v for k, v in optimizer.defaults.items() if isinstance(v, (int, float, bool, str, tuple, list, type(None)))},
            },
            "dataset": {
                "name": type(datamodule).__name__ if datamodule is not None else None,
                "tasks": [{"name": t.name, "kind": t.kind.name, "channels": t.channels} for t in pl_module.tasks],
            },
            "directions": {
                task: {metric: "higher" if up else "lower" for metric, up in metrics.items()}
                for task, metrics in pl_module.metric_directions().items()
            },
            "trainer": {
                "precision": str(trainer.precision),
                "accelerator": type(trainer.accelerator).__name__,
                "devices": trainer.num_devices,
                "world_size": trainer.world_size,
                "max_epochs": trainer.max_epochs,
            },
            "metrics": {"val": [], "test": None, "test_weights": None, "test_last_epochs": [], "test_last_epochs_mean": None},
            "environment": {
                "versions": package_versions(),
                "git": git_state(Path.cwd()),
                "host": platform.node(),
                "pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # a sweep's --gpus-per-run sets it
                "gpus": [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())],
            },
            # the CPU, its float-kernel flags, BLAS, oneDNN, threads and GPUs: float32 results differ across them
            # (each rank makes its own; rank 0's is the one written)
            "machine": this_machine(cuda=trainer.strategy.root_device.type == "cuda"),
            "error": None,
        }

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._target(trainer)  # log_dir is a collective call under DDP: resolve it on every rank

    def _tell_loggers(self, trainer: pl.Trainer, hook: str, *args: Any) -> None:
        """Loggers that want the record (``describe_run``, ``attach_record``: W&B) get it."""
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                if hasattr(logger, hook):
                    getattr(logger, hook)(*args)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer, pl_module, "fit")
        if self._restored is not None:  # resumed from a checkpoint (a requeued job): keep what it saw
            history = list(self._restored.get("val", []))
            self.record["metrics"]["val"] = history
            self.record["resumed"] = list(self._restored.get("resumed", []))
            tested = earlier_last_epoch_tests(self._target(trainer), history, set(pl_module.task_names))
            self._set_last_epoch_tests(tested)
        self._write(trainer)
        self._tell_loggers(trainer, "describe_run", self.record)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restored is not None:  # the loops are restored by now
            self.record["resumed"].append({"epoch": trainer.current_epoch, "step": trainer.global_step, "at": _now()})
            self._restored = None
            self._write(trainer)

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint, so a resumed run's record keeps its validation history."""
        metrics = self.record.get("metrics", {}) if self.record else {}
        return {"val": metrics.get("val", []), "resumed": self.record.get("resumed", []) if self.record else []}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = {"val": list(state_dict.get("val", [])), "resumed": list(state_dict.get("resumed", []))}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not on_validation_epoch_end: callbacks run that hook before the module has computed
        # and logged the epoch's metrics.
        if trainer.sanity_checking or not self.record:
            return
        metrics = trainer.callback_metrics
        entry = {"epoch": trainer.current_epoch, "step": trainer.global_step, "tasks": _task_metrics(metrics, "val", pl_module.task_names)}
        for key in ("select", "loss"):
            if f"val/{key}" in metrics:
                entry[key] = float(metrics[f"val/{key}"])
        self.record["metrics"]["val"].append(entry)
        self._note_zero_updates(pl_module)
        self._write(trainer)

    def _note_zero_updates(self, pl_module: pl.LightningModule) -> None:
        """Steps that left the shared parameters where they were (every task gradient zero, or
        a method that returned no update), so that no such step passes silently."""
        count = getattr(pl_module, "zero_update_steps", 0)
        if count:
            self.record["zero_update_steps"] = count

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record["status"] = "fitted"
        self.record["epochs_completed"] = trainer.current_epoch
        self._note_zero_updates(pl_module)
        self._write(trainer)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.record:
            self._start(trainer, pl_module, "test")
            self._tell_loggers(trainer, "describe_run", self.record)

    def _set_last_epoch_tests(self, entries: list[dict[str, Any]]) -> None:
        metrics = self.record["metrics"]
        metrics["test_last_epochs"] = sorted(entries, key=lambda entry: entry["epoch"])
        metrics["test_last_epochs_mean"] = _mean_tasks([entry["tasks"] for entry in entries]) if entries else None

    def tested_epochs(self) -> set[int]:
        """The epochs whose test metrics the record holds (``test_last_epochs``)."""
        return {entry["epoch"] for entry in self.record.get("metrics", {}).get("test_last_epochs", [])}

    def keep_last_epochs(self, epochs: set[int]) -> None:
        """Keep the test metrics of ``epochs`` only (the last-epochs checkpoint callback's choice)."""
        if self.record:
            self._set_last_epoch_tests([e for e in self.record["metrics"]["test_last_epochs"] if e["epoch"] in epochs])

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        tasks = _task_metrics(trainer.callback_metrics, "test", pl_module.task_names)
        metrics = self.record["metrics"]
        if self.evaluating != "selected":
            _, epoch = self.evaluating
            self._set_last_epoch_tests(
                [e for e in metrics.get("test_last_epochs", []) if e["epoch"] != epoch] + [{"epoch": epoch, "tasks": tasks}]
            )
            self._write(trainer)
            return
        if self.also_last_epoch is not None:  # one test, two entries: the weights are the same
            epoch = self.also_last_epoch
            self._set_last_epoch_tests([e for e in metrics["test_last_epochs"] if e["epoch"] != epoch] + [{"epoch": epoch, "tasks": tasks}])
        metrics["test"] = tasks
        metrics["test_weights"] = str(trainer.ckpt_path) if trainer.ckpt_path else "final"
        self.record["status"] = "complete"
        self.record["finished"] = _now()
        self._write(trainer)
        self._tell_loggers(trainer, "attach_record", self._target(trainer))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not self.record:
            return
        if isinstance(exception, Diverged):  # the method's result, not a crash
            self.record["status"] = "diverged"
            self.record["divergence"] = exception.details
        else:
            self.record["status"] = "failed"
        self.record["error"] = f"{type(exception).__name__}: {exception}"
        self._write(trainer)
        self._tell_loggers(trainer, "attach_record", self._target(trainer))
