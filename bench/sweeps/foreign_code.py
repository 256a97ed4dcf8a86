"""The code from outside the suite that a sweep's run configs name.

A run config is code: LightningCLI imports every ``class_path`` it names and resolves every
dotted name given where a callable belongs (``lr_lambda: os._exit``), and runs it. A sweep spec
is code for the same reason, since it names run configs. Before a sweep starts its runs,
:func:`foreign_names` lists each importable dotted name in those configs that lies outside the
suite and the libraries its own configs use (:data:`SUITE_PREFIXES`), so whoever runs a spec
from someone else sees what it would run.

Example:
    >>> names = foreign_names(["--model.init_args.net.class_path=this.Anything", "--seed_everything=0"])
    >>> [(found.name, found.where) for found in names]
    [('this.Anything', 'model.init_args.net.class_path')]
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, UntrustedFileError, load_yaml, parse_yaml

SUITE_PREFIXES = (
    "mtlbench.",
    "torch.optim.",
    "pytorch_lightning.loggers.",
    "pytorch_lightning.callbacks.",
    "lightning.pytorch.loggers.",
    "lightning.pytorch.callbacks.",
)
FILE_SUFFIXES = (".yaml", ".yml")
DATA_SUFFIXES = (*FILE_SUFFIXES, ".json", ".ckpt", ".pt", ".pth", ".npy", ".npz", ".csv", ".md", ".png", ".txt", ".safetensors")
MAX_FILES = 256  # config files followed from one sweep
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


@dataclass(frozen=True)
class ForeignName:
    """A dotted name from outside the suite, and where it was found (file and key)."""

    name: str
    where: str


def foreign_names(args: Iterable[str]) -> list[ForeignName]:
    """The dotted names outside :data:`SUITE_PREFIXES` that ``args`` (``mtlbench fit``
    arguments) and the config files they name import, each once, in the order first met."""
    scanner = _Scanner()
    arguments = list(args)
    for index, arg in enumerate(arguments):
        if arg == "--config" and index + 1 < len(arguments):
            scanner.file(Path(arguments[index + 1]), "")
        elif arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            if key == "config" or value.endswith(FILE_SUFFIXES):
                scanner.file(Path(value), "" if key == "config" else key)
            else:
                scanner.text(value, key, "")
    return list(scanner.found.values())


def announce(args: Iterable[str], stream: TextIO) -> list[ForeignName]:
    """Write the names :func:`foreign_names` finds to ``stream``, one per line; returns them."""
    names = foreign_names(args)
    if names:
        stream.write("sweep: its configs name code from outside mtlbench, which the runs import and run (a config is code):\n")
        for found in names:
            stream.write(f"  {found.name}  ({found.where})\n")
        stream.flush()
    return names


def _is_foreign(text: str) -> bool:
    if not DOTTED.fullmatch(text) or text.startswith(SUITE_PREFIXES) or text.lower().endswith(DATA_SUFFIXES):
        return False
    try:
        return importlib.util.find_spec(text.split(".", 1)[0]) is not None  # the top module is found, not imported
    except (ImportError, ValueError):
        return False


class _Scanner:
    def __init__(self) -> None:
        self.found: dict[str, ForeignName] = {}
        self.seen: set[Path] = set()

    def file(self, path: Path, key: str) -> None:
        path = path.resolve()
        if path in self.seen or len(self.seen) >= MAX_FILES:
            return
        self.seen.add(path)
        try:
            data = load_yaml(path, limit=MAX_SPEC_BYTES, what="run config")
        except (UntrustedFileError, ValueError, OSError, RecursionError):
            return  # the run itself names what is wrong with the file
        self.data(data, key, path)

    def text(self, value: str, key: str, where: str) -> None:
        try:
            data = parse_yaml(value)
        except (yaml.YAMLError, ValueError, RecursionError):
            data = value  # an argument that is not YAML is a plain string
        self.data(data, key, where)

    def data(self, value: Any, key: str, source: Path | str) -> None:
        for path, text in _strings(value, key):
            if isinstance(source, Path) and text.endswith(FILE_SUFFIXES):
                candidate = Path(text) if Path(text).is_absolute() else source.parent / text
                if candidate.is_file():
                    self.file(candidate, path)
            elif _is_foreign(text) and text not in self.found:
                self.found[text] = ForeignName(text, f"{_shown(source)}: {path}" if str(source) else path)


def _shown(source: Path | str) -> str:
    """A config file as the user can find it: relative to the working folder where it lies in it."""
    if isinstance(source, Path) and source.is_relative_to(Path.cwd()):
        return str(source.relative_to(Path.cwd()))
    return str(source)


def _strings(value: Any, key: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string value in ``value`` with its dotted key path."""
    if depth > 64:
        return
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, f"{key}.{name}" if key else str(name), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{key}[{index}]", depth + 1)
