"""Where a run's wall time goes: the time budget of the run record.

A sweep's hours are not only its training steps: interpreter start-up and imports, data set-up,
validation, the gradient probe, checkpoints, the test passes and the record take their share.
:func:`begin_run` opens the budget of the run this process is about to make (``launch.main``);
the parts that nest inside others (probe, checkpoints, record) are measured where they happen
with :func:`part`, and the enclosing intervals (a training step, a validation, a test pass)
are measured by :class:`~mtlbench.bench.run.callbacks.TimeBudget` less what nested in them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

PARTS = ("start_up", "setup", "training_steps", "validation", "probe", "checkpoints", "test", "record")
NESTED = ("probe", "checkpoints", "record")  # measured inside other parts, and taken out of them


def process_age() -> float | None:
    """Seconds since this process started (Linux: ``/proc``), or ``None`` where that is not known."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as system:
            boot = next(float(line.split()[1]) for line in system if line.startswith("btime"))
        started = boot + float(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5): start time, in ticks after boot
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return max(0.0, time.time() - started)


class Budget:
    """Seconds per part of one run, and its wall time from ``launch.main`` (plus the start-up)."""

    def __init__(self, start_up: float) -> None:
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.seconds["start_up"] = start_up
        self.began = time.perf_counter()

    def nested(self) -> float:
        """Seconds in the nested parts so far (an enclosing interval takes out what grew in it)."""
        return sum(self.seconds[name] for name in NESTED)

    def fields(self) -> dict[str, float]:
        """The record's ``budget``: every part, what none of them covers (``other``: data loading
        between steps, the framework's own work) and the total, in seconds."""
        total = self.seconds["start_up"] + time.perf_counter() - self.began
        parts = {name: round(value, 3) for name, value in self.seconds.items()}
        return {**parts, "other": round(max(0.0, total - sum(self.seconds.values())), 3), "total": round(total, 3)}


_current: Budget | None = None
_runs_in_process = 0


def begin_run() -> Budget:
    """Open the budget of the run about to start here. Its start-up is the process's age for the
    first run of a process, and nothing for later ones (an in-process sweep imports once)."""
    global _current, _runs_in_process
    _runs_in_process += 1
    _current = Budget(start_up=(process_age() or 0.0) if _runs_in_process == 1 else 0.0)
    return _current


def current() -> Budget | None:
    return _current


@contextlib.contextmanager
def part(name: str) -> Iterator[None]:
    """Count the time inside the block towards ``name`` of the run in progress (none: nothing)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if _current is not None:
            _current.seconds[name] += time.perf_counter() - started
