"""``mtlbench leaderboard RUNS --out DIR``: tables from run records only (no torch import).

Writes ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.tex`` and ``pareto.png`` into
DIR (atomically, file by file) and prints the Markdown.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from leaderboards.records import TEST_METRICS, load_runs
from leaderboards.render import csv_table, latex, markdown, pareto_png
from leaderboards.tables import build_boards


def _write(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def render_leaderboard(runs_dir: Path, out_dir: Path, png: bool = True, test_metrics: str = "selected") -> str:
    """Read every run record under ``runs_dir`` and write the tables into ``out_dir``."""
    if not Path(runs_dir).is_dir():
        raise FileNotFoundError(f"runs folder {runs_dir} not found; pass the folder that holds the runs' results.json files")
    runs, problems = load_runs(runs_dir, test_metrics)
    if not runs and not problems:
        raise FileNotFoundError(f"no results.json under {runs_dir}; run `mtlbench fit` or a sweep first")
    boards = build_boards(runs)
    excluded = [run for run in runs if not run.usable]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(boards, excluded, problems, test_metrics)
    _write(out_dir / "leaderboard.md", text)
    _write(out_dir / "leaderboard.csv", csv_table(boards))
    _write(out_dir / "leaderboard.tex", latex(boards))
    if png and boards:
        pareto_png(boards, out_dir / "pareto.png")
    return text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="folder holding run folders with results.json")
    parser.add_argument("--out", type=Path, required=True, help="where to write the tables")
    parser.add_argument("--no-png", action="store_true", help="skip the Pareto figure")
    parser.add_argument(
        "--test-metrics",
        choices=sorted(TEST_METRICS),
        default="selected",
        help="the selected checkpoint's test metrics (default) or their mean over the last epochs",
    )
    args = parser.parse_args(argv)
    print(render_leaderboard(args.runs, args.out, png=not args.no_png, test_metrics=args.test_metrics))
    return 0
