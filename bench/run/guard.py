"""What a user can fix ends a command in one line: :func:`guarded` runs a command and turns user
errors into one line on stderr and exit status 2 (3 for a diverged run).

Torch-free at import (the error classes are imported only when something failed), so the light
commands (``mtlbench plot``, ``data``) use it without loading Lightning.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence

from jsonargparse import ArgumentError

from mtlbench.bench.run.console import quiet_libraries
from mtlbench.bench.run.errors import DIVERGED_EXIT, Diverged

RESUME_ENV = "MTLBENCH_RESUME"  # the first process's decision, for DDP's other processes


def user_error_types() -> tuple[type[BaseException], ...]:
    """The errors a user can fix by changing an argument or a file: one line, no traceback."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from mtlbench.bench.run.errors import BaselineError, CheckpointError, MethodConfigError, RunFileError
    from mtlbench.datamodules import DatasetError
    from mtlbench.models import ModelConfigError

    return (
        ModelConfigError,
        DatasetError,
        MethodConfigError,
        BaselineError,
        CheckpointError,
        RunFileError,
        FileNotFoundError,
        MisconfigurationException,
    )


def user_error(error: BaseException) -> BaseException | None:
    """The user-fixable error behind ``error`` (jsonargparse wraps errors raised while it
    instantiates classes), or ``None`` for a genuine failure whose traceback matters."""
    kinds = user_error_types()
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def argument_error_line(message: str) -> str:
    """One line from jsonargparse's multi-line error: the option and the reason that matters.

    Example:
        >>> argument_error_line('Parser key "trainer.max_epochs":\\n  - Expected a <class "int">\\n  Given value: abc')
        "--trainer.max_epochs: 'abc' is not a valid int"
    """
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return "invalid arguments"
    found = re.match(r'Parser key "([^"]+)":\s*(.*)', lines[0])
    if not found:
        return lines[0]
    key, body = found.group(1), [line for line in [found.group(2), *lines[1:]] if line]
    given = next((line.split(":", 1)[1].strip() for line in body if line.startswith("Given value:")), "")
    for index, line in enumerate(body):
        if line.startswith("- Problem with given class_path"):  # the class was found: why it did not take the value
            nested = []
            for deeper in body[index + 1 :]:
                if deeper.startswith(("- ", "Given value")):
                    break
                nested.append(deeper)
            sub = re.match(r'Parser key "([^"]+)"', nested[0]) if nested else None
            if sub and len(nested) > 1:
                return f"--{key}.init_args.{sub.group(1)}: {nested[1]}"
            if nested:
                return f"--{key}: {nested[0]}"
    reasons = [line[2:] for line in body if line.startswith("- ")]
    paths = [m.group(1) for line in body for m in [re.search(r"Expected a path but (\S+)", line)] if m]
    if paths:
        value = given or paths[0]
        return f"--{key}: '{value}' is neither an existing config file nor an importable class; check the path"
    types = [m.group(1) for reason in reasons for m in [re.match(r"Expected a <class [\"'](\w+)[\"']>", reason)] if m]
    if types and len(types) == len(reasons):
        return f"--{key}: '{given}' is not a valid {' or '.join(t if t != 'NoneType' else 'null' for t in types)}"
    return f"--{key}: {reasons[0] if reasons else ' '.join(body[:1])}"


def guarded(command: Callable[[], object], args: Sequence[str]) -> int:
    """Run ``command`` with the libraries quietened (unless ``--verbose``), and turn what a user can
    fix into one line on stderr and exit status 2 (3 for a diverged run); anything else keeps its
    traceback. ``command``'s own int is its status."""
    quiet_libraries()
    inherited = RESUME_ENV in os.environ  # set by the first process for DDP's others
    try:
        status = command()
    except ArgumentError as error:  # a bad option or config path: one line, no usage (--help has it)
        name = f"mtlbench {args[0]}" if args and not args[0].startswith("-") else "mtlbench"
        print(f"mtlbench: error: {argument_error_line(str(error))}; see `{name} --help`", file=sys.stderr)
        return 2
    except Diverged as error:  # a result, recorded as such: one line, its own exit status
        print(f"mtlbench: {error}; the run record says 'diverged'", file=sys.stderr)
        return DIVERGED_EXIT
    except Exception as error:
        cause = user_error(error)
        if cause is None and isinstance(error, OSError) and error.filename and not os.environ.get("MTLBENCH_DEBUG"):
            print(f"mtlbench: error: {error}; check that the folder exists and is writable (the output folder options)", file=sys.stderr)
            return 2
        if cause is None or os.environ.get("MTLBENCH_DEBUG"):
            raise
        print(f"mtlbench: error: {cause}", file=sys.stderr)
        return 2
    finally:
        if not inherited:  # this command's decision, not the next one's (in-process sweeps, tests)
            os.environ.pop(RESUME_ENV, None)
    return status if isinstance(status, int) else 0
