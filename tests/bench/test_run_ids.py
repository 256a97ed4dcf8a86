"""Run folders from a sweep spec: no name leaves the runs folder, no two configurations share a
folder, and one sweep at a time holds a runs folder."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mtlbench.bench.sweeps.run_ids import runs_lock
from mtlbench.bench.sweeps.sweep import load_spec, plan, run_sweep

REPO = Path(__file__).resolve().parents[2]
EW = str(REPO / "configs" / "method" / "ew.yaml")
ADAM = str(REPO / "configs" / "optim" / "adam.yaml")


def spec(tmp_path: Path, methods=None, optimizers=None, seeds=(0,), tasks=("segmentation", "depth")) -> Path:
    path = tmp_path / "spec.yaml"
    content = {
        "base": str(REPO / "configs" / "quickstart.yaml"),
        "methods": methods or {"EW": EW},
        "optimizers": optimizers or {"Adam": {"config": ADAM, "lr": [0.001]}},
        "seeds": list(seeds),
        "stl": True,
        "tasks": list(tasks),
    }
    path.write_text(yaml.safe_dump(content))
    return path


def test_a_name_that_leaves_the_runs_folder_is_refused_before_anything_is_touched(tmp_path):
    outside = tmp_path / "x"
    (outside / "version_0").mkdir(parents=True)
    (outside / "version_0" / "keep.txt").write_text("mine")
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match=r"^sweep spec: method '\.\./x' cannot name a run folder"):
        run_sweep(spec(tmp_path, methods={"../x": EW}), runs)
    with pytest.raises(ValueError, match=r"^sweep spec: method '/tmp/y' cannot name a run folder"):
        run_sweep(spec(tmp_path, methods={"/tmp/y": EW}), runs)
    with pytest.raises(ValueError, match=r"^sweep spec: optimizer 'A\\x00B' cannot name a run folder \(it holds a control character"):
        load_spec(spec(tmp_path, optimizers={"A\x00B": {"config": ADAM, "lr": [0.001]}}))
    with pytest.raises(ValueError, match=r"^sweep spec: task 'seg/x' cannot name a run folder"):
        load_spec(spec(tmp_path, tasks=("seg/x", "depth")))
    assert (outside / "version_0" / "keep.txt").read_text() == "mine" and not runs.exists()


def test_two_configurations_of_one_folder_are_refused_before_any_run(tmp_path):
    colliding = spec(
        tmp_path,
        methods={"A": EW, "A-B": EW},
        optimizers={"C": {"config": ADAM, "lr": [0.001]}, "B-C": {"config": ADAM, "lr": [0.001]}},
    )
    with pytest.raises(
        ValueError, match=r"method 'A' under 'B-C' .* and method 'A-B' under 'C' .* would share the run folder 'A-B-C-lr0\.001-s0'"
    ):
        plan(load_spec(colliding), tmp_path / "runs")
    with pytest.raises(ValueError, match=r"would share the run folder 'stl-segmentation-Adam-lr0\.001-s0'"):
        plan(load_spec(spec(tmp_path, seeds=(0, 0))), tmp_path / "runs")


def test_learning_rates_that_differ_get_folders_that_differ(tmp_path):
    close = spec(tmp_path, optimizers={"Adam": {"config": ADAM, "lr": [0.001, 0.0010000001]}})
    ids = [run.run_id for run in plan(load_spec(close), tmp_path / "runs") if run.run_id.startswith("EW-")]
    assert ids == ["EW-Adam-lr0.001-s0", "EW-Adam-lr0.0010000001-s0"]


HOLD = """import sys, time
from pathlib import Path
from mtlbench.bench.sweeps.run_ids import runs_lock
with runs_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""  # another sweep holding the runs folder


def test_a_second_sweep_on_a_runs_folder_in_use_stops_in_one_line_or_waits(tmp_path):
    runs = tmp_path / "runs"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(runs), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"^sweep: the runs folder .* is in use by another sweep \(pid {holder.pid}\)"):
            run_sweep(spec(tmp_path), runs)
        assert sorted(path.name for path in runs.iterdir()) == [".sweep.lock"]  # nothing of the refused sweep
        start = time.monotonic()
        with runs_lock(runs, wait=True):  # --wait: taken once the other sweep lets go
            waited = time.monotonic() - start
        assert waited > 0.5
    finally:
        holder.kill()
        holder.wait()
    with runs_lock(runs):  # a killed holder leaves no lock behind
        pass
