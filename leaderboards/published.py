"""Published results as data: a paper's table (``leaderboards/papers/*.yaml``), checked before use.

A file holds one table as printed: its source (citation, address, table, a quoted caption), the
dataset and protocol, the metric columns with their direction and the factor from mtlbench's
units to the paper's (``scale``: 100 where the paper prints percent), the single-task row, one
row per method and optimizer (mtlbench's method name, or null for a method it lacks, beside the
paper's own name), notes, and the qualitative claims the paper makes, each with its words.

Files are parsed with ``yaml.safe_load`` and every field is validated here; nothing in them is
executed or rendered unescaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mtlbench.leaderboards.untrusted import UntrustedFileError, load_yaml

SCHEMA = "mtlbench.published/1"
# claim kind -> the fields it needs (besides `kind` and `quote` or `read_from`)
CLAIM_FIELDS: dict[str, tuple[str, ...]] = {
    "best": ("method",),  # the method has the lowest Delta_m of the table
    "best_rank": ("method",),  # the method has the best mean rank over the metrics
    "beats": ("method", "reference"),  # the method's Delta_m is below the reference's
    "adam_beats_sgd": ("share",),  # Adam gives the lower Delta_m for all / the majority of methods
    "best_changes": (),  # the best method under Adam is not the best under SGD
    "magnitude_gap": (),  # inter-task gradient magnitudes are less similar than inter-sample ones
    "sample_conflict": (),  # inter-sample gradients conflict at least as much as inter-task ones
}
SHARES = ("all", "majority")


@dataclass(frozen=True)
class PublishedRow:
    method: str | None  # mtlbench's name; None: not in mtlbench
    paper_name: str
    optimizer: str
    values: tuple[float, ...]
    delta_m: float | None
    delta_m_std: float | None = None
    lr: float | None = None
    suspect: str = ""  # why the printed row is doubted ("" when it is not)


@dataclass(frozen=True)
class Claim:
    kind: str
    quote: str  # the paper's words ("" when read off the table)
    method: str | None = None
    reference: str | None = None
    share: str | None = None


@dataclass(frozen=True)
class PublishedTable:
    path: Path
    title: str
    source: dict[str, str]  # citation, url, table, quote
    dataset: str
    protocol: str
    stl_optimizer: str
    columns: tuple[str, ...]
    scale: tuple[float, ...]
    higher_is_better: tuple[bool, ...]
    stl: tuple[float, ...]
    rows: tuple[PublishedRow, ...]
    notes: tuple[str, ...]
    claims: tuple[Claim, ...]

    @property
    def methods(self) -> list[str]:
        return sorted({row.method for row in self.rows if row.method})


class PublishedError(ValueError):
    """A published table that is not valid: the message names the file and the field."""


def _text(value: object, where: str, path: Path, optional: bool = False) -> str:
    if optional and value is None:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise PublishedError(f"published table {path}: {where} must be a non-empty string")
    return value


def _number(value: object, where: str, path: Path, optional: bool = False) -> float | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PublishedError(f"published table {path}: {where} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value: object, where: str, path: Path, length: int) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise PublishedError(f"published table {path}: {where} must list {length} numbers, one per column")
    return tuple(_number(item, f"{where}[{index}]", path) for index, item in enumerate(value))


def _row(entry: object, index: int, path: Path, width: int) -> PublishedRow:
    where = f"rows[{index}]"
    if not isinstance(entry, dict):
        raise PublishedError(f"published table {path}: {where} must be a mapping")
    unknown = set(entry) - {"method", "paper_name", "optimizer", "values", "delta_m", "delta_m_std", "lr", "suspect"}
    if unknown:
        raise PublishedError(f"published table {path}: {where} has unknown fields {sorted(unknown)}")
    return PublishedRow(
        method=_text(entry.get("method"), f"{where}.method", path, optional=True) or None,
        paper_name=_text(entry.get("paper_name"), f"{where}.paper_name", path),
        optimizer=_text(entry.get("optimizer"), f"{where}.optimizer", path),
        values=_numbers(entry.get("values"), f"{where}.values", path, width),
        delta_m=_number(entry.get("delta_m"), f"{where}.delta_m", path, optional=True),
        delta_m_std=_number(entry.get("delta_m_std"), f"{where}.delta_m_std", path, optional=True),
        lr=_number(entry.get("lr"), f"{where}.lr", path, optional=True),
        suspect=_text(entry.get("suspect"), f"{where}.suspect", path, optional=True),
    )


def _claim(entry: object, index: int, path: Path) -> Claim:
    where = f"claims[{index}]"
    if not isinstance(entry, dict) or entry.get("kind") not in CLAIM_FIELDS:
        raise PublishedError(f"published table {path}: {where}.kind must be one of {', '.join(CLAIM_FIELDS)}")
    kind = entry["kind"]
    allowed = {"kind", "quote", "read_from", *CLAIM_FIELDS[kind]}
    if set(entry) - allowed:
        raise PublishedError(f"published table {path}: {where} ({kind}) takes only {sorted(allowed)}")
    if ("quote" in entry) == (entry.get("read_from") == "table"):
        raise PublishedError(f"published table {path}: {where} needs the paper's words as 'quote', or 'read_from: table'")
    fields = {name: _text(entry.get(name), f"{where}.{name}", path) for name in CLAIM_FIELDS[kind]}
    if kind == "adam_beats_sgd" and fields["share"] not in SHARES:
        raise PublishedError(f"published table {path}: {where}.share must be one of {', '.join(SHARES)}")
    quote = _text(entry.get("quote"), f"{where}.quote", path) if "quote" in entry else ""
    return Claim(kind=kind, quote=quote, **fields)


def load_published(path: Path) -> PublishedTable:
    """The validated table of ``path``; :class:`PublishedError` names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise PublishedError(f"published table {path} not found (the files are under leaderboards/papers/)")
    try:
        data = load_yaml(path, what="published table")
    except UntrustedFileError as error:
        raise PublishedError(str(error)) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise PublishedError(f"published table {path}: expected a mapping with schema: {SCHEMA}")
    source = data.get("source")
    if not isinstance(source, dict):
        raise PublishedError(f"published table {path}: source must be a mapping of citation, url, table, quote")
    source = {key: _text(source.get(key), f"source.{key}", path) for key in ("citation", "url", "table", "quote")}
    if not source["url"].startswith("https://"):
        raise PublishedError(f"published table {path}: source.url must be an https address")
    columns = data.get("columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c.count("/") == 1 for c in columns):
        raise PublishedError(f"published table {path}: columns must list metrics as task/metric")
    width = len(columns)
    directions = data.get("higher_is_better")
    if not isinstance(directions, list) or len(directions) != width or not all(isinstance(d, bool) for d in directions):
        raise PublishedError(f"published table {path}: higher_is_better must list {width} booleans, one per column")
    scale = _numbers(data.get("scale"), "scale", path, width)
    if any(factor <= 0 for factor in scale):
        raise PublishedError(f"published table {path}: scale factors must be positive")
    stl = _numbers(data.get("stl"), "stl", path, width)
    if any(value == 0 for value in stl):
        raise PublishedError(f"published table {path}: a single-task value of 0 leaves Delta_m undefined")
    rows, claims, notes = data.get("rows"), data.get("claims", []), data.get("notes", [])
    if not isinstance(rows, list) or not rows:
        raise PublishedError(f"published table {path}: rows must be a non-empty list")
    if not isinstance(claims, list) or not isinstance(notes, list):
        raise PublishedError(f"published table {path}: claims and notes must be lists")
    return PublishedTable(
        path=path,
        title=_text(data.get("title"), "title", path),
        source=source,
        dataset=_text(data.get("dataset"), "dataset", path),
        protocol=_text(data.get("protocol"), "protocol", path),
        stl_optimizer=_text(data.get("stl_optimizer"), "stl_optimizer", path),
        columns=tuple(columns),
        scale=scale,
        higher_is_better=tuple(directions),
        stl=stl,
        rows=tuple(_row(entry, index, path, width) for index, entry in enumerate(rows)),
        notes=tuple(_text(note, f"notes[{index}]", path) for index, note in enumerate(notes)),
        claims=tuple(_claim(entry, index, path) for index, entry in enumerate(claims)),
    )
