"""``mtlbench report SPEC RUNS``: our runs of a paper's protocol beside the paper's numbers.

The spec (``configs/sweeps/paper_*.yaml``) names the published tables it reproduces and how its
runs are read::

    report:
      published: [../../leaderboards/papers/famo2023_nyuv2.yaml]
      test_metrics: last_epochs_mean     # or selected (the epoch chosen on validation)

For each table the report gives (``leaderboards/published.py`` loads and checks the files):

- the source, its protocol and notes, and a check of the stored numbers: the printed Delta_m
  against the one recomputed from the printed metrics;
- per method and optimizer, Delta_m under both conventions (over the metrics, as the papers'
  code computes it, and over the tasks), ours (mean +- std over seeds) and the paper's (printed,
  and recomputed per task), with each side's rank;
- where our runs are on the paper's dataset, each metric ours minus the paper's, in the paper's
  units (on another dataset, such as the synthetic scenes, only the claims are compared);
- the ranking agreement (Kendall's tau over the methods both have), how much the order changes
  from Adam to SGD on each side, and each of the paper's
  claims checked on its own numbers and on ours: which method is best, which beats which,
  whether Adam beats SGD, whether the best method changes with the optimizer, and the
  inter-task against inter-sample gradient statistics of our EW runs.

Rows the file marks ``suspect`` are shown but left out of ranks and claims. Everything from the
files and the records is escaped for Markdown (:func:`mtlbench.leaderboards.escape.markdown_text`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mtlbench.leaderboards.admission import load_admitted_runs
from mtlbench.leaderboards.atomic_write import write_text_atomic
from mtlbench.leaderboards.delta_m import delta_m
from mtlbench.leaderboards.escape import markdown_address, markdown_text
from mtlbench.leaderboards.published import Claim, PublishedTable, load_published
from mtlbench.leaderboards.records import TEST_METRICS, network_of_arguments
from mtlbench.leaderboards.tables import Board, build_boards
from mtlbench.leaderboards.untrusted import UntrustedFileError, load_yaml

DATA_CHECK_TOLERANCE = 0.15  # Delta_m points: printed vs recomputed from metrics printed to 2-4 digits
REPORT = "report.md"


@dataclass(frozen=True)
class Entry:
    """One method under one optimizer, on one side (the paper's or ours)."""

    method: str
    optimizer: str
    values: dict[str, float]  # column -> value in the paper's units (means over seeds)
    delta_metric: float  # Delta_m % over the metrics
    delta_task: float  # Delta_m % over the tasks
    delta_std: float | None = None  # over seeds (ours), or as printed


@dataclass(frozen=True)
class Side:
    """The entries of one side, and our EW runs' gradient statistics (ours only)."""

    entries: dict[tuple[str, str], Entry]
    gradients: dict[str, float]

    def optimizers(self) -> list[str]:
        return sorted({optimizer for _, optimizer in self.entries})

    def delta(self, method: str, optimizer: str) -> float | None:
        entry = self.entries.get((method, optimizer))
        return None if entry is None else entry.delta_metric


@dataclass(frozen=True)
class Verdict:
    statement: str  # what is checked, in words
    paper: str  # "holds: ...", "does not hold: ...", or why it cannot be checked
    ours: str


# ------------------------------------------------------------------------------------- sides
def _task_of(column: str) -> str:
    return column.split("/", 1)[0]


def _deltas(
    columns: Sequence[str], values: Mapping[str, float], baseline: Mapping[str, float], up: Mapping[str, bool]
) -> tuple[float, float]:
    """Delta_m over ``columns``: over the metrics, and over the tasks."""
    values, baseline, up = ({c: mapping[c] for c in columns} for mapping in (values, baseline, up))
    return delta_m(values, baseline, up), delta_m(values, baseline, up, task_of={c: _task_of(c) for c in columns})


def _paper_deltas(table: PublishedTable, values: Mapping[str, float]) -> tuple[float, float]:
    """Delta_m of a paper's row against the paper's single-task row."""
    baseline = dict(zip(table.columns, table.stl, strict=True))
    return _deltas(table.columns, values, baseline, dict(zip(table.columns, table.higher_is_better, strict=True)))


def paper_side(table: PublishedTable) -> Side:
    """The paper's rows of mtlbench's methods, suspect rows left out."""
    entries = {}
    for row in table.rows:
        if row.method is None or row.suspect:
            continue
        values = dict(zip(table.columns, row.values, strict=True))
        metric, task = _paper_deltas(table, values)
        printed = row.delta_m if row.delta_m is not None else metric
        entries[(row.method, row.optimizer)] = Entry(row.method, row.optimizer, values, printed, task, row.delta_m_std)
    return Side(entries, {})


def our_side(table: PublishedTable, boards: list[Board]) -> Side:
    """Our rows on the paper's columns and units, with Delta_m against the paper's STL row
    replaced by ours: the boards' single-task baselines (the same protocol, our runs)."""
    entries = {}
    for board in boards:
        for row in board.rows:
            if not all(column in row.metrics for column in table.columns) or not row.delta_metric:
                continue
            values = {column: row.metrics[column][0] * factor for column, factor in zip(table.columns, table.scale, strict=True)}
            seeds = [_deltas(table.columns, run.test, board.baseline, board.higher_is_better) for run in row.runs]
            metric = [value for value, _ in seeds]
            entries[(row.method, board.optimizer)] = Entry(
                row.method,
                board.optimizer,
                values,
                statistics.fmean(metric),
                statistics.fmean(value for _, value in seeds),
                statistics.stdev(metric) if len(metric) > 1 else None,
            )
    ew = [run for board in boards for row in board.rows if row.method == "EW" for run in row.runs]
    keys = ("cos", "mag_sim", "sample_cos", "sample_mag_sim")
    gradients = {key: statistics.fmean(run.gradients[key] for run in ew) for key in keys if ew and all(key in run.gradients for run in ew)}
    return Side(entries, gradients)


# ------------------------------------------------------------------------------------ claims
def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def _common(paper: Side, ours: Side, optimizer: str) -> list[str]:
    return sorted(m for (m, o) in paper.entries if o == optimizer and (m, optimizer) in ours.entries)


def _ordered(side: Side, methods: Sequence[str], optimizer: str) -> list[tuple[str, float]]:
    scored = [(method, side.delta(method, optimizer)) for method in methods]
    return sorted(((m, d) for m, d in scored if d is not None), key=lambda item: (item[1], item[0]))


def _best(side: Side, methods: list[str], optimizer: str, claimed: str) -> str:
    ordered = _ordered(side, methods, optimizer)
    if claimed not in methods or not ordered:
        return f"not checked: {claimed} is not in both tables"
    first, value = ordered[0]
    place = next(index for index, (method, _) in enumerate(ordered, start=1) if method == claimed)
    if first == claimed:
        runner = f"; next {ordered[1][0]} {_fmt(ordered[1][1])}" if len(ordered) > 1 else ""
        return f"holds: {claimed} {_fmt(value)}{runner}"
    claimed_delta = _fmt(side.delta(claimed, optimizer))
    return f"does not hold: {first} {_fmt(value)} is lowest; {claimed} {claimed_delta} (place {place} of {len(ordered)})"


def _mean_ranks(table: PublishedTable, side: Side, methods: list[str], optimizer: str) -> dict[str, float]:
    ranks: dict[str, float] = defaultdict(float)
    for column, up in zip(table.columns, table.higher_is_better, strict=True):
        value = {method: side.entries[(method, optimizer)].values[column] for method in methods}
        ordered = sorted(methods, key=lambda m: -value[m] if up else value[m])
        for position, method in enumerate(ordered, start=1):
            ranks[method] += position / len(table.columns)
    return dict(ranks)


def _best_rank(table: PublishedTable, side: Side, methods: list[str], optimizer: str, claimed: str) -> str:
    if claimed not in methods:
        return f"not checked: {claimed} is not in both tables"
    ranks = _mean_ranks(table, side, methods, optimizer)
    first = min(ranks, key=lambda m: (ranks[m], m))
    verdict = "holds" if first == claimed else "does not hold"
    return f"{verdict}: mean rank {claimed} {ranks[claimed]:.2f}, best {first} {ranks[first]:.2f}"


def _beats(side: Side, optimizer: str, method: str, reference: str) -> str:
    mine, theirs = side.delta(method, optimizer), side.delta(reference, optimizer)
    if mine is None or theirs is None:
        return f"not checked: {method} or {reference} is missing"
    verdict = "holds" if mine < theirs else "does not hold"
    return f"{verdict}: {method} {_fmt(mine)} against {reference} {_fmt(theirs)}"


def _adam_beats_sgd(side: Side, methods: list[str], share: str) -> str:
    pairs = [(m, side.delta(m, "Adam"), side.delta(m, "SGD")) for m in methods]
    pairs = [(m, a, s) for m, a, s in pairs if a is not None and s is not None]
    if not pairs:
        return "not checked: no method under both Adam and SGD"
    wins = [m for m, a, s in pairs if a < s]
    holds = len(wins) == len(pairs) if share == "all" else 2 * len(wins) > len(pairs)
    losers = [m for m, a, s in pairs if a >= s]
    detail = f"; SGD lower for {', '.join(losers)}" if losers else ""
    return f"{'holds' if holds else 'does not hold'}: Adam lower for {len(wins)} of {len(pairs)} methods{detail}"


def _best_changes(side: Side, methods: list[str]) -> str:
    best = {}
    for optimizer in ("Adam", "SGD"):
        ordered = _ordered(side, [m for m in methods if side.delta(m, "Adam") is not None and side.delta(m, "SGD") is not None], optimizer)
        if not ordered:
            return "not checked: no method under both Adam and SGD"
        best[optimizer] = ordered[0]
    verdict = "holds" if best["Adam"][0] != best["SGD"][0] else "does not hold"
    return f"{verdict}: best under Adam {best['Adam'][0]} {_fmt(best['Adam'][1])}, under SGD {best['SGD'][0]} {_fmt(best['SGD'][1])}"


def _gradient_claim(side: Side, kind: str) -> str:
    g = side.gradients
    if kind == "magnitude_gap":
        if "mag_sim" not in g or "sample_mag_sim" not in g:
            return "not checked: the EW runs have no gradient statistics (run them with the GradientProbe callback)"
        verdict = "holds" if g["mag_sim"] < g["sample_mag_sim"] else "does not hold"
        return f"{verdict}: magnitude similarity inter-task {g['mag_sim']:.3f}, inter-sample {g['sample_mag_sim']:.3f} (EW, mean over runs)"
    if "cos" not in g or "sample_cos" not in g:
        return "not checked: the EW runs have no gradient statistics (run them with the GradientProbe callback)"
    verdict = "holds" if g["sample_cos"] <= g["cos"] else "does not hold"
    return f"{verdict}: cosine similarity inter-task {g['cos']:.3f}, inter-sample {g['sample_cos']:.3f} (EW, mean over runs)"


STATEMENTS: dict[str, Callable[[Claim, str], str]] = {
    "best": lambda c, o: f"{c.method} has the lowest Delta_m ({o})",
    "best_rank": lambda c, o: f"{c.method} has the best mean rank over the metrics ({o})",
    "beats": lambda c, o: f"{c.method} has a lower Delta_m than {c.reference} ({o})",
    "adam_beats_sgd": lambda c, o: f"Adam gives a lower Delta_m than SGD for {'every' if c.share == 'all' else 'the majority of'} method",
    "best_changes": lambda c, o: "the method with the lowest Delta_m under Adam is not the one under SGD",
    "magnitude_gap": lambda c, o: "inter-task gradient magnitudes are less similar than inter-sample ones",
    "sample_conflict": lambda c, o: "inter-sample gradients conflict at least as much as inter-task ones (cosine)",
}


def check_claim(claim: Claim, table: PublishedTable, paper: Side, ours: Side) -> Verdict:
    """The claim checked on the paper's numbers and on ours, over the methods both have."""
    optimizer = table.stl_optimizer
    methods = _common(paper, ours, optimizer)
    both_optimizers = sorted(set(_common(paper, ours, "Adam")) & set(_common(paper, ours, "SGD")))
    statement = STATEMENTS[claim.kind](claim, optimizer)
    if claim.kind in ("magnitude_gap", "sample_conflict"):
        return Verdict(statement, "stated (the paper shows it in figures only)", _gradient_claim(ours, claim.kind))
    checks: dict[str, Callable[[Side], str]] = {
        "best": lambda side: _best(side, methods, optimizer, claim.method or ""),
        "best_rank": lambda side: _best_rank(table, side, methods, optimizer, claim.method or ""),
        "beats": lambda side: _beats(side, optimizer, claim.method or "", claim.reference or ""),
        "adam_beats_sgd": lambda side: _adam_beats_sgd(side, both_optimizers, claim.share or "majority"),
        "best_changes": lambda side: _best_changes(side, both_optimizers),
    }
    return Verdict(statement, checks[claim.kind](paper), checks[claim.kind](ours))


def ranking_agreement(paper: Side, ours: Side, optimizer: str) -> str:
    """Kendall's tau between the two Delta_m orders of the methods both have."""
    from scipy import stats as scipy_stats  # (0.9 s to import: only where it is used)

    methods = _common(paper, ours, optimizer)
    if len(methods) < 3:
        return f"{optimizer}: fewer than 3 methods in both tables, no rank correlation"
    theirs = [paper.delta(m, optimizer) for m in methods]
    mine = [ours.delta(m, optimizer) for m in methods]
    result = scipy_stats.kendalltau(theirs, mine)
    return f"{optimizer}: Kendall's tau {result.statistic:+.2f} over {len(methods)} methods (p = {result.pvalue:.2f})"


def optimizer_rank_change(paper: Side, ours: Side) -> str | None:
    """How much each side's order of the methods changes from Adam to SGD (Kendall's tau
    between the two orders, over the methods both sides have under both), or None."""
    from scipy import stats as scipy_stats  # (0.9 s to import: only where it is used)

    methods = sorted(set(_common(paper, ours, "Adam")) & set(_common(paper, ours, "SGD")))
    if len(methods) < 3:
        return None
    parts = []
    for name, side in (("the paper", paper), ("ours", ours)):
        tau = scipy_stats.kendalltau([side.delta(m, "Adam") for m in methods], [side.delta(m, "SGD") for m in methods]).statistic
        moved = sum(a != b for a, b in zip(_places(side, methods, "Adam"), _places(side, methods, "SGD"), strict=True))
        parts.append(f"{name} tau {tau:+.2f}, {moved} of {len(methods)} methods change place")
    return "Adam against SGD, the same methods' orders: " + "; ".join(parts)


def _places(side: Side, methods: list[str], optimizer: str) -> list[int]:
    order = [method for method, _ in _ordered(side, methods, optimizer)]
    return [order.index(method) + 1 for method in methods]


# ----------------------------------------------------------------------------------- render
def data_check(table: PublishedTable) -> list[str]:
    """Rows whose printed Delta_m differs from the one recomputed from their printed metrics."""
    lines = []
    for row in table.rows:
        if row.delta_m is None:
            continue
        recomputed, _ = _paper_deltas(table, dict(zip(table.columns, row.values, strict=True)))
        if abs(recomputed - row.delta_m) > DATA_CHECK_TOLERANCE:
            name = f"{markdown_text(row.paper_name)} ({markdown_text(row.optimizer)})"
            lines.append(f"{name}: printed {_fmt(row.delta_m)}, recomputed {_fmt(recomputed)}")
    return lines


def _shared_optimizers(paper: Side, ours: Side) -> list[str]:
    return sorted(set(paper.optimizers()) & set(ours.optimizers()))


def _short(column: str) -> str:
    return markdown_text(column.split("/", 1)[1])


def _delta_table(table: PublishedTable, paper: Side, ours: Side) -> list[str]:
    lines = [
        "| method | optimizer | paper's name | Δm% metrics, ours | Δm% metrics, paper | Δm% tasks, ours | Δm% tasks, paper "
        "| rank ours | rank paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {(row.method, row.optimizer): row.paper_name for row in table.rows if row.method}
    ranks: dict[str, dict[tuple[str, str], int]] = {"ours": {}, "paper": {}}
    optimizers = _shared_optimizers(paper, ours)
    for optimizer in optimizers:
        methods = _common(paper, ours, optimizer)
        for side_name, side in (("ours", ours), ("paper", paper)):
            for place, (method, _) in enumerate(_ordered(side, methods, optimizer), start=1):
                ranks[side_name][(method, optimizer)] = place
    shown = (key for key in set(paper.entries) | set(ours.entries) if key[1] in optimizers)
    keys = sorted(shown, key=lambda key: (key[1], key[0]))
    for key in keys:
        mine, theirs = ours.entries.get(key), paper.entries.get(key)
        ours_metric = "-" if mine is None else _fmt(mine.delta_metric) + ("" if mine.delta_std is None else f" ± {mine.delta_std:.2f}")
        cells = [
            markdown_text(key[0]),
            markdown_text(key[1]),
            markdown_text(names.get(key, "-")),
            ours_metric,
            "-" if theirs is None else _fmt(theirs.delta_metric),
            "-" if mine is None else _fmt(mine.delta_task),
            "-" if theirs is None else _fmt(theirs.delta_task),
            str(ranks["ours"].get(key, "-")),
            str(ranks["paper"].get(key, "-")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _difference_table(table: PublishedTable, paper: Side, ours: Side, our_stl: dict[str, float]) -> list[str]:
    lines = ["| method | optimizer | " + " | ".join(_short(c) for c in table.columns) + " |", "|---|---|" + "---|" * len(table.columns)]

    def cells(mine: dict[str, float], theirs: dict[str, float]) -> str:
        return " | ".join(f"{mine[c]:#.4g} vs {theirs[c]:#.4g}: {mine[c] - theirs[c]:+#.3g}" for c in table.columns)

    if all(column in our_stl for column in table.columns):
        stl = {column: our_stl[column] * factor for column, factor in zip(table.columns, table.scale, strict=True)}
        lines.append(f"| STL | {markdown_text(table.stl_optimizer)} | {cells(stl, dict(zip(table.columns, table.stl, strict=True)))} |")
    for key in sorted(set(paper.entries) & set(ours.entries), key=lambda key: (key[1], key[0])):
        lines.append(
            f"| {markdown_text(key[0])} | {markdown_text(key[1])} | {cells(ours.entries[key].values, paper.entries[key].values)} |"
        )
    return lines


def render_table_report(table: PublishedTable, boards: list[Board]) -> list[str]:
    """The Markdown section of one published table against our boards."""
    same = [board for board in boards if board.dataset == table.dataset]
    mine = same or boards
    paper, ours = paper_side(table), our_side(table, mine)
    source = table.source
    lines = [
        f"## {markdown_text(table.title)}",
        "",
        f"Source: {markdown_text(source['citation'])} {markdown_text(source['table'])}, {markdown_address(source['url'])}:",
        f'"{markdown_text(source["quote"])}"',
        "",
        f"Their protocol: {markdown_text(table.protocol)}",
        "",
        *(f"- {markdown_text(note)}" for note in table.notes),
        *([""] if table.notes else []),
    ]
    datasets = sorted({board.dataset for board in mine})
    if same:
        lines.append(f"Our runs: {markdown_text(', '.join(datasets))}, the paper's dataset: the metrics are compared one by one.")
    else:
        lines.append(
            f"Our runs: {markdown_text(', '.join(datasets) or 'none')}, not the paper's {markdown_text(table.dataset)}: "
            "its numbers and ours are not comparable one by one; the Δm orders and the claims are."
        )
    lines.append("")
    problems = data_check(table)
    check = "; ".join(problems) if problems else "none"
    lines.append(
        f"Stored numbers checked: the printed Δm against the Δm recomputed from the printed metrics "
        f"(tolerance {DATA_CHECK_TOLERANCE} points). Differing rows: {check}."
    )
    suspects = [
        f"{markdown_text(r.paper_name)} ({markdown_text(r.optimizer)}): {markdown_text(r.suspect)}" for r in table.rows if r.suspect
    ]
    if suspects:
        lines += ["", "Left out as doubtful: " + "; ".join(suspects) + "."]
    missing = sorted({row.paper_name for row in table.rows if row.method is None})
    if missing:
        lines += ["", f"Not in mtlbench: {markdown_text(', '.join(missing))}."]
    only = {"the paper": set(paper.optimizers()) - set(ours.optimizers()), "our runs": set(ours.optimizers()) - set(paper.optimizers())}
    for side, names in only.items():
        if names:
            lines += ["", f"Optimizers only in {side}, left out of the comparison: {markdown_text(', '.join(sorted(names)))}."]
    lines += ["", "### Δm under both conventions", "", *_delta_table(table, paper, ours), ""]
    lines.append(
        "Ours against our own single-task baselines; the paper's over the metrics as printed, over the tasks recomputed from its rows."
    )
    if same:
        stl_board = next((board for board in same if board.optimizer == table.stl_optimizer), same[0])
        differences = _difference_table(table, paper, ours, stl_board.baseline)
        lines += ["", "### Each metric: ours vs the paper's, and ours minus the paper's (the paper's units)", "", *differences]
    optimizers = _shared_optimizers(paper, ours)
    lines += [
        "",
        "### Ranking agreement",
        "",
        *(f"- {markdown_text(ranking_agreement(paper, ours, o))}" for o in optimizers or [table.stl_optimizer]),
    ]
    change = optimizer_rank_change(paper, ours)
    if change is not None:
        lines.append(f"- {markdown_text(change)}")
    if table.claims:
        lines += ["", "### The paper's claims", "", "Each claim is checked over the methods and optimizers both tables have.", ""]
        lines += ["| claim | checked as | on the paper's numbers | on ours |", "|---|---|---|---|"]
        for claim in table.claims:
            verdict = check_claim(claim, table, paper, ours)
            words = f'"{markdown_text(claim.quote)}"' if claim.quote else "(read off the table)"
            lines.append(
                f"| {words} | {markdown_text(verdict.statement)} | {markdown_text(verdict.paper)} | {markdown_text(verdict.ours)} |"
            )
    return lines


def _kind(value: object) -> str:
    """A YAML value's type in words, for messages."""
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"), (list, "a list"), (dict, "a mapping"))
    if value is None or value == []:
        return "null" if value is None else "an empty list"
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _require(spec_path: Path, key: str, value: object, fits: bool, expected: str) -> None:
    if not fits:
        raise ValueError(f"sweep spec {spec_path}: {key} must be {expected}, got {_kind(value)}")


def read_report_spec(spec_path: Path) -> tuple[list[Path], str, dict[str, str | None]]:
    """The spec's published tables, the test metrics to read, and where its baselines come
    from: ``{"stl_optimizer", "stl_model"}`` (None: each board's own). A key of the wrong type
    is a ValueError of one line naming the key and the type it takes."""
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise FileNotFoundError(f"sweep spec {spec_path} not found")
    try:
        spec = load_yaml(spec_path, what="sweep spec")
    except UntrustedFileError as error:
        raise ValueError(str(error)) from None
    section = spec.get("report") if isinstance(spec, dict) else None
    if section is None or (isinstance(section, dict) and section.get("published") is None):
        raise ValueError(f"sweep spec {spec_path} has no 'report: {{published: [FILE, ...]}}' section (see configs/sweeps/paper_*.yaml)")
    _require(spec_path, "report", section, isinstance(section, dict), "a mapping {published: [FILE, ...], test_metrics: NAME}")
    published = section["published"]
    files = "a non-empty list of published tables' files"
    _require(spec_path, "report.published", published, isinstance(published, list) and bool(published), files)
    for index, item in enumerate(published):
        _require(spec_path, f"report.published[{index}]", item, isinstance(item, str), "a file name (a string)")
    test_metrics = section.get("test_metrics", "selected")
    choices = f"one of {', '.join(sorted(TEST_METRICS))}"
    _require(spec_path, "report.test_metrics", test_metrics, isinstance(test_metrics, str), f"{choices} (a string)")
    if test_metrics not in TEST_METRICS:
        raise ValueError(f"sweep spec {spec_path}: report.test_metrics must be {choices}")
    tables = [(spec_path.parent / item).resolve() for item in published]
    stl = spec.get("stl")
    stl_usage = "true, false or a mapping {optimizer: NAME, lr: [...], args: [...]}"
    _require(spec_path, "stl", stl, stl is None or isinstance(stl, (bool, dict)), stl_usage)
    stl = stl if isinstance(stl, dict) else {}
    optimizer, args = stl.get("optimizer"), stl.get("args", [])
    _require(spec_path, "stl.optimizer", optimizer, optimizer is None or isinstance(optimizer, str), "an optimizer's name (a string)")
    _require(spec_path, "stl.args", args, isinstance(args, list), "a list of command-line arguments")
    for index, arg in enumerate(args):
        _require(spec_path, f"stl.args[{index}]", arg, isinstance(arg, str), "a command-line argument (a string)")
    baselines = {"stl_optimizer": optimizer, "stl_model": network_of_arguments(args, spec_path.parent)}
    return tables, test_metrics, baselines


def render_report(spec_path: Path, runs_dir: Path) -> str:
    """The whole report as Markdown."""
    table_paths, test_metrics, baselines = read_report_spec(spec_path)
    tables = [load_published(path) for path in table_paths]  # all checked before any work
    if not Path(runs_dir).is_dir():
        raise FileNotFoundError(f"runs folder {runs_dir} not found; run `mtlbench sweep {spec_path}` first")
    runs, problems = load_admitted_runs(runs_dir, test_metrics)
    boards = build_boards(runs, **baselines)
    usable = sum(run.usable for run in runs)
    reading = "the mean over the last epochs" if test_metrics == "last_epochs_mean" else "the epoch selected on validation"
    lines = [
        f"# {markdown_text(Path(spec_path).stem)}: our runs beside the published numbers",
        "",
        f"Generated by `mtlbench report` from {len(runs)} run records ({usable} usable) and {len(tables)} published tables; "
        f"test metrics: {reading}.",
    ]
    if problems:
        lines.append(f"Unreadable records, left out: {len(problems)}.")
    for table in tables:
        lines += ["", *render_table_report(table, boards)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench report", description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="the sweep spec of a paper protocol (configs/sweeps/paper_*.yaml)")
    parser.add_argument("runs", type=Path, help="the folder of its runs")
    parser.add_argument("--out", type=Path, default=None, help=f"where to write {REPORT} (default: RUNS/report)")
    args = parser.parse_args(argv)
    try:
        text = render_report(args.spec, args.runs)
    except (FileNotFoundError, ValueError) as error:  # (PublishedError is a ValueError)
        print(f"mtlbench report: error: {error}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else args.runs / "report"
    write_text_atomic(out / REPORT, text)
    print(text, end="")
    print(f"report written to {out / REPORT}")
    return 0
