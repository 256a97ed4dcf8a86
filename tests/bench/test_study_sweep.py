"""A tiny study sweep end to end: runs per setting, one leaderboard per setting, and the figure
and table of ``mtlbench plot --study``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from mtlbench.bench.run.errors import RunFileError
from mtlbench.bench.sweeps.plot import main as plot_main
from mtlbench.bench.sweeps.sweep import run_sweep
from mtlbench.leaderboards.cli import render_leaderboard
from tests.bench.test_sweep import tiny_spec


def test_a_train_size_study_runs_plots_and_keeps_its_settings_apart(tiny_cache, tmp_path):
    path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(path.read_text())
    spec["methods"] = {"EW": spec["methods"]["EW"]}
    spec["axes"] = {"train_size": [16, 48]}
    path.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    outcome = run_sweep(path, runs)
    assert len(outcome["done"]) == 6 and not outcome["failed"]
    assert (runs / "baselines" / "Adam-n16.json").is_file() and (runs / "baselines" / "Adam-n48.json").is_file()

    table = render_leaderboard(runs, tmp_path / "board")
    assert "Adam / train_size=16" in table and "Adam / train_size=48" in table  # one board per setting, not one mixed
    header, *rows = (tmp_path / "board" / "leaderboard.csv").read_text().splitlines()
    assert header.startswith("dataset,model,optimizer,setting,tasks,method") and [row.split(",")[3] for row in rows] == [
        "train_size=16",
        "train_size=48",
    ]

    assert plot_main([str(runs), "--study", "train_size", "--metric", "delta_m", "--out", str(tmp_path / "fig")]) == 0
    rows = list(csv.DictReader((tmp_path / "fig" / "study_train_size_delta_m.csv").open()))
    assert [(row["line"], row["train_size"], row["seeds"]) for row in rows] == [("EW (2 tasks)", "16", "1"), ("EW (2 tasks)", "48", "1")]
    assert (tmp_path / "fig" / "study_train_size_delta_m.png").stat().st_size > 10_000
    assert plot_main([str(runs), "--study", "train_size", "--metric", "depth/abs_err", "--out", str(tmp_path / "fig")]) == 0
    lines = {row["line"] for row in csv.DictReader((tmp_path / "fig" / "study_train_size_depth_abs_err.csv").open())}
    assert lines == {"STL", "EW (2 tasks)"}
    with pytest.raises(RunFileError, match="unknown study axis 'depth'"):
        plot_main([str(runs), "--study", "depth"])
    with pytest.raises(RunFileError, match=r"no run under .* has 'depth/nope'"):
        plot_main([str(runs), "--study", "train_size", "--metric", "depth/nope"])


def test_plotting_a_folder_without_records_is_one_line(tmp_path: Path):
    with pytest.raises(RunFileError, match="holds no complete run record; run the study's sweep first"):
        plot_main([str(tmp_path), "--study", "width"])
