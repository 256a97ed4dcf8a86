"""Cost columns come from one `mtlbench perf` record, checked as data, not from per-run timings."""

from __future__ import annotations

import json
import math

import pytest

from mtlbench.leaderboards.cli import main, render_leaderboard
from mtlbench.leaderboards.costs import PERF_SCHEMA, load_perf
from mtlbench.leaderboards.records import load_runs
from mtlbench.leaderboards.tables import apply_perf_costs, build_boards
from tests.leaderboards.fixture_runs import write_fixture_runs


def perf_record(backbone: str = "test_resnet", **overrides) -> dict:
    record = {
        "schema": PERF_SCHEMA,
        "created": "2026-11-25T12:00:00+00:00",
        "command": "mtlbench perf --config configs/perf/quickstart.yaml",
        "device": "CPU x86_64, 2 threads",
        "model": {"backbone": backbone},
        "input": {"batch_size": 16, "height": 48, "width": 64},
        "variants": {
            "floor": {"method": "floor", "reference": True, "options": [], "x_ew": 2.0, "peak_memory_mb": 30.0},
            "ew": {"method": "EW", "reference": False, "options": [], "x_ew": 1.0, "peak_memory_mb": 10.0},
            "mgda": {"method": "MGDA", "reference": False, "options": [], "x_ew": 2.4, "peak_memory_mb": 25.0},
            "mgda+bf16": {"method": "MGDA", "reference": False, "options": ["bf16"], "x_ew": 1.5, "peak_memory_mb": 12.0},
        },
    }
    record.update(overrides)
    return record


def test_boards_of_the_records_model_take_its_costs(tmp_path):
    path = tmp_path / "perf.json"
    path.write_text(json.dumps(perf_record()))
    runs, _ = load_runs(write_fixture_runs(tmp_path / "runs"))
    boards = build_boards(runs)
    apply_perf_costs(boards, [load_perf(path)])
    rows = {row.method: row for row in boards[0].rows}
    assert rows["MGDA"].relative_cost == 2.4 and rows["MGDA"].peak_memory_mb == 25.0  # not the bf16 variant's
    assert rows["UW"].relative_cost is None  # not measured: no per-run figure mixed in
    assert "mtlbench perf" in boards[0].cost_source and "2026-11-25" in boards[0].cost_source


def test_a_record_of_another_model_leaves_the_per_run_costs(tmp_path):
    path = tmp_path / "perf.json"
    path.write_text(json.dumps(perf_record(backbone="resnet50")))
    runs, _ = load_runs(write_fixture_runs(tmp_path / "runs"))
    boards = build_boards(runs)
    apply_perf_costs(boards, [load_perf(path)])
    assert next(row for row in boards[0].rows if row.method == "MGDA").relative_cost == pytest.approx(1.9)
    assert boards[0].cost_source.startswith("per-run timings")


def test_record_strings_are_escaped_in_the_markdown(tmp_path):
    path = tmp_path / "perf.json"
    path.write_text(json.dumps(perf_record(device="<img src=x onerror=alert(1)> | cell")))
    text = render_leaderboard(write_fixture_runs(tmp_path / "runs"), tmp_path / "out", png=False, perf=[path])
    assert "<img" not in text and "&lt;img" in text and "\\| cell" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "mtlbench.run/1"}, "is not a perf record"),
        ({"variants": {"ew": {"method": "EW", "x_ew": math.nan}}}, "not a positive number"),
        ({"variants": {"ew": {"method": 3, "x_ew": 1.0}}}, "method is not text"),
        ({"input": None}, "lacks model, input or variants"),
    ],
)
def test_a_malformed_record_is_one_line(tmp_path, capsys, change, message):
    path = tmp_path / "perf.json"
    path.write_text(json.dumps(perf_record(**change)))
    with pytest.raises(ValueError, match=message):
        load_perf(path)
    runs = write_fixture_runs(tmp_path / "runs")
    with pytest.raises(ValueError, match=message):  # the console script prints it as one line
        main([str(runs), "--out", str(tmp_path / "out"), "--no-png", "--perf", str(path)])


def test_publishing_keeps_the_perf_record_and_republishing_in_place_loses_nothing(tmp_path):
    perf = tmp_path / "quickstart_cpu.json"
    perf.write_text(json.dumps(perf_record()))
    out = tmp_path / "published"
    runs = write_fixture_runs(tmp_path / "runs")
    assert main([str(runs), "--out", str(out), "--no-png", "--keep-records", "--perf", str(perf)]) == 0
    first = (out / "leaderboard.md").read_text()
    assert (out / "perf" / "quickstart_cpu.json").is_file() and "2026-11-25" in first
    records = sorted(path.relative_to(out) for path in (out / "records").rglob("results.json"))
    # from the published folder itself: the records and the perf record stay
    assert (
        main([str(out / "records"), "--out", str(out), "--no-png", "--keep-records", "--perf", str(out / "perf" / "quickstart_cpu.json")])
        == 0
    )
    assert sorted(path.relative_to(out) for path in (out / "records").rglob("results.json")) == records
    assert (out / "leaderboard.md").read_text() == first
