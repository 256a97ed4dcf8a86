"""``mtlbench reproduce BOARD --spec SPEC``: rerun part of a published board on this machine and
say what still holds.

A published board (a folder of ``mtlbench leaderboard --keep-records``) is others' data: its
records are read as numbers and names, never run as configuration. The rerun trains from your
copy of the sweep spec that made the board (``--spec``, e.g. ``configs/sweeps/reference.yaml``),
restricted to the chosen methods, optimizers and seeds (EW and the single-task baselines of
those seeds always come along, so that Δm and the comparisons with EW can be formed); the
restricted spec is written to ``OUT/spec.yaml`` and run through the usual sweep into
``--runs``. Then :mod:`mtlbench.leaderboards.reproduction` compares every rerun with its
published twin, configuration key by key and Δm in units of the board's seed spread, and
checks every published verdict of the rerun methods on the new runs and on both together;
``OUT/report.md`` holds the result and the machines of both sides.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml

from mtlbench.bench.sweeps.sweep import load_spec, run_sweep
from mtlbench.leaderboards.atomic_write import write_text_atomic
from mtlbench.leaderboards.reproduction import reproduction_report
from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, parse_yaml, read_text


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def restricted_spec(
    spec_path: Path, out_dir: Path, methods: list[str] | None, optimizers: list[str] | None, seeds: list[int] | None
) -> dict:
    """The spec at ``spec_path`` restricted to ``methods`` (EW added), ``optimizers`` and ``seeds``,
    with its relative paths rewritten relative to ``out_dir``, where it will be saved."""
    load_spec(spec_path)  # the usual one-line errors for a spec that is not a sweep spec
    raw = parse_yaml(read_text(spec_path, limit=MAX_SPEC_BYTES, what="sweep spec"))
    spec_dir, out_dir = Path(spec_path).resolve().parent, Path(out_dir).resolve()

    def moved(path: str) -> str:
        return os.path.relpath((spec_dir / path).resolve(), out_dir) if not Path(path).is_absolute() else path

    def chosen(kind: str, wanted: list | None, available: list) -> list:
        if wanted is None:
            return list(available)
        unknown = [name for name in wanted if name not in available]
        if unknown:
            raise ValueError(
                f"reproduce: {kind} {', '.join(map(str, unknown))} not in {spec_path} (it has {', '.join(map(str, available))})"
            )
        return [name for name in available if name in wanted]

    names = chosen("method", None if methods is None else sorted({*methods, "EW"}), list(raw["methods"]))
    spec = dict(raw)
    spec["name"] = f"{raw.get('name', Path(spec_path).stem)}"
    spec["base"] = moved(raw["base"])
    spec["methods"] = {}
    for name in names:
        entry = raw["methods"][name]
        spec["methods"][name] = moved(entry) if isinstance(entry, str) else {**entry, "config": moved(entry["config"])}
    spec["optimizers"] = {}
    for name in chosen("optimizer", optimizers, list(raw["optimizers"])):
        spec["optimizers"][name] = {**raw["optimizers"][name], "config": moved(raw["optimizers"][name]["config"])}
    spec["seeds"] = chosen("seed", seeds, list(raw["seeds"]))
    if "perf" in raw:
        spec["perf"] = [moved(item) for item in raw["perf"]]
    if isinstance(raw.get("stl"), dict) and raw["stl"].get("args"):
        spec["stl"] = {**raw["stl"], "args": [_moved_argument(arg, moved) for arg in raw["stl"]["args"]]}
    return spec


def _moved_argument(arg: str, moved) -> str:
    key, sep, value = str(arg).partition("=")
    return f"{key}={moved(value)}" if sep and value.endswith((".yaml", ".yml")) else arg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtlbench reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("board", type=Path, help="a published board: the folder holding records/ and leaderboard.md")
    parser.add_argument("--spec", type=Path, required=True, help="the sweep spec that made the board (your copy: it is run)")
    parser.add_argument("--methods", default=None, help="comma-separated methods to rerun (EW always); default: all")
    parser.add_argument("--optimizers", default=None, help="comma-separated optimizers; default: all of the spec's")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds; default: all of the spec's")
    parser.add_argument("--runs", type=Path, default=None, help="where the reruns go (default: runs/reproduce-<board folder>)")
    parser.add_argument("--out", type=Path, default=None, help="where the spec and the report go (default: BOARD/reproduce)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (as mtlbench sweep --jobs)")
    parser.add_argument("--report-only", action="store_true", help="compare the runs already in --runs; train nothing")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    board = args.board
    if not (board / "records").is_dir():
        raise FileNotFoundError(f"reproduce: {board} has no records/; give a folder published with mtlbench leaderboard --keep-records")
    out = args.out if args.out is not None else board / "reproduce"
    runs = args.runs if args.runs is not None else Path("runs") / f"reproduce-{board.resolve().name}"
    try:
        seeds = None if args.seeds is None else [int(seed) for seed in _names(args.seeds) or []]
    except ValueError:
        raise ValueError(f"reproduce: --seeds takes comma-separated integers, got {args.seeds!r}") from None
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec.yaml"
    if not args.report_only:
        spec = restricted_spec(args.spec, out, _names(args.methods), _names(args.optimizers), seeds)
        header = (
            f"# written by mtlbench reproduce from {os.path.relpath(args.spec.resolve(), out.resolve())}; rerun it with mtlbench sweep\n"
        )
        write_text_atomic(spec_path, header + yaml.safe_dump(spec, sort_keys=False))
        outcome = run_sweep(spec_path, runs, jobs=args.jobs)
        print(", ".join(f"{len(ids)} {name}" for name, ids in outcome.items()))
    report, summary = reproduction_report(board, runs)
    write_text_atomic(out / "report.md", report)
    print(summary)
    print(f"report written to {out / 'report.md'}")
    return 0
