"""``--jobs N`` sweeps on long-lived worker processes: each imports once and trains run after run,
with the numbers of a run in a process of its own; a failing run or a dying worker costs only
its own run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mtlbench.bench.sweeps import sweep
from mtlbench.bench.sweeps.sweep import load_spec, plan, run_sweep
from tests.bench.test_sweep import tiny_spec

KILLER = "tests.bench.killer"


def _spec(tmp_path: Path, tiny_cache: str, seeds: list[int], methods: dict | None = None) -> Path:
    path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(path.read_text())
    spec.update(stl=False, seeds=seeds)
    if methods is not None:
        spec["methods"] = methods
    path.write_text(yaml.safe_dump(spec))
    return path


def _record(runs: Path, run_id: str) -> dict:
    return json.loads((runs / run_id / "version_0" / "results.json").read_text())


def _numbers(record: dict) -> dict:
    """What a run computed (not when, where, or how fast)."""
    return {key: record.get(key) for key in ("status", "metrics", "gradient_statistics", "epochs_completed", "seed")}


def test_workers_train_several_runs_each_with_the_numbers_of_a_run_in_its_own_process(tiny_cache, tmp_path):
    """4 runs on 2 workers: 2 processes in all, which train every run; a run that a worker trained
    after another run in the same process records exactly what it records when it is the only
    run of a fresh process."""
    spec_path = _spec(tmp_path, tiny_cache, seeds=[0, 1])
    runs = tmp_path / "runs"
    outcome = run_sweep(spec_path, runs, jobs=2)
    assert len(outcome["done"]) == 4 and not outcome["failed"]
    records = {run_id: _record(runs, run_id) for run_id in outcome["done"]}
    processes = {}
    for run_id, record in records.items():
        processes.setdefault(record["environment"]["pid"], []).append((record["started"], run_id))
    assert len(processes) == 2, processes
    later = max(max(trained) for trained in processes.values() if len(trained) > 1)[1]  # a worker's run after another

    alone = tmp_path / "alone"
    alone.mkdir()
    run = next(run for run in plan(load_spec(spec_path), alone) if run.run_id == later)
    assert sweep._run_locally(run, alone, jobs=2) == (later, 0)
    fresh = _record(alone, later)
    assert fresh["environment"]["pid"] not in processes
    assert _numbers(fresh) == _numbers(records[later]), later


def test_a_failing_run_and_a_dying_worker_cost_only_their_own_runs(tiny_cache, tmp_path):
    """One worker: a run that raises at step 1 fails with its traceback in its log and the worker
    goes on; a run SIGKILLed with its worker at step 1 (as by the OOM killer) fails with a line
    saying so; the next run gets a new worker and completes."""
    from mtlbench.bench.sweeps.worker import Worker

    spec_path = _spec(tmp_path, tiny_cache, seeds=[0])
    runs = tmp_path / "runs"
    runs.mkdir()
    ew = next(run for run in plan(load_spec(spec_path), runs) if run.run_id.startswith("EW"))
    callback = '--trainer.callbacks+={{"class_path": "{}.{}", "init_args": {{"step": 1}}}}'
    raises, crashes = callback.format(KILLER, "FailAt"), callback.format(KILLER, "CrashAt")
    worker = Worker(sweep._environment(jobs=2))
    try:
        assert worker.run([*ew.args, raises], runs / "raises.log") == 1
        raised = (runs / "raises.log").read_text()
        assert "Traceback" in raised and "RuntimeError: injected failure at step 1" in raised
        assert _record(runs, ew.run_id)["status"] == "failed"
        assert worker.run([*ew.args, crashes], runs / "crashes.log") == 1
        assert worker.started == 1  # the raising run did not end the worker
        crashed = (runs / "crashes.log").read_text()
        assert "mtlbench sweep: the worker process training this run ended (signal SIGKILL); a new one takes the next run" in crashed
        assert worker.run(list(ew.args), runs / "after.log") == 0
    finally:
        worker.close()
    assert worker.started == 2
    assert _record(runs, ew.run_id)["status"] == "complete"
