"""Callbacks of benchmark runs: cost measurement, the run record, the gradient probe, mid-epoch checkpoints."""

from bench.callbacks.gradient_probe import STATS_FILE, GradientProbe
from bench.callbacks.run_record import RECORD_NAME, SCHEMA, RunRecord
from bench.callbacks.step_checkpoint import MidEpochCheckpoint
from bench.callbacks.step_cost import StepCost

__all__ = ["RECORD_NAME", "SCHEMA", "STATS_FILE", "GradientProbe", "MidEpochCheckpoint", "RunRecord", "StepCost"]
