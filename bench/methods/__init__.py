"""Multi-task methods: loss weightings (losses -> scalar), one file per method."""

from bench.methods.base import LossWeighting
from bench.methods.equal_weighting import EqualWeighting

__all__ = ["EqualWeighting", "LossWeighting"]
