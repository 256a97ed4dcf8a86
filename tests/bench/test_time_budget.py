"""The run record's time budget: where a run's wall time goes, each part measured once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mtlbench.bench.run import budget
from mtlbench.bench.run.callbacks import GradientProbe
from mtlbench.bench.run.launch import main
from mtlbench.leaderboards.records import parse_record
from mtlbench.leaderboards.time_budget import budget_line, budget_markdown
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
PROBE = "[{class_path: mtlbench.bench.run.callbacks.GradientProbe, init_args: {every_n_steps: 2}}]"


def fitted_budget(cache: str, out: Path) -> tuple[dict, float]:
    args = [*tiny_cli_args(cache, out, QUICKSTART), "--trainer.max_epochs=2", f"--trainer.callbacks={PROBE}"]
    started = time.perf_counter()
    assert main(["fit", *args]) == 0
    wall = time.perf_counter() - started
    record = json.loads(next(out.rglob("results.json")).read_text())
    return record, wall


@pytest.fixture(scope="module")
def fitted(tiny_cache, tmp_path_factory) -> tuple[dict, float, Path]:
    out = tmp_path_factory.mktemp("budget")
    record, wall = fitted_budget(tiny_cache, out)
    return record, wall, next(out.rglob("results.json"))


def test_every_part_is_measured_and_they_add_up_to_the_run(fitted):
    record, wall, _ = fitted
    spent = record["budget"]
    assert set(spent) == {*budget.PARTS, "other", "total"}
    for part in ("setup", "training_steps", "validation", "probe", "checkpoints", "test", "record"):
        assert spent[part] > 0, part
    assert sum(value for part, value in spent.items() if part != "total") == pytest.approx(spent["total"], abs=0.01)
    assert spent["total"] - spent["start_up"] <= wall  # the command's own time, measured around it
    assert spent["total"] - spent["start_up"] > 0.6 * wall  # and most of it: little happens after the last write


def test_nested_parts_are_taken_out_of_the_steps_they_happen_in(fitted, tiny_cache, tmp_path, monkeypatch):
    """A probe that costs 100 s more per probed step shows in the probe's part, not in the
    training steps' (the negative control: without the subtraction the steps would carry it).
    The 100 s pass on the budget's clock, not the machine's, so the margin does not depend on
    how fast the machine is. This run follows another in the same process: like the later runs
    of an in-process sweep, which imports once, it has no start-up of its own."""
    slow, real_clock = GradientProbe._after_step, budget.clock
    extra = [0.0]
    monkeypatch.setattr(budget, "clock", lambda: real_clock() + extra[0])

    def slower(self, pl_module, state):
        extra[0] += 100.0
        return slow(self, pl_module, state)

    monkeypatch.setattr(GradientProbe, "_after_step", slower)
    record, _ = fitted_budget(tiny_cache, tmp_path)
    probes = len(json.loads(next(tmp_path.rglob("gradient_stats.json")).read_text())["probes"])
    assert probes >= 4
    spent = record["budget"]
    assert spent["probe"] >= 100.0 * probes
    assert spent["training_steps"] < 50.0  # the steps' own time is a second or two
    assert spent["total"] >= 100.0 * probes
    assert spent["start_up"] == 0.0
    assert budget.since_first_import() > 0


def test_the_leaderboard_sums_a_sweeps_budgets_and_refuses_a_hostile_one(fitted):
    record, _, path = fitted
    runs = [parse_record(record, path), parse_record(record, path)]
    table = budget_markdown(runs)
    assert "## Where the time went" in table and "2 runs," in table
    training = 2 * record["budget"]["training_steps"]
    assert f"| training steps | {training:.1f} |" in table
    assert budget_line(runs).startswith("run time: ")
    assert budget_markdown([]) == "" and budget_line([]) == ""
    for hostile in (-1.0, float("nan"), "1", 1e300):
        with pytest.raises(ValueError, match=r"budget\["):
            parse_record({**record, "budget": {**record["budget"], "test": hostile}}, path)
