"""Where a run lies on the axes of a scaling study, read from its record's config as data.

A study sweep (``axes:`` in a sweep spec, :mod:`mtlbench.bench.sweeps.study_axes`) sets these arguments of the
run config; the leaderboard keeps runs of different settings apart and ``mtlbench plot
--study`` draws metrics against them. The task axes (``tasks``, ``relatedness``) are read from
the record's task list instead.
"""

from __future__ import annotations

import math
from typing import Any

# axis -> (config section holding init_args, argument, value when the config does not set it,
#          the argument naming what the value applies to)
CONFIG_AXES: dict[str, tuple[tuple[str, ...], str, float | None, str | None]] = {
    "train_size": (("data",), "train_size", None, None),
    "width": (("model", "net"), "width", 1.0, None),
    "label_noise": (("data",), "label_noise", 0.0, "noisy_task"),
    "missing_input": (("data",), "missing_input", 0.0, "missing_mode"),
}
TASK_AXES = ("tasks", "relatedness")


def _init_args(config: Any, section: tuple[str, ...]) -> dict:
    node = config
    for key in section:
        node = node.get(key) if isinstance(node, dict) else None
    init = node.get("init_args") if isinstance(node, dict) else None
    return init if isinstance(init, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def study_point(config: Any) -> dict[str, float | None]:
    """The value of every config axis for a run (the default where the config leaves it out;
    ``None`` for a value that is not a finite number, e.g. the full training set).

    Example:
        >>> study_point({"data": {"init_args": {"train_size": 100}}, "model": {"net": {"init_args": {"width": 0.5}}}})
        {'train_size': 100, 'width': 0.5, 'label_noise': 0.0, 'missing_input': 0.0}
    """
    point = {}
    for axis, (section, argument, default, _) in CONFIG_AXES.items():
        init = _init_args(config, section)
        point[axis] = _number(init[argument]) if init.get(argument) is not None else default
    return point


def study_setting(config: Any) -> str:
    """The run's study setting as plain text: its axes that differ from the default, with what
    they apply to (``"train_size=100, label_noise=0.2 (depth)"``), or ``""``.

    Example:
        >>> study_setting({"data": {"init_args": {"label_noise": 0.2, "noisy_task": "depth"}}})
        'label_noise=0.2 (depth)'
    """
    parts = []
    for axis, value in study_point(config).items():
        section, _, default, qualifier = CONFIG_AXES[axis]
        if value is None or value == default:
            continue
        named = _init_args(config, section).get(qualifier) if qualifier else None
        parts.append(f"{axis}={value:g}" + (f" ({named})" if isinstance(named, str) else ""))
    return ", ".join(parts)
