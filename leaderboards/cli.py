"""``mtlbench leaderboard RUNS --out DIR``: tables from run records only (no torch import).

``mtlbench leaderboard --wandb ENTITY/PROJECT [--group SWEEP] --out DIR`` first fetches the
records uploaded to a W&B project into ``DIR/records`` (needs network and a W&B login).

Writes ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.tex``, ``findings.md`` (the
verdicts against EW that hold after correction) and ``pareto.png`` into DIR (atomically, file by
file; ``critical_difference.png`` where three or more boards share their methods) and prints the
Markdown.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from mtlbench.leaderboards.admission import admit, load_admitted_runs
from mtlbench.leaderboards.atomic_write import write_bytes_atomic, write_text_atomic
from mtlbench.leaderboards.costs import load_perf
from mtlbench.leaderboards.findings import findings_markdown, rank_comparison
from mtlbench.leaderboards.machines import machines_markdown
from mtlbench.leaderboards.records import TEST_METRICS, RecordError, parse_record, record_data, record_paths
from mtlbench.leaderboards.render import console_summary, critical_difference_png, csv_table, latex, left_out_lines, markdown, pareto_png
from mtlbench.leaderboards.site_folder import SiteFolder
from mtlbench.leaderboards.tables import apply_perf_costs, build_boards
from mtlbench.leaderboards.time_budget import budget_line, budget_markdown
from mtlbench.leaderboards.untrusted import MAX_RECORD_BYTES, MAX_SPEC_BYTES, UntrustedFileError, read_bytes


def keep_perf(perf: list[Path], out_dir: Path) -> list[Path]:
    """Copy the perf records to ``out_dir/perf``, beside the run records they give costs to."""
    target = Path(out_dir) / "perf"
    for path in perf:
        load_perf(path)  # checked before anything is replaced
    # read before clearing (one may live there), as the checked bytes: never through a FIFO or device
    sources = {Path(path).resolve(): read_bytes(Path(path), limit=MAX_SPEC_BYTES, what="perf record") for path in perf}
    shutil.rmtree(target, ignore_errors=True)
    kept = []
    for path, data in sources.items():
        write_bytes_atomic(target / path.name, data)
        kept.append(target / path.name)
    return kept


def published_perf(folder: Path) -> list[Path]:
    """The perf records a published table was rendered with (``keep_perf``)."""
    return sorted((Path(folder) / "perf").glob("*.json"))


def keep_records(runs_dir: Path, out_dir: Path) -> tuple[Path, list[str]]:
    """Copy the run records under ``runs_dir`` that the tables admit to ``out_dir/records`` (same
    relative paths), so a published table can be regenerated from the files beside it. A record
    is copied only as the bytes that were checked: a regular file of bounded size inside
    ``runs_dir`` (never what a link points to outside it, a FIFO or a device), JSON that fits
    the schema, and admitted (:func:`mtlbench.leaderboards.admission.admit`: not a duplicate, a
    copy with its seed edited or a misfit; a run still running is kept, and listed as such).
    Returns the folder and one line per record left behind, for the table's "Runs left out"."""
    if not Path(runs_dir).is_dir():
        raise FileNotFoundError(f"runs folder {runs_dir} not found; pass the folder that holds the runs' results.json files")
    target = Path(out_dir) / "records"
    if target.resolve() == Path(runs_dir).resolve():  # republishing from the published records: keep them
        return target, []
    read, runs, left = {}, [], []
    for path in record_paths(runs_dir):
        relative = path.relative_to(runs_dir)
        try:
            data = read_bytes(path, Path(runs_dir), MAX_RECORD_BYTES, what="run record")
        except UntrustedFileError as error:
            left.append(f"{relative}: not kept: {error.reason}")
            continue
        try:
            runs.append(parse_record(record_data(data, relative), relative))
        except UntrustedFileError as error:
            left.append(f"{relative}: not kept: unreadable run record: {error.reason}")
            continue
        except RecordError as error:
            left.append(f"{relative}: not kept: rejected run record ({error})")
            continue
        read[relative] = data
    kept = {}
    for run in admit(runs):
        if run.left_out:
            left.append(f"{run.path}: not kept: {run.left_out}")
        else:
            kept[run.path] = read[run.path]
    shutil.rmtree(target, ignore_errors=True)
    for relative, data in kept.items():
        write_bytes_atomic(target / relative, data)
    return target, left


def render_leaderboard(*args, **options) -> str:
    """:func:`render_and_summarise`'s Markdown (what the command prints in full)."""
    return render_and_summarise(*args, **options)[0]


def render_and_summarise(
    runs_dir: Path,
    out_dir: Path,
    png: bool = True,
    test_metrics: str = "selected",
    perf: list[Path] | None = None,
    html: Path | None = None,
    stl_optimizer: str | None = None,
    stl_model: str | None = None,
    not_kept: list[str] | None = None,
) -> tuple[str, str]:
    """Read every run record under ``runs_dir`` and write the tables into ``out_dir``; the cost
    columns come from the ``perf`` records (``mtlbench perf --out``) of the boards' models.
    ``html``: also write the static site there (:mod:`mtlbench.leaderboards.site`). ``stl_optimizer``:
    every board's baselines are that optimizer's single-task runs (a spec's ``stl.optimizer``),
    ``stl_model`` likewise for a network (a spec's ``stl.args`` naming ``--model.net``).
    Returns the Markdown and a short summary for a terminal (:func:`console_summary`)."""
    if not Path(runs_dir).is_dir():
        raise FileNotFoundError(f"runs folder {runs_dir} not found; pass the folder that holds the runs' results.json files")
    runs, problems = load_admitted_runs(runs_dir, test_metrics)
    problems = [*(not_kept or []), *problems]
    if not runs and not problems:
        raise FileNotFoundError(f"no results.json under {runs_dir}; run `mtlbench fit` or a sweep first")
    site = SiteFolder(html) if html is not None else None  # refused before anything is written
    boards = build_boards(runs, stl_optimizer, stl_model)
    apply_perf_costs(boards, [load_perf(path) for path in perf or []])
    excluded = [run for run in runs if not run.usable]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ranks = rank_comparison(boards)
    figure = png and not isinstance(ranks, str)
    text = markdown(boards, excluded, problems, test_metrics, figure=figure) + budget_markdown(runs) + machines_markdown(runs)
    write_text_atomic(out_dir / "leaderboard.md", text)
    write_text_atomic(out_dir / "findings.md", findings_markdown(boards))
    if figure:
        critical_difference_png(ranks, out_dir / "critical_difference.png")
    write_text_atomic(out_dir / "leaderboard.csv", csv_table(boards))
    write_text_atomic(out_dir / "leaderboard.tex", latex(boards))
    if png and boards:
        pareto_png(boards, out_dir / "pareto.png")
    if site is not None:
        from mtlbench.leaderboards.site import render_site

        render_site(boards, runs_dir, left_out_lines(excluded, problems), site)
    summary = console_summary(boards, len(excluded) + len(problems), out_dir)
    spent = budget_line(runs)
    return text, summary + (f"\n{spent}" if spent else "")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="?", help="folder holding run folders with results.json")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", default=None, help="read the run records uploaded to this W&B project")
    parser.add_argument("--group", default=None, help="with --wandb: only this W&B group (a sweep's name)")
    parser.add_argument(
        "--keep-records",
        action="store_true",
        help="copy the records to OUT/records (and --perf to OUT/perf) and render from those (publishing)",
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the tables")
    parser.add_argument("--no-png", action="store_true", help="skip the Pareto figure")
    parser.add_argument("--html", type=Path, default=None, metavar="DIR", help="also write the static leaderboard site into DIR")
    parser.add_argument(
        "--perf",
        type=Path,
        action="append",
        default=[],
        help="a record of `mtlbench perf --out`: cost columns of the boards of its model (repeatable)",
    )
    parser.add_argument(
        "--test-metrics",
        choices=sorted(TEST_METRICS),
        default="selected",
        help="the selected checkpoint's test metrics (default) or their mean over the last epochs",
    )
    parser.add_argument(
        "--stl-optimizer",
        default=None,
        metavar="NAME",
        help="baselines of every optimizer's board from this optimizer's single-task runs (a spec's stl.optimizer)",
    )
    parser.add_argument(
        "--stl-model",
        default=None,
        metavar="NAME",
        help="baselines of every board from this network's single-task runs (e.g. SegNet for MTAN's boards)",
    )
    args = parser.parse_args(argv)
    if (args.runs is None) == (args.wandb is None):
        parser.error("give either a runs folder or --wandb ENTITY/PROJECT")
    runs, options = args.runs, {}
    try:
        if args.wandb is not None:
            from mtlbench.leaderboards.wandb_source import fetch_records

            runs = args.out / "records"
            print(f"fetched {fetch_records(args.wandb, runs, args.group)} run records from W&B into {runs}")
        elif args.keep_records:
            runs, options["not_kept"] = keep_records(runs, args.out)
            args.perf = keep_perf(args.perf, args.out)
        options["test_metrics"], options["perf"], options["html"] = args.test_metrics, args.perf, args.html
        options["stl_optimizer"], options["stl_model"] = args.stl_optimizer, args.stl_model
        table = render_leaderboard(runs, args.out, png=not args.no_png, **options)
        print(table)
        if args.html is not None:
            print(f"site written to {args.html / 'index.html'}")
    except (FileNotFoundError, RuntimeError, UntrustedFileError) as error:
        print(f"mtlbench leaderboard: error: {error}", file=sys.stderr)
        return 2
    return 0
