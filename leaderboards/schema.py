"""The run record schema (``mtlbench.run/1``) as the leaderboard reads it, checked before use.

Run records come from other people as often as from our own runs (a colleague's sweep, a W&B
project, a published table's ``records/``), so each one is checked field by field against what
the tables read: types, the task and metric names the metrics use, numbers where numbers
belong. A record that does not fit is rejected whole, with the first reason, and listed as such;
it is never half-read. Names are free text (tables escape them); numbers may be NaN only where
a run's results can be (metrics of a diverged run), never where they steer the tables (learning
rate, seed).
"""

from __future__ import annotations

import math
from typing import Any

SCHEMA = "mtlbench.run/1"
STATUSES = ("running", "fitted", "complete", "diverged", "failed")
DIRECTIONS = ("higher", "lower")
MAX_NAME = 200  # characters of a method, task, metric or model name
MAX_MAGNITUDE = 1e15  # a finite result beyond this is no metric, loss or cost: it would overflow the tables' arithmetic
SLACK = 1e-6  # float rounding of a cosine or a mean of cosines beyond its bound
AFFINITY_DIRECTIONS = ("adam", "sgd")  # the update a task affinity lookahead takes


class RecordError(ValueError):
    """A run record does not fit the schema; the message is the first reason."""


def _name(value: Any) -> str:
    """A key from the record, short and printable, for a reason (the tables escape it again)."""
    text = str(value)
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(condition: bool, reason: str) -> None:
    if not condition:
        raise RecordError(reason)


def _text(value: Any, where: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    fits = isinstance(value, str) and 0 < len(value) <= MAX_NAME and value.isprintable()  # no newline, NUL or bidi control
    _check(fits, f"{where} must be a name of 1 to {MAX_NAME} printable characters")


def _object(value: Any, where: str, optional: bool = False) -> dict:
    if value is None and optional:
        return {}
    _check(isinstance(value, dict), f"{where} must be an object")
    return value


def _number(
    value: Any, where: str, optional: bool = False, finite: bool = False, positive: bool = False, within: tuple[float, float] | None = None
) -> None:
    """A number; NaN and infinities only where neither ``finite``, ``positive`` nor ``within``
    is asked (a diverged run's results); a finite one within +-MAX_MAGNITUDE and ``within``."""
    if value is None and optional:
        return
    _check(_is_number(value), f"{where} must be a number")
    if finite or positive or within:
        _check(math.isfinite(value), f"{where} must be finite")
    if math.isfinite(value):
        low, high = within or (-MAX_MAGNITUDE, MAX_MAGNITUDE)
        _check(low <= value <= high, f"{where} must lie in [{low:g}, {high:g}]")
    if positive:
        _check(value > 0, f"{where} must be positive")


def _task_metrics(value: Any, where: str, tasks: set[str], optional: bool = True) -> None:
    """``{task: {metric: number}}`` over declared tasks (NaN allowed: a diverged run's result)."""
    if value is None and optional:
        return
    for task, metrics in _object(value, where).items():
        _check(task in tasks, f"{where} names task {_name(task)}, which dataset.tasks does not declare")
        for metric, number in _object(metrics, f"{where}[{_name(task)}]").items():
            _text(metric, f"a metric name in {where}[{_name(task)}]")
            _number(number, f"{where}[{_name(task)}][{_name(metric)}]")


def validate_record(record: Any) -> None:
    """Raise :class:`RecordError` with the first reason ``record`` does not fit ``mtlbench.run/1``
    as the leaderboard reads it; return quietly when it fits."""
    _object(record, "the record")
    _check(record.get("schema") == SCHEMA, f"schema must be '{SCHEMA}'")
    _check(record.get("status") in STATUSES, f"status must be one of {', '.join(STATUSES)}")
    _text(_object(record.get("method"), "method").get("name"), "method.name")
    optimizer = _object(record.get("optimizer"), "optimizer", optional=True)
    if optimizer:
        _text(optimizer.get("name"), "optimizer.name")
        _number(optimizer.get("lr"), "optimizer.lr", optional=True, positive=True)
    seed = record.get("seed")
    _check(seed is None or (type(seed) is int), "seed must be an integer or null")
    dataset = _object(record.get("dataset"), "dataset")
    _text(dataset.get("name"), "dataset.name", optional=True)
    declared = dataset.get("tasks")
    _check(isinstance(declared, list) and len(declared) > 0, "dataset.tasks must be a non-empty list")
    for entry in declared:
        _text(_object(entry, "a dataset.tasks entry").get("name"), "a dataset.tasks name")
    tasks = {entry["name"] for entry in declared}
    _check(len(tasks) == len(declared), "dataset.tasks names a task twice")
    for task, metrics in _object(record.get("directions"), "directions", optional=True).items():
        _check(task in tasks, f"directions names task {_name(task)}, which dataset.tasks does not declare")
        for metric, way in _object(metrics, f"directions[{_name(task)}]").items():
            _text(metric, f"a metric name in directions[{_name(task)}]")
            _check(way in DIRECTIONS, f"directions[{_name(task)}][{_name(metric)}] must be 'higher' or 'lower'")
    metrics = _object(record.get("metrics"), "metrics")
    _task_metrics(metrics.get("test"), "metrics.test", tasks)
    _task_metrics(metrics.get("test_last_epochs_mean"), "metrics.test_last_epochs_mean", tasks)
    history = metrics.get("val") or []
    _check(isinstance(history, list), "metrics.val must be a list")
    for index, entry in enumerate(history):
        _object(entry, f"metrics.val[{index}]")
        _task_metrics(entry.get("tasks"), f"metrics.val[{index}].tasks", tasks)
        _number(entry.get("select"), f"metrics.val[{index}].select", optional=True)
    cost = _object(record.get("cost"), "cost", optional=True)
    timing = _object(cost.get("seconds_per_step"), "cost.seconds_per_step", optional=True)
    _number(timing.get("median"), "cost.seconds_per_step.median", optional=True, positive=True)
    for field in ("peak_memory_mb", "peak_reserved_mb", "device_memory_mb"):
        _number(cost.get(field), f"cost.{field}", optional=True, within=(0, MAX_MAGNITUDE))
    for part, seconds in _object(record.get("budget"), "budget", optional=True).items():
        _text(part, "a budget part")
        _number(seconds, f"budget[{_name(part)}]", within=(0, MAX_MAGNITUDE))
    statistics = _object(record.get("gradient_statistics"), "gradient_statistics", optional=True)
    for kind in ("inter_task", "inter_sample"):  # the summaries the tables show: cosines in [-1, 1], the others in [0, 1]
        for stat, span in (("cos", (-1 - SLACK, 1 + SLACK)), ("mag_sim", (0, 1 + SLACK))):
            key = f"{kind}/{stat}"
            if key in statistics:
                entry = _object(statistics[key], f"gradient_statistics['{key}']")
                _number(entry.get("mean"), f"gradient_statistics['{key}'].mean", within=span)
        rate = statistics.get(f"{kind}/conflict_rate")
        _number(rate, f"gradient_statistics['{kind}/conflict_rate']", optional=True, within=(0, 1))
    _check_affinity(record.get("task_affinity"), tasks)
    _check_machine(record.get("machine"))
    divergence = _object(record.get("divergence"), "divergence", optional=True)
    if divergence:
        _check(type(divergence.get("step")) is int, "divergence.step must be an integer")
        _text(divergence.get("what"), "divergence.what")
        _text(divergence.get("task"), "divergence.task", optional=True)
    config = _object(record.get("config"), "config", optional=True)
    _check_config(config, tasks)
    model = config.get("model")
    net = model.get("net") if isinstance(model, dict) else None
    init = net.get("init_args") if isinstance(net, dict) else None
    if isinstance(init, dict) and "backbone" in init:
        _text(init["backbone"], "config.model.net.init_args.backbone")
    if isinstance(net, dict) and net.get("class_path") is not None:
        _text(net["class_path"], "config.model.net.class_path")


def _matrix(value: Any, where: str, size: int, within: tuple[float, float]) -> None:
    """A ``size`` x ``size`` list of lists of finite numbers within ``within``."""
    square = isinstance(value, list) and len(value) == size and all(isinstance(row, list) and len(row) == size for row in value)
    _check(square, f"{where} must be a {size} x {size} list of numbers")
    for i, row in enumerate(value):
        for j, number in enumerate(row):
            _number(number, f"{where}[{i}][{j}]", within=within)


def _check_affinity(value: Any, tasks: set[str]) -> None:
    """The optional ``task_affinity`` section (callbacks/task_affinity.py): the inter-task
    affinity of Fifty et al. (2021), ``Z[i][j] = 1 - L_j(after i's lookahead) / L_j(before)``
    (at most 1, as losses are not negative), its spread over lookaheads, and the gradient cosine
    and magnitude similarity of the same steps, each a T x T matrix in the order of ``tasks``."""
    if value is None:
        return
    section = _object(value, "task_affinity")
    order = section.get("tasks")
    _check(isinstance(order, list) and len(order) > 0, "task_affinity.tasks must be a non-empty list")
    for task in order:
        declared = isinstance(task, str) and task in tasks
        _check(declared, f"task_affinity.tasks names task {_name(task)}, which dataset.tasks does not declare")
    _check(len(set(order)) == len(order), "task_affinity.tasks names a task twice")
    for field in ("every_n_steps", "lookaheads"):
        count = section.get(field)
        _check(type(count) is int and count >= 1, f"task_affinity.{field} must be an integer >= 1")
    _check(section.get("direction") in AFFINITY_DIRECTIONS, f"task_affinity.direction must be one of {', '.join(AFFINITY_DIRECTIONS)}")
    size = len(order)
    _matrix(section.get("affinity"), "task_affinity.affinity", size, (-MAX_MAGNITUDE, 1 + SLACK))
    _matrix(section.get("affinity_std"), "task_affinity.affinity_std", size, (0, MAX_MAGNITUDE))
    _matrix(section.get("cos"), "task_affinity.cos", size, (-1 - SLACK, 1 + SLACK))
    _matrix(section.get("mag_sim"), "task_affinity.mag_sim", size, (0, 1 + SLACK))


MACHINE_LISTS = ("cpu_flags", "gpus")  # lists of short names
MAX_MACHINE_LIST = 64  # names in one such list (flags, GPUs)
MAX_THREADS = 1 << 20


def _check_machine(value: Any) -> None:
    """The optional ``machine`` section (bench/run/machine.py; absent from older records): every
    value null, a boolean, a bounded number, a name, or a list of at most MAX_MACHINE_LIST names,
    so a table can show and fingerprint it; ``threads`` and ``cudnn`` integers."""
    if value is None:
        return
    section = _object(value, "machine")
    _check(len(section) <= MAX_MACHINE_LIST, f"machine must have at most {MAX_MACHINE_LIST} fields")
    for key, item in section.items():
        _text(key, "a machine field")
        where = f"machine[{_name(key)}]"
        if key in MACHINE_LISTS or isinstance(item, list):
            _check(isinstance(item, list) and len(item) <= MAX_MACHINE_LIST, f"{where} must be a list of at most {MAX_MACHINE_LIST} names")
            for name in item:
                _text(name, f"a name in {where}")
        elif key == "threads":
            _check(type(item) is int and 1 <= item <= MAX_THREADS, f"{where} must be an integer in [1, {MAX_THREADS}]")
        elif key == "cudnn":
            _check(item is None or (type(item) is int and 0 < item <= MAX_MAGNITUDE), f"{where} must be a positive integer or null")
        elif item is not None and not isinstance(item, bool):
            if _is_number(item):
                _number(item, where, finite=True)
            else:
                _text(item, where)


def _check_config(config: dict, tasks: set[str]) -> None:
    """The parts of the record's config a table reads: the tasks it trained (the same as
    ``dataset.tasks``) and the study settings' qualifiers (short names)."""
    data = config.get("data")
    init = data.get("init_args") if isinstance(data, dict) else None
    if not isinstance(init, dict):
        return
    trained = init.get("tasks")
    if trained is not None:
        _check(
            isinstance(trained, list) and all(isinstance(task, str) for task in trained),
            "config.data.init_args.tasks must be a list of names",
        )
        _check(set(trained) == tasks, "config.data.init_args.tasks differs from dataset.tasks: the record contradicts itself")
    for qualifier in ("noisy_task", "missing_mode"):
        _text(init.get(qualifier), f"config.data.init_args.{qualifier}", optional=True)
