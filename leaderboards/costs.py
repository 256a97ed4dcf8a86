"""Cost columns from a ``mtlbench perf`` record (schema ``mtlbench.perf/1``), read as plain data.

Per-run timings are taken minutes apart, on machines shared with other jobs, so two sweeps of
the same spec can disagree by half on a method's cost; ``mtlbench perf`` measures every method
in one process, interleaved. A perf record is joined to the boards of the same model: each row
whose method the record measured (in its default configuration: no options) takes the record's
ratio to EW and peak memory. Records may come from others: every field is checked before use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, UntrustedFileError, load_json

PERF_SCHEMA = "mtlbench.perf/1"
MAX_NAME = 1000  # characters of a name or the command line a perf record shows


@dataclass(frozen=True)
class MethodCost:
    x_ew: float
    peak_memory_mb: float | None


@dataclass(frozen=True)
class PerfCosts:
    path: Path
    backbone: str
    source: str  # one line for the table: date, device, input, command
    methods: dict[str, MethodCost]  # method name as in run records -> cost


def _number(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"perf record {path}: {what} is {value!r}, not a positive number; regenerate it with mtlbench perf")
    return float(value)


def _text(value: Any, what: str, path: Path) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise ValueError(f"perf record {path}: {what} is not text of at most {MAX_NAME} characters; regenerate it with mtlbench perf")
    return value


def load_perf(path: Path) -> PerfCosts:
    """The costs a perf record gives; ValueError (one line) for anything else."""
    try:
        record = load_json(Path(path), limit=MAX_SPEC_BYTES, what="perf record")
    except UntrustedFileError as error:
        raise ValueError(f"{error}; pass the file mtlbench perf --out wrote") from None
    if not isinstance(record, dict) or record.get("schema") != PERF_SCHEMA:
        raise ValueError(f"{path} is not a perf record (schema {PERF_SCHEMA}); pass the file mtlbench perf --out wrote")
    model, size, variants = record.get("model"), record.get("input"), record.get("variants")
    if not isinstance(model, dict) or not isinstance(size, dict) or not isinstance(variants, dict):
        raise ValueError(f"perf record {path} lacks model, input or variants; regenerate it with mtlbench perf")
    methods: dict[str, MethodCost] = {}
    for label, row in variants.items():
        if not isinstance(row, dict):
            raise ValueError(f"perf record {path}: variant {label!r} is not an object; regenerate it with mtlbench perf")
        if row.get("reference") or row.get("options") or row.get("x_ew") is None:
            continue  # reference steps and non-default options have no run to attach to
        name = _text(row.get("method"), f"variant {label!r}'s method", path)
        peak = row.get("peak_memory_mb")
        peak_mb = None if peak is None else _number(peak, f"{label}'s peak", path)
        methods[name] = MethodCost(_number(row["x_ew"], f"{label}'s x_ew", path), peak_mb)
    created = _text(record.get("created", ""), "created", path)[:10]
    batch, height, width = (int(_number(size.get(key), key, path)) for key in ("batch_size", "height", "width"))
    dims = f"batch {batch} at {height}x{width}"
    source = f"{created}, {_text(record.get('device'), 'device', path)}, {dims}: {_text(record.get('command'), 'command', path)}"
    return PerfCosts(Path(path), _text(model.get("backbone"), "model backbone", path), source, methods)
