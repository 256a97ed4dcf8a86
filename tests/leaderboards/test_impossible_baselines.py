"""One record whose numbers make its board impossible costs that record, not the leaderboard:
a single-task run with a test metric of 0, or one no float32 metric can hold, is left out with
its file named, and every other board is drawn as before. So is a seed whose metric has the
other sign than its baseline's first seed where the seeds would average to 0."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mtlbench.leaderboards.cli import main

QUICKSTART = Path(__file__).resolve().parents[2] / "leaderboards" / "quickstart"
NON_FINITE = re.compile(r"(?i)\b(?:inf|nan)\b")  # a number no table shows (the CSV's empty Δm of a board without baseline is nan)
SGD = "## SyntheticScenesDataModule / test_resnet / SGD"


def board(table: str, title: str) -> str:
    """The section of ``table`` under the heading ``title``."""
    return table.split(title)[1].split("\n## ")[0]


@pytest.fixture(scope="module")
def untouched(tmp_path_factory) -> str:
    """leaderboard.md of the quickstart's records as they are."""
    out = tmp_path_factory.mktemp("untouched")
    assert main([str(QUICKSTART / "records"), "--out", str(out), "--no-png"]) == 0
    return (out / "leaderboard.md").read_text()


def render(tmp_path: Path, runs: Path, capsys, recwarn) -> str:
    """leaderboard.md of ``runs``, after checking that nothing but the tables was said or written:
    no warning (numpy's or scipy's included), no output on stderr, no non-finite number."""
    assert main([str(runs), "--out", str(tmp_path / "out"), "--no-png"]) == 0
    assert capsys.readouterr().err == ""
    assert [f"{warning.category.__name__}: {warning.message}" for warning in recwarn] == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "runs"]  # nothing written beside --out
    for name in ("leaderboard.md", "findings.md"):
        assert not NON_FINITE.search((tmp_path / "out" / name).read_text()), name
    assert not re.search(r"(?i)\binf\b", (tmp_path / "out" / "leaderboard.csv").read_text())
    return (tmp_path / "out" / "leaderboard.md").read_text()


@pytest.mark.parametrize("value", [0.0, 1e-300])
def test_a_baseline_that_cannot_be_divided_by_is_left_out_and_named(tmp_path, value, capsys, recwarn, untouched):
    runs = tmp_path / "runs"
    shutil.copytree(QUICKSTART / "records", runs)
    edited = sorted(runs.glob("stl-depth-Adam-*/version_0/results.json"))
    for path in edited:  # both seeds: the Adam board's depth baseline would be this value
        record = json.loads(path.read_text())
        record["metrics"]["test"]["depth"]["abs_err"] = value
        path.write_text(json.dumps(record))
    table = render(tmp_path, runs, capsys, recwarn)
    left_out = table.split("## Runs left out")[1]
    for path in edited:
        assert f"- {path.relative_to(runs)}: its test depth/abs_err is {value:g}" in left_out
    assert (tmp_path / "out" / "findings.md").is_file() and board(table, SGD) == board(untouched, SGD)
    assert "No single-task baseline for depth/abs_err, depth/rel_err: Δm is not computed" in table.split("/ Adam")[1].split("/ SGD")[0]


def test_baseline_seeds_that_would_average_to_zero_leave_out_the_other_sign(tmp_path, capsys, recwarn, untouched):
    """Each seed is a fine divisor, their mean is not: the seed of the other sign than the
    first (by path) is left out, and the board keeps its baseline and its Delta_m."""
    runs = tmp_path / "runs"
    shutil.copytree(QUICKSTART / "records", runs)
    first, second = sorted(runs.glob("stl-depth-Adam-*/version_0/results.json"))
    value = json.loads(first.read_text())["metrics"]["test"]["depth"]["abs_err"]
    record = json.loads(second.read_text())
    record["metrics"]["test"]["depth"]["abs_err"] = -value
    second.write_text(json.dumps(record))
    table = render(tmp_path, runs, capsys, recwarn)
    reason = f"its test depth/abs_err is {-value:g}, of the other sign than {first.relative_to(runs)}'s {value:g}"
    assert f"- {second.relative_to(runs)}: {reason}: their mean, the baseline Delta_m divides by, would be 0" in table
    assert table.count(str(second.relative_to(runs))) == 1
    assert "Δm is not computed" not in table and board(table, SGD) == board(untouched, SGD)
