"""Golden-file tests of the rendered leaderboard, its statistics, and its torch-free entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtlbench.leaderboards.cli import render_leaderboard
from mtlbench.leaderboards.records import load_runs
from mtlbench.leaderboards.tables import build_boards
from tests.leaderboards.fixture_runs import write_fixture_runs

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fixture_runs(tmp_path) -> Path:
    return write_fixture_runs(tmp_path / "runs")


def normalise(text: str, runs: Path) -> str:
    return text.replace(str(runs), "RUNS")


@pytest.mark.parametrize("name", ["leaderboard.md", "leaderboard.csv", "leaderboard.tex"])
def test_rendered_tables_match_the_golden_files(fixture_runs, tmp_path, name):
    render_leaderboard(fixture_runs, tmp_path / "out", png=False)
    rendered = normalise((tmp_path / "out" / name).read_text(), fixture_runs)
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"{name} changed; rerun with UPDATE_GOLDEN=1 if the change is intended"


def test_boards_statistics(fixture_runs):
    runs, problems = load_runs(fixture_runs)
    assert not problems and len(runs) == 31
    boards = build_boards(runs)
    assert [board.optimizer for board in boards] == ["Adam", "SGD"]
    adam = boards[0]
    assert [row.method for row in adam.rows] == ["UW", "MGDA", "EW"]  # sorted by metric-weighted Delta_m
    mgda = adam.rows[1]
    assert len(mgda.seeds) == 3 and len(mgda.delta_metric) == 3
    # MGDA's effects: miou x0.96 (+4 %), pix_acc x0.99 (+1 %), abs_err x0.95 (-5 %), rel_err x0.97 (-3 %)
    assert sum(mgda.delta_metric) / 3 == pytest.approx((4 + 1 - 5 - 3) / 4, abs=0.3)
    assert mgda.task_change["segmentation"] > 0 > mgda.task_change["depth"]  # negative transfer on segmentation
    assert mgda.relative_cost == pytest.approx(1.9)
    assert adam.rows[2].p_value_vs_ew is None and mgda.p_value_vs_ew is not None


def test_learning_rate_is_chosen_on_validation_not_on_test(fixture_runs):
    runs, _ = load_runs(fixture_runs)
    adam = build_boards(runs)[0]
    ew = next(row for row in adam.rows if row.method == "EW")
    assert ew.lr == 0.001 and ew.label == "EW (lr 0.001)"  # lr 0.01 tests better but validates worse
    assert ew.metrics["segmentation/miou"][0] < 0.6
    assert [row.method for row in adam.rows].count("EW") == 1


def test_diverged_and_unfinished_runs_are_listed_never_averaged(fixture_runs, tmp_path):
    text = render_leaderboard(fixture_runs, tmp_path / "out", png=True)
    assert "diverged (non-finite test metrics) (PCGrad, Adam, seed 0)" in text
    assert "status running (CAGrad, Adam, seed 0)" in text
    assert "| PCGrad" not in text and "| CAGrad" not in text
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 1000


def test_leaderboard_command_does_not_import_torch(fixture_runs, tmp_path):
    code = (
        "import sys; from mtlbench.bench.cli.entry import main; "
        f"assert main(['leaderboard', {str(fixture_runs)!r}, '--out', {str(tmp_path / 'out')!r}, '--no-png']) == 0; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "# Leaderboard" in done.stdout


def test_missing_runs_folder_is_a_one_line_error(tmp_path, capsys):
    from mtlbench.bench.cli.entry import main

    assert main(["leaderboard", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "runs folder" in capsys.readouterr().err


def test_the_last_epochs_mean_can_be_reported_and_says_so(fixture_runs, tmp_path):
    text = render_leaderboard(fixture_runs, tmp_path / "out", png=False, test_metrics="last_epochs_mean")
    assert "mean over each run's last epochs" in text
    assert "no test metrics" in text  # the fixture records carry no last-epochs mean: listed, not averaged


def test_reading_a_wandb_project_without_credentials_is_one_line(tmp_path, monkeypatch, capsys):
    from mtlbench.leaderboards.cli import main

    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    import wandb

    try:
        assert main(["--wandb", "team/mtlbench", "--out", str(tmp_path / "out")]) == 2
    finally:
        wandb.teardown()  # wandb.Api leaves process-wide settings that later in-process runs would inherit
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read W&B project 'team/mtlbench'" in err[0] and "wandb login" in err[0]


def test_missing_runs_folder_is_one_line(tmp_path, capsys):
    from mtlbench.leaderboards.cli import main

    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "runs folder" in capsys.readouterr().err
