"""Errors a user can fix by changing the method, optimizer or trainer configuration."""


class MethodConfigError(ValueError):
    """A method cannot run as configured (e.g. fp16 with a gradient method); the message says why."""


class BaselineError(ValueError):
    """The single-task baselines given for model selection are missing or do not fit the run."""


DIVERGED_EXIT = 3  # mtlbench fit's exit status for a run that diverged (2: a user error)


class CheckpointError(ValueError):
    """A checkpoint cannot be read (missing, truncated, not a torch checkpoint); the message names it."""


class RunFileError(ValueError):
    """A file of a run folder (gradient statistics) does not fit its format; the message names it."""


class Diverged(RuntimeError):
    """A training step produced a non-finite loss or update; the run stops at that step.

    ``details`` (step, task, method, what) goes into the run record, whose status becomes
    ``diverged``: a result of the method, listed as such by the leaderboard, not a crash.
    """

    def __init__(self, step: int, task: str | None, method: str, what: str) -> None:
        self.details = {"step": step, "task": task, "method": method, "what": what}
        where = f" of task '{task}'" if task else ""
        super().__init__(f"{method} diverged at step {step}: {what}{where} is not finite")
