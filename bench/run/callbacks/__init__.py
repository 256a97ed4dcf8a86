"""Callbacks of benchmark runs: cost, the time budget, the run record, the gradient probe, the task
affinity, mid-epoch and last-epochs checkpoints."""

from mtlbench.bench.run.callbacks.gradient_probe import STATS_FILE, GradientProbe
from mtlbench.bench.run.callbacks.last_epochs import LastEpochs
from mtlbench.bench.run.callbacks.run_record import RECORD_NAME, SCHEMA, RunRecord
from mtlbench.bench.run.callbacks.step_checkpoint import MidEpochCheckpoint
from mtlbench.bench.run.callbacks.step_cost import StepCost
from mtlbench.bench.run.callbacks.task_affinity import TaskAffinity
from mtlbench.bench.run.callbacks.time_budget import TimeBudget

__all__ = [
    "RECORD_NAME",
    "SCHEMA",
    "STATS_FILE",
    "GradientProbe",
    "LastEpochs",
    "MidEpochCheckpoint",
    "RunRecord",
    "StepCost",
    "TaskAffinity",
    "TimeBudget",
]
