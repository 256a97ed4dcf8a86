"""Where a run's wall time goes: the time budget of the run record.

A sweep's hours are not only its training steps: interpreter start-up and imports, data set-up,
validation, the gradient probe, checkpoints, the test passes and the record take their share.
:func:`begin_run` opens the budget of the run this process is about to make (``MtlbenchCLI``);
the parts that nest inside others (probe, checkpoints, record) are measured where they happen
with :func:`part`, and the enclosing intervals (a training step, a validation, a test pass)
are measured by :class:`~mtlbench.bench.run.callbacks.TimeBudget` less what nested in them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from mtlbench.bench import IMPORTED_AT

# "probe" holds both observers: the gradient probe and the task affinity
PARTS = ("start_up", "setup", "training_steps", "validation", "probe", "checkpoints", "test", "record")
NESTED = ("probe", "checkpoints", "record")  # measured inside other parts, and taken out of them


def clock() -> float:
    """The budget's one clock (monotonic seconds); every part is read off it."""
    return time.perf_counter()


def since_first_import() -> float:
    """Seconds since this process first imported the suite (``mtlbench.bench``): the imports and
    anything the process did before its first run. (Not the process's age: a shell that ``exec``s
    the command hands on its own start time.)"""
    return max(0.0, clock() - IMPORTED_AT)


class Budget:
    """Seconds per part of one run, and its wall time from the CLI's start (plus the start-up)."""

    def __init__(self, start_up: float) -> None:
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.seconds["start_up"] = start_up
        self.began = clock()

    def nested(self) -> float:
        """Seconds in the nested parts so far (an enclosing interval takes out what grew in it)."""
        return sum(self.seconds[name] for name in NESTED)

    def fields(self) -> dict[str, float]:
        """The record's ``budget``: every part, what none of them covers (``other``: data loading
        between steps, the framework's own work) and the total, in seconds."""
        total = self.seconds["start_up"] + clock() - self.began
        parts = {name: round(value, 3) for name, value in self.seconds.items()}
        return {**parts, "other": round(max(0.0, total - sum(self.seconds.values())), 3), "total": round(total, 3)}


_current: Budget | None = None
_runs_in_process = 0


def begin_run() -> Budget:
    """Open the budget of the run about to start here. Its start-up is the time since the suite's
    first import for the first run of a process, and nothing for later ones (an in-process sweep
    imports once); the interpreter's own start before that (tens of milliseconds) is not counted."""
    global _current, _runs_in_process
    _runs_in_process += 1
    _current = Budget(start_up=since_first_import() if _runs_in_process == 1 else 0.0)
    return _current


def current() -> Budget | None:
    return _current


@contextlib.contextmanager
def part(name: str) -> Iterator[None]:
    """Count the time inside the block towards ``name`` of the run in progress (none: nothing)."""
    started = clock()
    try:
        yield
    finally:
        if _current is not None:
            _current.seconds[name] += clock() - started
