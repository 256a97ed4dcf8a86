"""Callbacks of every benchmark run: cost measurement and the run record."""

from bench.callbacks.run_record import RECORD_NAME, SCHEMA, RunRecord
from bench.callbacks.step_cost import StepCost

__all__ = ["RECORD_NAME", "SCHEMA", "RunRecord", "StepCost"]
