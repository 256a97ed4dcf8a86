"""A sweep's run folders: names that stay inside the runs folder, one folder per configuration,
and one sweep at a time in a runs folder.

A run's folder is ``RUNS/<id>``, its id built from the spec's names (method, optimizer, task),
its learning rate, seed and study point. Names that could leave the runs folder (a path
separator, ``..``), or that no file system keeps as written (NUL, control characters), are
refused before any run; so are two configurations whose ids coincide (``A`` x ``B-C`` and
``A-B`` x ``C``, or a seed listed twice), since one of them would silently never train.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from mtlbench.leaderboards.folder_names import folder_name_problem

LOCK = ".sweep.lock"


def check_name(kind: str, name: object) -> str:
    """``name`` if it is safe in a run id, else a one-line ``ValueError`` naming it.

    Example:
        >>> check_name("method", "Nash-MTL")
        'Nash-MTL'
        >>> check_name("method", "../x")
        Traceback (most recent call last):
        ...
        ValueError: sweep spec: method '../x' cannot name a run folder (it holds '/' or '..'); rename it
    """
    text = str(name)
    if problem := folder_name_problem(text):
        raise ValueError(f"sweep spec: {kind} {text!r} cannot name a run folder ({problem}); rename it")
    return text


def lr_text(lr: float) -> str:
    """The learning rate in a run id: its short form where that is exact, else every digit, so
    two learning rates never share a folder.

    Example:
        >>> lr_text(0.001), lr_text(0.0010000001), lr_text(3e-05)
        ('0.001', '0.0010000001', '3e-05')
    """
    short = f"{lr:g}"
    return short if float(short) == float(lr) else repr(float(lr))


def check_unique(runs: Iterable[tuple[str, str]]) -> None:
    """``runs``: (run id, the configuration in words). Two configurations with one id are a
    one-line ``ValueError`` naming both."""
    seen: dict[str, str] = {}
    for run_id, description in runs:
        if run_id in seen:
            raise ValueError(
                f"sweep spec: {seen[run_id]} and {description} would share the run folder {run_id!r}; "
                "rename a method or optimizer, or list each seed and learning rate once"
            )
        seen[run_id] = description


@contextlib.contextmanager
def runs_lock(runs_dir: Path, wait: bool = False) -> Iterator[None]:
    """Holds ``RUNS/.sweep.lock`` while a sweep uses the folder: a second sweep on it stops in one
    line (or, with ``wait``, waits for the first to finish). The lock goes with the process that
    holds it, also when it is killed."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(runs_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "another process"
            raise ValueError(
                f"sweep: the runs folder {runs_dir} is in use by another sweep (pid {holder}); wait for it "
                "(or pass --wait) or give another --runs"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(descriptor)
