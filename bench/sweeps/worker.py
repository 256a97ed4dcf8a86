"""Long-lived sweep workers: ``--jobs N`` processes that each import the suite once and train
many runs in turn, instead of one new interpreter per run (7 to 9 s of imports on 2 CPU cores,
a quarter of a reference run).

The sweep (parent) holds one :class:`Worker` per job. It sends a run as one JSON line on the
worker's stdin: ``{"args": [...], "log": PATH}``; the worker points its own stdout and stderr
(file descriptors 1 and 2, so C-level output too) at the run's log, trains the run with
:func:`fit_in_process`, and answers ``{"code": N}`` on a pipe of its own. A run that raises is
that run's failure (its traceback in its log, its record ``failed``); the worker goes on with the
next. A worker that dies (a segfault, the OOM killer) fails only the run it was training: the
sweep writes why in that run's log and starts a new worker for the next run.

Run ``python -m mtlbench.bench.sweeps.worker``: the sweep starts it; nobody else needs to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

WORKER_MODULE = "mtlbench.bench.sweeps.worker"


@contextlib.contextmanager
def logs_into(stream) -> Iterator[None]:
    """Send everything a run prints or logs to ``stream``: stdout, stderr, the root logger and
    Lightning's loggers, which keep their own handler on the original stderr."""
    handler = logging.StreamHandler(stream)
    own = {name: logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric")}
    saved = {name: (logger.handlers[:], logger.propagate) for name, logger in own.items()}
    for logger in own.values():
        logger.handlers, logger.propagate = [handler], False
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        root.removeHandler(handler)
        for name, logger in own.items():
            logger.handlers, logger.propagate = saved[name]


def fit_in_process(args: Sequence[str], stream) -> int:
    """``mtlbench fit ARGS`` in this process, its output in ``stream``; its exit code. An
    exception ends the run, not the process: its traceback goes to ``stream``."""
    from mtlbench.bench.run.launch import main as cli_main

    code = 1
    with logs_into(stream):
        try:
            code = cli_main(["fit", *args])
        except Exception as error:  # the whole traceback in the run's log; the console gets one line
            traceback.print_exc(file=stream)
            print(f"run failed: {type(error).__name__}: {error}", file=stream)
        finally:
            wandb = sys.modules.get("wandb")
            if wandb is not None and wandb.run is not None:  # a failed run leaves its W&B run open
                wandb.finish(exit_code=code)
    return code


@contextlib.contextmanager
def _descriptors_into(path: Path) -> Iterator[object]:
    """File descriptors 1 and 2 (and so ``sys.stdout``, ``sys.stderr`` and C libraries) pointed at
    ``path`` (appended) for the block; yields the open stream."""
    with open(path, "a") as stream:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        try:
            yield stream
        finally:
            stream.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def serve(requests, replies) -> None:
    """Train each run requested on ``requests`` (JSON lines) and answer its exit code on ``replies``."""
    for line in requests:
        request = json.loads(line)
        with _descriptors_into(Path(request["log"])) as stream:
            code = fit_in_process(request["args"], stream)
        replies.write(json.dumps({"code": code}) + "\n")
        replies.flush()


def _signal_name(code: int) -> str:
    with contextlib.suppress(ValueError):
        return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    return f"exit code {code}"


class Worker:
    """The sweep's end of one worker process, started at its first run and again after a crash.

    Args:
        env: the worker's environment (its share of the cores, its devices).
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen | None = None
        self.started = 0  # processes started so far (1 unless one died)

    def _start(self, log: Path) -> subprocess.Popen:
        with open(log, "a") as first_log:  # what the worker prints before its first run (an import error) goes there
            self.started += 1
            return subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=first_log,
                env=self.env,
                text=True,
            )

    def run(self, args: Sequence[str], log: Path) -> int:
        """Train one run (``mtlbench fit ARGS``, output appended to ``log``); its exit code, 1
        where the worker died during it (the log says how)."""
        if self.process is None or self.process.poll() is not None:
            self.process = self._start(log)
        try:
            self.process.stdin.write(json.dumps({"args": list(args), "log": str(log)}) + "\n")
            self.process.stdin.flush()
            reply = self.process.stdout.readline()
        except BrokenPipeError:
            reply = ""
        if reply:
            return int(json.loads(reply)["code"])
        code = self.process.wait()
        self.process = None
        with open(log, "a") as stream:
            ended = _signal_name(code)
            print(f"mtlbench sweep: the worker process training this run ended ({ended}); a new one takes the next run", file=stream)
        return 1

    def close(self) -> None:
        """End the worker: its stdin closes, it finishes and exits."""
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait()
            self.process = None


def main() -> int:
    replies = os.fdopen(os.dup(1), "w")  # answers go to the sweep's pipe; fd 1 itself follows the runs' logs
    os.dup2(2, 1)
    serve(sys.stdin, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
