"""One record whose numbers make its board impossible costs that record, not the leaderboard:
a single-task run with a test metric of 0, or one no float32 metric can hold, is left out with
its file named, and every other board is drawn as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mtlbench.leaderboards.cli import main

QUICKSTART = Path(__file__).resolve().parents[2] / "leaderboards" / "quickstart"


@pytest.mark.parametrize("value", [0.0, 1e-300])
def test_a_baseline_that_cannot_be_divided_by_is_left_out_and_named(tmp_path, value, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(QUICKSTART / "records", runs)
    edited = sorted(runs.glob("stl-depth-Adam-*/version_0/results.json"))
    for path in edited:  # both seeds: the Adam board's depth baseline would be this value
        record = json.loads(path.read_text())
        record["metrics"]["test"]["depth"]["abs_err"] = value
        path.write_text(json.dumps(record))
    assert main([str(runs), "--out", str(tmp_path / "out"), "--no-png"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no library warning either
    table = (tmp_path / "out" / "leaderboard.md").read_text()
    left_out = table.split("## Runs left out")[1]
    for path in edited:
        assert f"- {path.relative_to(runs)}: its test depth/abs_err is {value:g}" in left_out
    sgd = table.split("/ SGD")[1]
    assert (tmp_path / "out" / "findings.md").is_file() and "Δm is not computed" not in sgd.split("##")[0]
    assert "No single-task baseline for depth/abs_err, depth/rel_err: Δm is not computed" in table.split("/ Adam")[1].split("/ SGD")[0]
