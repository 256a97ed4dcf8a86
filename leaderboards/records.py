"""Run records (``results.json``, schema ``mtlbench.run/1``) as plain data: no torch here.

Every record is checked against the schema (:mod:`mtlbench.leaderboards.schema`) before anything of it is
read, and its config is only ever read as data (the model's name), never instantiated.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlbench.leaderboards.schema import RecordError, validate_record
from mtlbench.leaderboards.study import study_point, study_setting
from mtlbench.leaderboards.untrusted import MAX_RECORD_BYTES, MAX_SPEC_BYTES, UntrustedFileError, load_yaml, parse_json, read_bytes

RECORD_NAME = "results.json"
TEST_METRICS = {"selected": "test", "last_epochs_mean": "test_last_epochs_mean"}  # --test-metrics -> record field


@dataclass(frozen=True)
class Run:
    """What the leaderboard needs of one run."""

    path: Path
    status: str
    dataset: str
    model: str
    optimizer: str
    lr: float | None
    method: str
    tasks: tuple[str, ...]
    seed: int | None
    test: dict[str, float] = field(default_factory=dict)  # "task/metric" -> value
    val: dict[str, float] = field(default_factory=dict)  # "task/metric" -> value at the selected epoch
    select: float | None = None  # the run's selection score (val/select) at the selected epoch
    higher_is_better: dict[str, bool] = field(default_factory=dict)  # "task/metric" -> direction
    seconds_per_step: float | None = None
    peak_memory_mb: float | None = None
    gradients: dict[str, float] = field(default_factory=dict)
    divergence: str = ""  # where a diverged run stopped: "step 12: the loss of task 'depth' not finite"
    setting: str = ""  # the scaling-study setting, e.g. "train_size=100" ("" outside studies)
    study: dict[str, float | None] = field(default_factory=dict)  # the value of each study axis (mtlbench.leaderboards.study)
    left_out: str = ""  # why a board does not admit the run although it finished (mtlbench.leaderboards.admission)
    budget: dict[str, float] = field(default_factory=dict)  # seconds per part of the run's wall time (bench/run/budget.py)
    machine: dict[str, Any] = field(default_factory=dict)  # the record's machine section ({} before it existed; leaderboards/machines.py)

    @property
    def is_single_task(self) -> bool:
        return len(self.tasks) == 1

    @property
    def diverged(self) -> bool:
        return any(not math.isfinite(value) for value in self.test.values())

    @property
    def usable(self) -> bool:
        return self.status == "complete" and bool(self.test) and not self.diverged and not self.left_out

    @property
    def exclusion(self) -> str:
        """Why the run is left out of the tables ('' when it is not)."""
        if self.left_out:
            return self.left_out
        if self.status == "diverged":
            return f"diverged at {self.divergence}" if self.divergence else "diverged"
        if self.status != "complete":
            return f"status {self.status}"
        if not self.test:
            return "no test metrics"
        if self.diverged:
            return "diverged (non-finite test metrics)"
        return ""


def _model_name(config: dict[str, Any] | None) -> str:
    """The timm backbone's name, else the network's class (``SegNet``, ``MTANSegNet``)."""
    try:
        net = config["model"]["net"]
    except (KeyError, TypeError):
        return "unknown"
    return model_name(net)


def model_name(net: Any) -> str:
    """The name a board shows for a ``model.net`` config: its backbone, else its class."""
    if not isinstance(net, dict):
        return "unknown"
    init = net.get("init_args")
    if isinstance(init, dict) and init.get("backbone") is not None:
        return str(init["backbone"])
    class_path = net.get("class_path")
    return str(class_path).rsplit(".", 1)[-1] if isinstance(class_path, str) and class_path else "unknown"


def network_of_arguments(args: list[str], base: Path) -> str | None:
    """The model name of a ``--model.net=FILE`` among fit arguments (a spec's ``stl.args``),
    FILE read as YAML data relative to ``base``; None without one."""
    for arg in args:
        key, _, value = str(arg).partition("=")
        if key == "--model.net" and value:
            path = Path(value) if Path(value).is_absolute() else base / value
            try:
                return model_name(load_yaml(path, limit=MAX_SPEC_BYTES, what="the single-task network"))
            except UntrustedFileError as error:
                raise ValueError(str(error)) from None
    return None


def _gradient_summary(record: dict[str, Any]) -> dict[str, float]:
    stats = record.get("gradient_statistics") or {}
    out = {}
    for key, name in (("inter_task/cos", "cos"), ("inter_task/mag_sim", "mag_sim")):
        if isinstance(stats.get(key), dict):
            out[name] = stats[key]["mean"]
    if "inter_task/conflict_rate" in stats:
        out["conflict_rate"] = stats["inter_task/conflict_rate"]
    for key, name in (("inter_sample/cos", "sample_cos"), ("inter_sample/mag_sim", "sample_mag_sim")):  # Elich et al.'s comparison
        if isinstance(stats.get(key), dict):
            out[name] = stats[key]["mean"]
    if "inter_sample/conflict_rate" in stats:
        out["sample_conflict_rate"] = stats["inter_sample/conflict_rate"]
    return out


def _flat(tasks: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"{task}/{metric}": float(value) for task, metrics in tasks.items() for metric, value in metrics.items()}


def selected_validation(record: dict[str, Any]) -> dict[str, Any] | None:
    """The validation entry of the epoch the run selected (the lowest ``select``, first on ties);
    the last entry for records without selection scores; ``None`` without validation."""
    history = (record.get("metrics") or {}).get("val") or []
    scored = [entry for entry in history if entry.get("select") is not None]
    if scored:
        return min(scored, key=lambda entry: entry["select"] if math.isfinite(entry["select"]) else math.inf)
    return history[-1] if history else None


def parse_record(record: dict[str, Any], path: Path, test_metrics: str = "selected") -> Run:
    """A :class:`Run` from one parsed ``results.json``; raises :class:`RecordError` (a
    ValueError) for a record that does not fit the schema.

    ``test_metrics``: ``selected`` (the selected checkpoint's test metrics) or
    ``last_epochs_mean`` (the mean over the last epochs, as some papers report)."""
    validate_record(record)
    optimizer = record.get("optimizer") or {}
    test = record.get("metrics", {}).get(TEST_METRICS[test_metrics]) or {}
    chosen = selected_validation(record) or {}
    directions = record.get("directions") or {}
    timing = (record.get("cost") or {}).get("seconds_per_step") or {}
    return Run(
        path=path,
        status=str(record.get("status", "unknown")),
        dataset=str((record.get("dataset") or {}).get("name", "unknown")),
        model=_model_name(record.get("config")),
        optimizer=str(optimizer.get("name", "unknown")),
        lr=optimizer.get("lr"),
        method=str((record.get("method") or {}).get("name", "unknown")),
        tasks=tuple(task["name"] for task in (record.get("dataset") or {}).get("tasks", [])),
        seed=record.get("seed"),
        test=_flat(test),
        val=_flat(chosen.get("tasks") or {}),
        select=chosen.get("select"),
        higher_is_better={f"{task}/{metric}": way == "higher" for task, metrics in directions.items() for metric, way in metrics.items()},
        seconds_per_step=timing.get("median"),
        peak_memory_mb=(record.get("cost") or {}).get("peak_memory_mb"),
        gradients=_gradient_summary(record),
        divergence=_divergence(record.get("divergence")),
        setting=study_setting(record.get("config")),
        study=study_point(record.get("config")),
        budget={part: float(seconds) for part, seconds in (record.get("budget") or {}).items()},
        machine=dict(record.get("machine") or {}),
    )


def _divergence(details: Any) -> str:
    """Where a diverged run stopped, from the record's ``divergence`` section (plain text only)."""
    if not isinstance(details, dict):
        return ""
    task = details.get("task")
    where = f" of task '{task}'" if isinstance(task, str) else ""
    return f"step {int(details.get('step', -1))}: {details.get('what', 'a value')!s}{where} not finite"


def scan_runs(root: Path) -> tuple[list[Path], list[Path]]:
    """One walk of ``root``: every run record (sorted, absolute) and every linked folder
    (sorted, relative to ``root``). W&B's own folders (``.../wandb/...``: its copies of records,
    its link to the latest run) are left out. Linked folders are not entered: a link may lead
    anywhere, so their records are named as left out instead of read."""
    records, linked = [], []
    for folder, names, files in os.walk(root):
        names[:] = [name for name in names if name != "wandb"]
        here = Path(folder)
        linked += [(here / name).relative_to(root) for name in names if (here / name).is_symlink()]
        # a folder (or a link to one) named like a record is listed too: its reader says what it is
        records += [here / name for name in (*files, *names) if name == RECORD_NAME]
    return sorted(records), sorted(linked)


def record_paths(root: Path) -> list[Path]:
    """Every run record under ``root`` (:func:`scan_runs`)."""
    return scan_runs(root)[0]


def read_record(path: Path, root: Path) -> dict:
    """One run record under ``root`` as checked data (:mod:`mtlbench.leaderboards.untrusted`): a regular
    file of bounded size inside ``root``; :class:`UntrustedFileError` (one line) otherwise."""
    return record_data(read_bytes(path, root, MAX_RECORD_BYTES, what="run record"), path)


def record_data(data: bytes, path: Path) -> dict:
    """The bytes of the run record ``path`` as checked data (JSON within the bounds of
    :func:`mtlbench.leaderboards.untrusted.parse_json`); :class:`UntrustedFileError` otherwise."""
    try:
        return parse_json(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        reason = f"is not UTF-8 text (byte {error.start})"
    except RecursionError:
        reason = "is nested too deeply to read"
    except json.JSONDecodeError as error:
        reason = f"is not JSON ({error.msg} at line {error.lineno})"
    except ValueError as error:
        reason = f"is not valid: {(str(error).strip().splitlines() or [type(error).__name__])[0][:240]}"
    raise UntrustedFileError("run record", path, reason)


def _problem(error: UntrustedFileError | RecordError) -> str:
    """How a record that is not read is listed after its path."""
    if isinstance(error, UntrustedFileError):
        return f"unreadable run record: {error.reason}"
    return f"rejected run record ({error})"


def load_runs(root: Path, test_metrics: str = "selected") -> tuple[list[Run], list[str]]:
    """Every run record under ``root`` (sorted by path; ``Run.path`` relative to ``root``, so
    tables do not depend on where the records lie) and the files that could not be read."""
    if test_metrics not in TEST_METRICS:
        raise ValueError(f"test_metrics must be one of {sorted(TEST_METRICS)}, got '{test_metrics}'")
    runs, problems = [], []
    paths, linked = scan_runs(root)
    for path in paths:
        try:
            runs.append(parse_record(read_record(path, root), path.relative_to(root), test_metrics))
        except (UntrustedFileError, RecordError) as error:
            problems.append(f"{path.relative_to(root)}: {_problem(error)}")
    for folder in linked:
        problems.append(f"{folder}: a linked folder; its records are not read (copy the runs themselves into the folder)")
    return runs, problems
