"""Validation-only selection: single-task learning rates, baselines and validation Delta_m."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mtlbench.leaderboards.records import Run, parse_record, selected_validation
from mtlbench.leaderboards.selection import baseline_table, best_learning_rate, stl_baseline, validation_delta_m

UP = {"depth/abs_err": False, "segmentation/miou": True}


def stl(task: str, lr: float, seed: int, select: float, val: float, test: float) -> Run:
    metric = "depth/abs_err" if task == "depth" else "segmentation/miou"
    return Run(
        path=Path("."),
        status="complete",
        dataset="d",
        model="m",
        optimizer="Adam",
        lr=lr,
        method="EW",
        tasks=(task,),
        seed=seed,
        test={metric: test},
        val={metric: val},
        select=select,
        higher_is_better={metric: UP[metric]},
    )


def test_stl_baseline_takes_each_tasks_learning_rate_with_the_lowest_mean_validation_loss():
    runs = [
        stl("depth", 0.01, 0, select=1.0, val=0.50, test=0.40),
        stl("depth", 0.01, 1, select=1.2, val=0.54, test=0.44),
        stl("depth", 0.001, 0, select=0.9, val=0.60, test=0.90),  # one good seed,
        stl("depth", 0.001, 1, select=1.5, val=0.70, test=0.95),  # but the worse mean
        stl("segmentation", 0.01, 0, select=2.0, val=0.3, test=0.31),
        stl("segmentation", 0.001, 0, select=1.0, val=0.5, test=0.52),
    ]
    test, lrs = stl_baseline(runs, "test")
    val, _ = stl_baseline(runs, "val")
    assert lrs == {"depth": 0.01, "segmentation": 0.001}
    assert test == pytest.approx({"depth/abs_err": 0.42, "segmentation/miou": 0.52})
    assert val == pytest.approx({"depth/abs_err": 0.52, "segmentation/miou": 0.5})
    assert baseline_table(val) == {"depth": {"abs_err": pytest.approx(0.52)}, "segmentation": {"miou": 0.5}}


def test_best_learning_rate_ignores_non_finite_scores_and_breaks_ties_to_the_smaller_lr():
    runs = [stl("depth", lr, 0, select=s, val=1, test=1) for lr, s in ((0.1, math.nan), (0.01, 1.0), (0.001, 1.0))]
    assert best_learning_rate(runs, lambda run: run.select) == 0.001
    assert best_learning_rate([runs[0]], lambda run: run.select) == 0.1
    assert best_learning_rate([], lambda run: run.select) is None


def test_validation_delta_m_and_its_missing_cases():
    run = stl("depth", 0.01, 0, select=1.0, val=0.55, test=0.4)
    assert validation_delta_m(run, {"depth/abs_err": 0.5}) == pytest.approx(10.0)
    assert validation_delta_m(run, {"segmentation/miou": 0.5}) is None
    assert validation_delta_m(run, {"depth/abs_err": 0.0}) is None


def test_the_selected_validation_entry_is_the_first_lowest_score():
    history = [{"epoch": 0, "select": 3.0}, {"epoch": 1, "select": 1.0}, {"epoch": 2, "select": math.nan}, {"epoch": 3, "select": 1.0}]
    assert selected_validation({"metrics": {"val": history}})["epoch"] == 1
    assert selected_validation({"metrics": {"val": [{"epoch": 0}, {"epoch": 1}]}})["epoch"] == 1  # older records: the last
    assert selected_validation({"metrics": {"val": []}}) is None


def test_records_can_report_the_last_epochs_mean_instead():
    record = {
        "schema": "mtlbench.run/1",
        "status": "complete",
        "method": {"name": "EW"},
        "dataset": {"tasks": [{"name": "depth"}]},
        "metrics": {"val": [], "test": {"depth": {"abs_err": 0.4}}, "test_last_epochs_mean": {"depth": {"abs_err": 0.45}}},
    }
    assert parse_record(record, Path(".")).test == {"depth/abs_err": 0.4}
    assert parse_record(record, Path("."), "last_epochs_mean").test == {"depth/abs_err": 0.45}


def test_baselines_of_one_optimizer_or_network_serve_every_board(tmp_path):
    """Elich et al. measure SGD's rows against Adam's single-task runs; Nash-MTL's MTAN rows are
    measured against single-task SegNets: `stl_optimizer` and `stl_model` say so."""
    from mtlbench.leaderboards.cli import main as leaderboard_main
    from mtlbench.leaderboards.records import load_runs, model_name
    from mtlbench.leaderboards.tables import build_boards
    from tests.leaderboards.report_runs import write_report_runs

    runs, _ = load_runs(write_report_runs(tmp_path / "runs", "CityscapesDataModule", ["segmentation", "depth"]))
    own = {board.optimizer: board for board in build_boards(runs)}
    assert own["SGD"].missing_baselines == own["SGD"].metrics and not own["Adam"].missing_baselines
    shared = {board.optimizer: board for board in build_boards(runs, stl_optimizer="Adam")}
    assert shared["SGD"].baseline == shared["Adam"].baseline and shared["SGD"].rows[0].delta_metric
    assert build_boards(runs, stl_optimizer="Adam", stl_model="MTANSegNet")[0].missing_baselines  # no such single-task runs
    assert model_name({"class_path": "mtlbench.models.SegNet", "init_args": {"widths": [8] * 5}}) == "SegNet"
    assert model_name({"class_path": "mtlbench.models.MultiTaskNet", "init_args": {"backbone": "resnet50"}}) == "resnet50"
    assert model_name("mtlbench.models.SegNet") == "unknown"
    assert leaderboard_main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--stl-optimizer", "Adam", "--no-png"]) == 0
    assert "SegNet / SGD" in (tmp_path / "out" / "leaderboard.md").read_text()
