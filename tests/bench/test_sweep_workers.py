"""``--jobs N`` sweeps on long-lived worker processes: a failing run or a dying worker costs only
its own run. (That a worker's runs have the numbers of runs in fresh processes is checked on the
4-run sweep of ``test_sweep_devices.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mtlbench.bench.sweeps import sweep
from mtlbench.bench.sweeps.sweep import load_spec, plan
from tests.bench.test_sweep import tiny_spec

KILLER = "tests.bench.killer"


def _spec(tmp_path: Path, tiny_cache: str, seeds: list[int]) -> Path:
    path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(path.read_text())
    spec.update(stl=False, seeds=seeds)
    path.write_text(yaml.safe_dump(spec))
    return path


def _record(runs: Path, run_id: str) -> dict:
    return json.loads((runs / run_id / "version_0" / "results.json").read_text())


def test_a_dying_worker_and_a_failing_run_cost_only_their_own_runs(tiny_cache, tmp_path):
    """A worker SIGKILLed during a run (as by the OOM killer) fails that run with a line saying
    so; the next run gets a new worker. On it, a run that raises at step 1 fails with its
    traceback in its log, and the worker goes on to complete the next run."""
    import signal
    import threading

    from mtlbench.bench.sweeps.worker import Worker

    spec_path = _spec(tmp_path, tiny_cache, seeds=[0])
    runs = tmp_path / "runs"
    runs.mkdir()
    ew = next(run for run in plan(load_spec(spec_path), runs) if run.run_id.startswith("EW"))
    raises = f'--trainer.callbacks+={{"class_path": "{KILLER}.FailAt", "init_args": {{"step": 1}}}}'
    worker = Worker(sweep._environment(jobs=2))
    killer = threading.Timer(1.0, lambda: worker.process.send_signal(signal.SIGKILL))
    killer.start()  # the run is under way (its request sent) when the kill lands
    try:
        assert worker.run(list(ew.args), runs / "killed.log") == 1
        killed = (runs / "killed.log").read_text()
        assert "mtlbench sweep: the worker process training this run ended (signal SIGKILL); a new one takes the next run" in killed
        assert worker.run([*ew.args, raises], runs / "raises.log") == 1
        raised = (runs / "raises.log").read_text()
        assert "Traceback" in raised and "RuntimeError: injected failure at step 1" in raised
        assert _record(runs, ew.run_id)["status"] == "failed"
        assert worker.run(list(ew.args), runs / "after.log") == 0
    finally:
        killer.cancel()
        worker.close()
    assert worker.started == 2  # one for the killed run, one for both runs after it
    assert _record(runs, ew.run_id)["status"] == "complete"
