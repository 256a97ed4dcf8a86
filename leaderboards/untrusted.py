"""Reading files that come from others (run and perf records, published tables, specs) as data.

Every reader of such a file goes through here, so the same bounds hold everywhere:

- only a regular file is opened (a FIFO or a device would hang or never end), never through a
  link that leads outside the folder given, and never more than a size limit;
- text must be UTF-8; every string in the parsed data valid Unicode (no lone surrogates, which
  no file can be written with) and at most :data:`MAX_STRING` characters;
- every integer within +-2^64 (a 400-digit integer overflows every float operation) and the
  nesting at most :data:`MAX_DEPTH` deep;
- YAML through the safe loader only, refused when its aliases would expand the document beyond
  :data:`MAX_YAML_NODES` nodes (an alias bomb is a few hundred bytes that expand exponentially).

Each failure is an :class:`UntrustedFileError` whose message is one line naming the file and
what is wrong with it; callers list it and go on with the other files.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

MAX_RECORD_BYTES = 16 * 2**20  # a run record is ~15 kB; a long run's history stays far below this
MAX_SPEC_BYTES = 2**20  # sweep and protocol specs, published tables, network configs
MAX_STRING = 4096  # characters of any string (a path may take 4096 bytes on Linux)
MAX_INTEGER = 2**64
MAX_DEPTH = 64
MAX_YAML_NODES = 100_000


class UntrustedFileError(ValueError):
    """A file from others that is not read: the message is one line naming it and why;
    ``reason`` is the why alone (for lists that name the file already)."""

    def __init__(self, what: str, path: Path, reason: str) -> None:
        super().__init__(f"{what} {path} {reason}")
        self.reason = reason


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def read_bytes(path: Path, root: Path | None = None, limit: int = MAX_RECORD_BYTES, what: str = "file") -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes that lies (after every
    link is followed) under ``root`` when one is given."""
    path = Path(path)
    resolved = path.resolve()
    if root is not None and not _inside(resolved, Path(root).resolve()):
        raise UntrustedFileError(what, path, "is a link that leads outside the folder read; copy the file itself into the folder")
    try:
        descriptor = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise UntrustedFileError(what, path, f"cannot be opened ({error.strerror})") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise UntrustedFileError(what, path, "is not a regular file (a FIFO, device or folder); give a plain file")
        if status.st_size > limit:
            raise UntrustedFileError(what, path, f"holds {status.st_size} bytes, more than the {limit} allowed")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(descriptor, min(2**20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(descriptor)
    if size > limit:
        raise UntrustedFileError(what, path, f"holds more than the {limit} bytes allowed")
    return b"".join(chunks)


def read_text(path: Path, root: Path | None = None, limit: int = MAX_RECORD_BYTES, what: str = "file") -> str:
    """:func:`read_bytes` decoded as UTF-8."""
    try:
        return read_bytes(path, root, limit, what).decode("utf-8")
    except UnicodeDecodeError as error:
        raise UntrustedFileError(what, path, f"is not UTF-8 text (byte {error.start})") from None


def check_data(value: Any, where: str = "", depth: int = 0) -> None:
    """Raise :class:`ValueError` (one line) unless every string, key and integer of ``value``
    (parsed JSON or YAML) is within the bounds above."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep at {where or 'the top'}")
    if isinstance(value, str):
        _check_string(value, where)
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        return
    elif isinstance(value, int):
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise ValueError(f"{where or 'a value'} is an integer of {len(str(abs(value)))} digits, beyond +-2^64")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key, f"a key in {where or 'the top'}") if isinstance(key, str) else check_data(key, where, depth + 1)
            check_data(item, f"{where}.{key}" if where else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_data(item, f"{where}[{index}]", depth + 1)


def _check_string(text: str, where: str) -> None:
    if len(text) > MAX_STRING:
        raise ValueError(f"{_short(where)} is a string of {len(text)} characters, more than {MAX_STRING}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{_short(where)} is not valid Unicode (a lone surrogate)") from None


def _short(where: str, limit: int = 80) -> str:
    """A location for a message, printable and short whatever the keys on its way are."""
    shown = where if where.isprintable() else where.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return (shown[:limit] + "…") if len(shown) > limit else (shown or "a value")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > 20:
        raise ValueError(f"an integer of {len(digits.lstrip('-'))} digits, beyond +-2^64")
    return int(digits)


def parse_json(text: str) -> Any:
    """JSON text as data within the bounds (NaN and Infinity stay: a diverged run's results)."""
    data = json.loads(text, parse_int=_bounded_int)
    check_data(data)
    return data


def load_json(path: Path, root: Path | None = None, limit: int = MAX_RECORD_BYTES, what: str = "file") -> Any:
    """A JSON file from others as checked data; :class:`UntrustedFileError` otherwise."""
    return _load(path, root, limit, what, parse_json, ValueError)


def parse_yaml(text: str) -> Any:
    """YAML text through the safe loader, refused before construction when its aliases expand
    it beyond :data:`MAX_YAML_NODES` nodes."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        count = _expanded_nodes(node, {})
        if count > MAX_YAML_NODES:
            raise ValueError(f"its aliases expand it to {count:.3g} nodes, more than {MAX_YAML_NODES}")
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    check_data(data)
    return data


def _expanded_nodes(node: Any, seen: dict[int, float]) -> float:
    """Nodes of the document once every alias is expanded (memoised on shared nodes: linear)."""
    known = seen.get(id(node))
    if known is not None:
        return known
    seen[id(node)] = math.inf  # a node that contains itself expands without end
    value = node.value
    if isinstance(value, list):
        children = [item for pair in value for item in pair] if value and isinstance(value[0], tuple) else value
        count = 1 + sum(_expanded_nodes(child, seen) for child in children)
    else:
        count = 1
    seen[id(node)] = count
    return count


def load_yaml(path: Path, root: Path | None = None, limit: int = MAX_SPEC_BYTES, what: str = "file") -> Any:
    """A YAML file from others as checked data; :class:`UntrustedFileError` otherwise."""
    import yaml

    return _load(path, root, limit, what, parse_yaml, (yaml.YAMLError, ValueError))


def _load(path: Path, root: Path | None, limit: int, what: str, parse, invalid: type | tuple[type, ...]) -> Any:
    """``parse`` of the bounded text of ``path``; every failure one :class:`UntrustedFileError`."""
    text = read_text(path, root, limit, what)
    try:
        return parse(text)
    except RecursionError:
        raise UntrustedFileError(what, path, "is nested too deeply to read") from None
    except json.JSONDecodeError as error:
        raise UntrustedFileError(what, path, f"is not JSON ({error.msg} at line {error.lineno})") from None
    except invalid as error:
        raise UntrustedFileError(what, path, f"is not valid: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return _short(lines[0], 240) if lines else type(error).__name__
