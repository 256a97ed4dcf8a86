"""The affinity study's analysis (``mtlbench affinity``) on planted records: predictors that order
the pairs as their measured Delta_m does correlate 1, reversed ones -1, and the groupings'
Delta_m takes each task's metric from the network that trained it."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest

from mtlbench.bench.cli.entry import main as entry
from mtlbench.leaderboards.affinity_study import read_study, write_study
from tests.leaderboards.fixture_runs import record

TASKS = ["segmentation", "depth", "normal", "edges"]
# planted affinity: {segmentation, depth} and {normal, edges} help each other, the rest hurts
Z = [[0.0, 0.04, -0.01, -0.02], [0.03, 0.0, -0.03, -0.005], [-0.02, -0.012, 0.0, 0.05], [-0.018, -0.035, 0.03, 0.0]]
BASE = {"segmentation": 0.5, "depth": 0.4, "normal": 30.0, "edges": 0.2}


def _write(root: Path, name: str, tasks: list[str], seed: int, errors: dict[str, float], affinity: bool = False) -> None:
    metrics = {task: {"err": errors[task]} for task in tasks}
    payload = record("EW", "Adam", seed, ["segmentation"], {"segmentation": {"miou": 0.5}})  # a valid record, then these tasks
    payload["dataset"]["tasks"] = [{"name": task} for task in tasks]
    payload["directions"] = {task: {"err": "lower"} for task in tasks}
    payload["metrics"] = {"val": [{"epoch": 0, "tasks": metrics, "select": 1.0}], "test": metrics}
    if affinity:
        size = len(tasks)
        cos = [[1.0 if i == j else -(Z[i][j] + Z[j][i]) for j in range(size)] for i in range(size)]  # ordered against the affinity
        payload["task_affinity"] = {"tasks": tasks, "every_n_steps": 10, "direction": "adam", "lookaheads": 15, "affinity": Z}
        payload["task_affinity"] |= {"affinity_std": [[0.0] * size] * size, "cos": cos, "mag_sim": [[1.0] * size] * size}
    folder = root / name / "version_0"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(payload))


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    for seed in (0, 1):
        wobble = 1 + 0.01 * seed
        for task in TASKS:
            _write(root, f"stl-{task}-s{seed}", [task], seed, {task: BASE[task] * wobble})
        for i, j in itertools.combinations(range(4), 2):
            gain = 1 - 5 * (Z[i][j] + Z[j][i]) / 2  # the more affinity, the lower both errors
            pair = [TASKS[i], TASKS[j]]
            _write(root, f"pair-{i}{j}-s{seed}", pair, seed, {task: BASE[task] * gain * wobble for task in pair})
        _write(root, f"all-s{seed}", TASKS, seed, {task: BASE[task] * 1.05 for task in TASKS}, affinity=True)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_predictors_ordering_the_pairs_as_training_does_correlate_one(runs, tmp_path):
    write_study(runs, tmp_path / "out", networks=(2,))
    correlations = {(row["predictor"], row["seed"]): float(row["spearman"]) for row in _rows(tmp_path / "out" / "correlations.csv")}
    assert correlations[("affinity", "0")] == pytest.approx(1.0) and correlations[("affinity", "1")] == pytest.approx(1.0)
    assert correlations[("cos", "0")] == pytest.approx(-1.0)
    assert math.isnan(correlations[("mag_sim", "0")])  # a constant predictor orders nothing
    pairs = _rows(tmp_path / "out" / "pairs.csv")
    assert len(pairs) == 2 * 6
    first = next(row for row in pairs if row["pair"] == "segmentation~depth" and row["seed"] == "0")
    # both errors 1 - 5 * 0.035 of the seed's baseline, which is 0.5 % below the two seeds' mean
    assert float(first["affinity"]) == pytest.approx(0.035) and float(first["delta_m"]) == pytest.approx(
        100 * (0.825 / 1.005 - 1), rel=1e-4
    )


def test_groupings_take_each_task_from_the_network_that_trained_it(runs, tmp_path):
    write_study(runs, tmp_path / "out", networks=(2,))
    rows = {(row["grouping"], row["seed"]): row for row in _rows(tmp_path / "out" / "groupings.csv")}
    assert rows[("groups B=2", "0")]["partition"] == "segmentation+depth | normal+edges"
    assert float(rows[("all-in-one", "0")]["delta_m"]) == pytest.approx(100 * (1.05 / 1.005 - 1), rel=1e-4)
    assert float(rows[("single-task", "1")]["delta_m"]) == pytest.approx(100 * (1.01 / 1.005 - 1), rel=1e-4)
    gains = {"segmentation": 0.035, "depth": 0.035, "normal": 0.04, "edges": 0.04}
    expected = 100 * sum((1 - 5 * gains[task]) / 1.005 - 1 for task in TASKS) / 4
    assert float(rows[("groups B=2", "0")]["delta_m"]) == pytest.approx(expected, rel=1e-4)
    assert (tmp_path / "out" / "affinity_study.png").stat().st_size > 10_000
    assert "| groups B=2 | 2 |" in (tmp_path / "out" / "affinity_study.md").read_text()


def test_a_missing_network_or_affinity_is_one_line(runs, tmp_path, capsys):
    for path in runs.glob("pair-01-s1"):
        for file in path.rglob("results.json"):
            file.unlink()
    with pytest.raises(ValueError, match=r"no complete run of tasks segmentation, depth at seed 1"):
        write_study(runs, tmp_path / "out")
    assert entry(["affinity", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) != 0
    assert capsys.readouterr().err.count("\n") == 1
    for file in runs.glob("all-s*/version_0/results.json"):
        data = json.loads(file.read_text())
        del data["task_affinity"]
        file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="recorded task_affinity"):
        read_study(runs)
