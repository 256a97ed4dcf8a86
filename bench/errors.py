"""Errors a user can fix by changing the method, optimizer or trainer configuration."""


class MethodConfigError(ValueError):
    """A method cannot run as configured (e.g. fp16 with a gradient method); the message says why."""


class BaselineError(ValueError):
    """The single-task baselines given for model selection are missing or do not fit the run."""
