"""The ``axes:`` of a sweep spec: scaling studies beyond methods and seeds, checked at spec time.

::

    axes:
      train_size: [50, 100, 200, 400]              # training images (nested subsets)
      width: [0.5, 1, 2]                           # decoder (and ResNet / ConvNeXt backbone) width
      label_noise: {task: depth, levels: [0, 0.2, 0.5]}
      missing_input: {mode: patches, fractions: [0, 0.25, 0.5]}   # or mode: channels
      tasks: [[segmentation], [segmentation, depth], [segmentation, depth, normal]]
      relatedness: {tasks: [segmentation], groups: [related, unrelated]}   # + a task group

Several axes make a grid (their product). ``tasks`` and ``relatedness`` choose each run's task
set (``relatedness`` adds one of the dataset's named ``task_groups`` to ``tasks``), so a spec
takes one of them; the single-task baselines of a sweep are shared by every task set of one
setting of the other axes. Every value is checked against the base config's datamodule before a
run starts: an unknown axis, an empty list, a task or group the dataset does not have is one
line naming the axis and the fix.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mtlbench.leaderboards.study import CONFIG_AXES, TASK_AXES
from mtlbench.leaderboards.untrusted import load_yaml

AXES = (*CONFIG_AXES, *TASK_AXES)
MISSING_MODES = ("patches", "channels")


@dataclass(frozen=True)
class AxisValue:
    """One value of one axis: its run-id token, its ``mtlbench fit`` arguments, and the task set
    it gives the run (task axes only)."""

    token: str
    args: tuple[str, ...] = ()
    tasks: tuple[str, ...] | None = None
    noisy_task: str | None = None  # the task a label-noise value corrupts (a run without it is unaffected)


@dataclass(frozen=True)
class Point:
    """One point of the grid: a value per axis."""

    values: tuple[AxisValue, ...] = field(default_factory=tuple)

    @property
    def tasks(self) -> tuple[str, ...] | None:
        return next((value.tasks for value in self.values if value.tasks is not None), None)

    @property
    def suffix(self) -> str:
        """Appended to run ids: ``-n100-w0.5``; ``""`` without axes."""
        return "".join(f"-{value.token}" for value in self.values)

    @property
    def setting_suffix(self) -> str:
        """The suffix without the task axes: what the single-task baselines of this point share."""
        return "".join(f"-{value.token}" for value in self.values if value.tasks is None)

    @property
    def args(self) -> tuple[str, ...]:
        """The ``mtlbench fit`` arguments of the point, the same for its multi-task runs and its
        single-task baselines (so that both carry the setting in their configs)."""
        return tuple(arg for value in self.values for arg in value.args)


class _Data:
    """What the spec's datamodule offers: its task names and named task groups."""

    def __init__(self, cls: type) -> None:
        self.name = cls.__name__
        self.tasks = [task.name for task in getattr(cls, "available_tasks", ())]
        self.groups: dict[str, tuple[str, ...]] = dict(getattr(cls, "task_groups", {}))
        self.kinds = {task.name: task.kind for task in getattr(cls, "available_tasks", ())}  # name -> TaskKind


def data_class(base_config: Path) -> type:
    """The datamodule class a run config names (inline, or in the file its ``data:`` points to)."""
    config = load_yaml(Path(base_config), what="base config") or {}
    data = config.get("data") if isinstance(config, dict) else None
    if isinstance(data, str):
        data = load_yaml(Path(base_config).parent / data, what="data config")
    class_path = data.get("class_path") if isinstance(data, dict) else None
    if not isinstance(class_path, str) or "." not in class_path:
        raise ValueError(f"base config {base_config}: no data class_path found; a study's axes are checked against the datamodule")
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _numbers(where: str, values: object, check, rule: str) -> list:
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where} needs a non-empty list of values ({rule})")
    bad = [value for value in values if isinstance(value, bool) or not isinstance(value, (int, float)) or not check(value)]
    if bad:
        raise ValueError(f"{where}: {bad[0]!r} is not {rule}")
    if len(set(values)) != len(values):
        raise ValueError(f"{where}: values repeat in {values}")
    return values


def _mapping(where: str, entry: object, keys: tuple[str, str], example: str) -> tuple:
    if not isinstance(entry, dict) or set(entry) != set(keys):
        raise ValueError(f"{where} takes a mapping {example}")
    return entry[keys[0]], entry[keys[1]]


def _task_set(where: str, tasks: object, data: _Data) -> tuple[str, ...]:
    if not isinstance(tasks, list) or not tasks or not all(isinstance(task, str) for task in tasks):
        raise ValueError(f"{where}: a task set is a non-empty list of task names, got {tasks!r}")
    unknown = [task for task in tasks if task not in data.tasks]
    if unknown:
        raise ValueError(f"{where}: {data.name} has no task {unknown[0]!r}; its tasks are {', '.join(data.tasks)}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"{where}: task set {tasks} names a task twice")
    return tuple(tasks)


def _task_args(tasks: tuple[str, ...]) -> tuple[str, ...]:
    return (f"--data.init_args.tasks=[{','.join(tasks)}]",)


def axis_values(where: str, axis: str, entry: object, data: _Data) -> list[AxisValue]:
    """The checked values of one axis."""
    if axis == "train_size":
        sizes = _numbers(where, entry, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        return [AxisValue(f"n{size}", (f"--data.init_args.train_size={size}",)) for size in sizes]
    if axis == "width":
        widths = _numbers(where, entry, lambda v: v > 0, "a width multiplier > 0")
        return [AxisValue(f"w{width:g}", (f"--model.net.init_args.width={width}",)) for width in widths]
    if axis == "label_noise":
        task, levels = _mapping(where, entry, ("task", "levels"), "{task: depth, levels: [0, 0.2, 0.5]}")
        if task not in data.tasks:
            raise ValueError(f"{where}: {data.name} has no task {task!r}; its tasks are {', '.join(data.tasks)}")
        limit = data.kinds[task].noise_limit
        levels = _numbers(where, levels, lambda v: 0 <= v <= limit, f"a noise level in [0, {limit:g}]")
        args = (f"--data.init_args.noisy_task={task}",)
        return [AxisValue(f"noise-{task}{level:g}", (f"--data.init_args.label_noise={level}", *args), noisy_task=task) for level in levels]
    if axis == "missing_input":
        mode, fractions = _mapping(
            where, entry, ("mode", "fractions"), "{mode: patches, fractions: [0, 0.25, 0.5]} (mode: patches or channels)"
        )
        if mode not in MISSING_MODES:
            raise ValueError(f"{where}: mode {mode!r} is unknown; choose patches or channels")
        fractions = _numbers(where, fractions, lambda v: 0 <= v < 1, "a fraction in [0, 1)")
        mode_arg = f"--data.init_args.missing_mode={mode}"
        return [AxisValue(f"missing-{mode}{f:g}", (f"--data.init_args.missing_input={f}", mode_arg)) for f in fractions]
    if axis == "tasks":
        if not isinstance(entry, list) or not entry:
            raise ValueError(f"{where} needs a non-empty list of task sets, e.g. [[segmentation], [segmentation, depth]]")
        sets = [_task_set(where, tasks, data) for tasks in entry]
        if len(set(sets)) != len(sets):
            raise ValueError(f"{where}: task sets repeat")
        return [AxisValue("tasks-" + ".".join(tasks), _task_args(tasks), tasks) for tasks in sets]
    if axis == "relatedness":
        base, groups = _mapping(where, entry, ("tasks", "groups"), "{tasks: [segmentation], groups: [related, unrelated]}")
        base = _task_set(where, base, data)
        if not data.groups:
            raise ValueError(f"{where}: {data.name} names no task groups; use the tasks axis with explicit task sets")
        if not isinstance(groups, list) or not groups:
            raise ValueError(f"{where} needs a non-empty list of groups, from {', '.join(data.groups)}")
        unknown = [group for group in groups if group not in data.groups]
        if unknown:
            raise ValueError(f"{where}: {data.name} has no task group {unknown[0]!r}; its groups are {', '.join(data.groups)}")
        values = []
        for group in groups:
            tasks = base + tuple(task for task in data.groups[group] if task not in base)
            values.append(AxisValue(f"aux-{group}", _task_args(tasks), tasks))
        return values
    raise ValueError(f"{where}: unknown axis {axis!r}; the axes are {', '.join(AXES)}")


def grid(spec_path: Path, axes: object, base_config: Path, base_tasks: Sequence[str] | None) -> list[Point]:
    """The checked points of a spec's ``axes`` (one empty point without axes)."""
    if axes is None:
        return [Point()]
    where = f"sweep spec {spec_path}: axes"
    if not isinstance(axes, dict) or not axes:
        raise ValueError(f"{where} takes a mapping of axis -> values; the axes are {', '.join(AXES)}")
    unknown = [axis for axis in axes if axis not in AXES]
    if unknown:
        raise ValueError(f"{where}: unknown axis {unknown[0]!r}; the axes are {', '.join(AXES)}")
    if all(axis in axes for axis in TASK_AXES):
        raise ValueError(f"{where}: tasks and relatedness both choose the task set; give one of them")
    cls = data_class(base_config)
    data = _Data(cls)
    columns = [axis_values(f"{where}.{axis}", axis, entry, data) for axis, entry in axes.items()]
    points = [Point(values) for values in itertools.product(*columns)]
    default = tuple(base_tasks or getattr(cls, "default_tasks", None) or data.tasks)
    trained = {task for point in points for task in (point.tasks or default)}
    noisy = {value.noisy_task for point in points for value in point.values} - {None}
    if noisy - trained:
        raise ValueError(
            f"{where}.label_noise: task {sorted(noisy - trained)[0]!r} is not trained by the sweep (tasks: {', '.join(sorted(trained))})"
        )
    return points
