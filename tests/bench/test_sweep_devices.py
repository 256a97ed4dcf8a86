"""Local multi-GPU sweeps: ``--jobs N --gpus-per-run K`` gives each run K devices of its own.

Tested on CPU with a fake device count: ``CUDA_VISIBLE_DEVICES`` lists four devices, the runs
train on the CPU, and their records say which devices they were given.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from mtlbench.bench.cli.entry import main
from mtlbench.bench.sweeps import devices, sweep
from tests.bench.test_sweep import REPO, tiny_spec


def test_visible_devices_follow_cuda_visible_devices(monkeypatch):
    for listed, expected in (("0,1,2,3", ["0", "1", "2", "3"]), ("3, 1", ["3", "1"]), ("2,-1,3", ["2"]), ("", [])):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
        assert devices.visible_devices() == expected


def test_one_gpu_per_run_by_default_when_runs_go_in_parallel_on_gpus():
    assert devices.gpus_per_run(None, jobs=8, devices=[str(i) for i in range(8)]) == 1  # not 8 runs on GPU 0
    assert devices.gpus_per_run(None, jobs=1, devices=["0"]) == 0  # one run at a time: its config decides
    assert devices.gpus_per_run(None, jobs=4, devices=[]) == 0  # CPUs
    assert devices.gpus_per_run(2, jobs=4, devices=[]) == 2
    with pytest.raises(ValueError, match="--gpus-per-run takes 0"):
        devices.gpus_per_run(-1, jobs=1, devices=[])


def test_slots_are_disjoint_and_too_few_devices_are_refused(monkeypatch):
    assert devices.slots(2, 2, ["0", "1", "2", "3"]) == [("0", "1"), ("2", "3")]
    assert devices.slots(3, 1, ["4", "5", "6", "7"]) == [("4",), ("5",), ("6",)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    with pytest.raises(ValueError, match=r"^--jobs 3 x --gpus-per-run 2 needs 6 GPUs, 4 visible \(CUDA_VISIBLE_DEVICES=0,1,2,3\); lower"):
        devices.slots(3, 2, ["0", "1", "2", "3"])


def test_a_run_with_several_gpus_runs_ddp_over_its_own(tmp_path, monkeypatch):
    """K = 2: each run process sees its two devices and is told to run DDP over both."""
    seen = []

    def fake_run(command, stdout, stderr, env):
        seen.append((env["CUDA_VISIBLE_DEVICES"], [arg for arg in command if arg.startswith("--trainer.")]))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(sweep.subprocess, "run", fake_run)
    pool = devices.DevicePool(devices.slots(2, 2, ["0", "1", "2", "3"]))
    for seed in (0, 1):
        run = sweep.PlannedRun(f"EW-Adam-lr0.001-s{seed}", ("--config", "x.yaml"), "Adam")
        assert sweep._run_locally(run, tmp_path, jobs=2, pool=pool)[1] == 0
    assert seen == [("0,1", ["--trainer.devices=2", "--trainer.strategy=ddp"]), ("2,3", ["--trainer.devices=2", "--trainer.strategy=ddp"])]
    assert "on GPU 0,1 (CUDA_VISIBLE_DEVICES)" in (tmp_path / "EW-Adam-lr0.001-s0.log").read_text()


def _held(log: Path) -> tuple[str, dt.datetime, dt.datetime]:
    """The devices a run held and when, from the sweep's lines in its log."""
    lines = log.read_text().splitlines()
    taken = next(line for line in lines if line.startswith("mtlbench sweep: on GPU "))
    released = next(line for line in lines if line.startswith("mtlbench sweep: GPU ") and " handed on at " in line)
    device = taken.split()[4]
    return device, dt.datetime.fromisoformat(taken.rsplit(" from ", 1)[1]), dt.datetime.fromisoformat(released.rsplit(" at ", 1)[1])


@pytest.fixture(scope="module")
def two_at_a_time(tiny_cache, tmp_path_factory) -> tuple[Path, Path, str]:
    """4 runs (EW and UW, 2 seeds), --jobs 2 --gpus-per-run 1 with four devices visible: the
    spec, the runs folder and what the sweep printed."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("two_at_a_time")
    spec_path = tiny_spec(folder, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec.update(stl=False, seeds=[0, 1])
    spec_path.write_text(yaml.safe_dump(spec))
    runs, printed = folder / "runs", io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
        assert main(["sweep", str(spec_path), "--runs", str(runs), "--jobs", "2", "--gpus-per-run", "1"]) == 0
    return spec_path, runs, printed.getvalue()


def test_two_runs_at_a_time_each_see_one_device_of_their_own(two_at_a_time):
    """Every record names the one device its run saw (the one the sweep gave it), and runs that
    held devices at the same time never held the same one."""
    _, runs, printed = two_at_a_time
    assert "4 done" in printed
    records = {path.parents[1].name: json.loads(path.read_text()) for path in sorted(runs.glob("*/version_0/results.json"))}
    assert len(records) == 4 and all(record["status"] == "complete" for record in records.values())
    held = {run_id: _held(runs / f"{run_id}.log") for run_id in records}
    for run_id, record in records.items():
        assert record["environment"]["cuda_visible_devices"] == held[run_id][0] in ("0", "1")  # one device, from the two slots
    overlapping = 0
    ids = sorted(held)
    for index, first in enumerate(ids):
        for second in ids[index + 1 :]:
            (device_a, start_a, end_a), (device_b, start_b, end_b) = held[first], held[second]
            if start_a < end_b and start_b < end_a:  # they held devices at the same time
                overlapping += 1
                assert device_a != device_b, (first, second)
    assert overlapping >= 1  # the first two runs start together: the test saw runs at the same time


def test_a_workers_later_run_has_the_numbers_of_a_run_in_a_fresh_process(two_at_a_time, tmp_path):
    """The 4 runs were trained by the sweep's 2 long-lived workers: a run a worker trained after
    another run in the same process records exactly what it records as the only run of a fresh
    process (metrics, gradient statistics, epochs)."""
    spec_path, runs, _ = two_at_a_time
    records = {path.parents[1].name: json.loads(path.read_text()) for path in runs.glob("*/version_0/results.json")}
    processes: dict[int, list[tuple[str, str]]] = {}
    for run_id, record in records.items():
        processes.setdefault(record["environment"]["pid"], []).append((record["started"], run_id))
    assert len(processes) == 2, processes
    later = max(max(trained) for trained in processes.values() if len(trained) > 1)[1]
    run = next(run for run in sweep.plan(sweep.load_spec(spec_path), tmp_path) if run.run_id == later)
    assert sweep._run_locally(run, tmp_path, jobs=2) == (later, 0)
    fresh = json.loads(run.record(tmp_path).read_text())
    assert fresh["environment"]["pid"] not in processes

    def numbers(record: dict) -> dict:
        return {key: record.get(key) for key in ("status", "metrics", "gradient_statistics", "epochs_completed", "seed")}

    assert numbers(fresh) == numbers(records[later])


def test_more_gpus_than_visible_is_refused_in_one_line_before_any_run(tiny_cache, tmp_path, monkeypatch, capsys):
    spec_path = tiny_spec(tmp_path, tiny_cache)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    runs = tmp_path / "runs"
    assert main(["sweep", str(spec_path), "--runs", str(runs), "--jobs", "3", "--gpus-per-run", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "mtlbench: error: --jobs 3 x --gpus-per-run 2 needs 6 GPUs, 4 visible (CUDA_VISIBLE_DEVICES=0,1,2,3); "
        "lower --jobs or --gpus-per-run, or raise --runs-per-gpu (--gpus-per-run 0 assigns none)"
    ]
    assert captured.out == "" and not list(Path(runs).glob("*/version_0"))


@pytest.mark.slow
def test_runs_with_two_devices_each_run_ddp_inside(tiny_cache, tmp_path, monkeypatch, capsys):
    """--jobs 2 --gpus-per-run 2 over four fake devices: two runs at once, each a 2-process DDP
    job (gloo on the CPU here) whose record names its own pair of devices. (Slow: four training
    processes on two cores; the default run checks the environment and arguments such runs get.)"""
    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec.update(stl=False)  # EW and UW: 2 runs
    spec_path.write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    runs = tmp_path / "runs"
    assert main(["sweep", str(spec_path), "--runs", str(runs), "--jobs", "2", "--gpus-per-run", "2"]) == 0
    records = [json.loads(path.read_text()) for path in sorted(runs.glob("*/version_0/results.json"))]
    assert [record["status"] for record in records] == ["complete", "complete"]
    assert all(record["trainer"]["world_size"] == 2 for record in records)
    assert sorted(record["environment"]["cuda_visible_devices"] for record in records) == ["0,1", "2,3"]


def test_no_jobs_is_refused_in_one_line(tmp_path, capsys):
    assert main(["sweep", str(REPO / "configs" / "sweeps" / "quickstart.yaml"), "--runs", str(tmp_path), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["mtlbench: error: sweep: --jobs takes 1 or more, got 0"]


def test_runs_per_gpu_spreads_runs_over_the_fewest_groups_and_refuses_too_few():
    assert devices.slots(4, 1, ["0", "1", "2", "3"], runs_per_gpu=2) == [("0",), ("1",), ("0",), ("1",)]
    assert devices.slots(3, 1, ["0", "1"], runs_per_gpu=4) == [("0",), ("0",), ("0",)]
    assert devices.slots(4, 2, ["0", "1", "2", "3"], runs_per_gpu=2) == [("0", "1"), ("2", "3"), ("0", "1"), ("2", "3")]
    with pytest.raises(ValueError, match=r"^--jobs 6 x --gpus-per-run 1 / --runs-per-gpu 2 needs 3 GPUs, 2 visible"):
        devices.slots(6, 1, ["0", "1"], runs_per_gpu=2)


def test_runs_per_gpu_is_refused_where_the_measured_memory_does_not_hold_them():
    devices.check_memory(4, peak_reserved_mb=10_000, device_memory_mb=81_559, device="NVIDIA H100")  # 4 x 10.6 GiB fit
    with pytest.raises(ValueError) as refused:
        devices.check_memory(8, peak_reserved_mb=10_000, device_memory_mb=81_559, device="NVIDIA H100")
    assert str(refused.value) == (
        "--runs-per-gpu 8: a run of this sweep reserved 10,000 MiB on NVIDIA H100 (81,559 MiB), 10,600 MiB with its CUDA "
        "context; 8 need 84,800 MiB, more than 95% of the device: use --runs-per-gpu 7 or fewer"
    )


class _FakeWorker:
    """A worker that trains nothing: it notes the environment and arguments each run receives,
    and how many runs were going at once."""

    going, seen, writes = 0, [], None  # writes: a record each run leaves

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, args, log: Path) -> int:
        import time

        _FakeWorker.going += 1
        going = _FakeWorker.going
        time.sleep(0.2)
        trainer = [arg for arg in args if arg.startswith("--trainer.devices") or arg.startswith("--trainer.strategy")]
        _FakeWorker.seen.append((log.stem, self.env["CUDA_VISIBLE_DEVICES"], self.env["OMP_NUM_THREADS"], trainer, going))
        _FakeWorker.going -= 1
        if _FakeWorker.writes is not None:
            path = log.parent / log.stem / "version_0" / "results.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_FakeWorker.writes))
        return 0

    def close(self) -> None:
        pass


def test_runs_per_gpu_gives_each_run_its_shared_device_after_a_first_run_alone(tiny_cache, tmp_path, monkeypatch):
    """--jobs 4 --gpus-per-run 1 --runs-per-gpu 2 with four devices visible: the workers see
    devices 0, 1, 0, 1 (two runs per device, two devices in use) and a core each of eight; the
    first run goes alone (to measure a run's memory), the others up to four at a time."""
    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec.update(stl=False, seeds=[0, 1, 2, 3])  # EW and UW: 8 runs
    spec_path.write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(sweep, "Worker", _FakeWorker)
    _FakeWorker.seen, _FakeWorker.writes = [], None
    outcome = sweep.run_sweep(spec_path, tmp_path / "runs", jobs=4, gpus_per_run=1, runs_per_gpu=2)
    assert len(outcome["done"]) == 8
    seen = _FakeWorker.seen
    assert seen[0][0] == "EW-Adam-lr0.003-s0" and seen[0][4] == 1  # the first run went alone
    assert max(going for *_, going in seen) > 2  # then several at once
    assert {device for _, device, *_ in seen} == {"0", "1"}
    assert all(threads == "2" and trainer == ["--trainer.devices=1"] for _, _, threads, trainer, _ in seen)


def test_runs_per_gpu_refuses_in_one_line_from_a_recorded_peak_before_any_run(tiny_cache, tmp_path, monkeypatch, capsys):
    """A run of the sweep already recorded its GPU memory: a sharing its device cannot hold is
    refused before anything starts, in one line, and that record is kept."""
    from tests.leaderboards.fixture_runs import record

    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec.update(stl=False)
    spec_path.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    done = record("EW", "Adam", 0, ["segmentation", "depth"], {"segmentation": {"miou": 0.5}, "depth": {"abs_err": 0.4}})
    done["cost"].update(peak_reserved_mb=30_000.0, device_memory_mb=81_559.0)
    done["environment"] = {"gpus": ["NVIDIA H100 80GB HBM3"]}
    path = runs / "EW-Adam-lr0.003-s0" / "version_0" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(done))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(sweep, "Worker", _FakeWorker)
    _FakeWorker.seen, _FakeWorker.writes = [], None
    args = ["sweep", str(spec_path), "--runs", str(runs), "--jobs", "4", "--gpus-per-run", "1", "--runs-per-gpu", "4"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "mtlbench: error: --runs-per-gpu 4: a run of this sweep reserved 30,000 MiB on NVIDIA H100 80GB HBM3 (81,559 MiB), "
        "30,600 MiB with its CUDA context; 4 need 122,400 MiB, more than 95% of the device: use --runs-per-gpu 2 or fewer"
    ]
    assert _FakeWorker.seen == [] and path.is_file()
    assert main(["sweep", str(spec_path), "--runs", str(runs), "--jobs", "1", "--runs-per-gpu", "2"]) == 2
    assert "shares GPUs between runs, and this sweep assigns none; add --gpus-per-run 1" in capsys.readouterr().err


def test_runs_per_gpu_measures_the_first_run_alone_and_stops_where_the_rest_would_not_fit(tiny_cache, tmp_path, monkeypatch, capsys):
    from tests.leaderboards.fixture_runs import record

    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec.update(stl=False)
    spec_path.write_text(yaml.safe_dump(spec))
    written = record("EW", "Adam", 0, ["segmentation", "depth"], {"segmentation": {"miou": 0.5}, "depth": {"abs_err": 0.4}})
    written["cost"].update(peak_reserved_mb=50_000.0, device_memory_mb=81_559.0)
    written["environment"] = {"gpus": ["NVIDIA H100 80GB HBM3"]}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(sweep, "Worker", _FakeWorker)
    _FakeWorker.seen, _FakeWorker.writes = [], written
    with pytest.raises(ValueError, match=r"^--runs-per-gpu 2: a run of this sweep reserved 50,000 MiB .* use --runs-per-gpu 1 or fewer$"):
        sweep.run_sweep(spec_path, tmp_path / "runs", jobs=2, gpus_per_run=1, runs_per_gpu=2)
    assert [run_id for run_id, *_ in _FakeWorker.seen] == ["EW-Adam-lr0.003-s0"]  # the pilot only; its record kept
    assert (tmp_path / "runs" / "EW-Adam-lr0.003-s0" / "version_0" / "results.json").is_file()


def test_slurm_jobs_get_the_gpus_asked_for_one_by_default(tmp_path, monkeypatch, capsys):
    """--slurm reads --gpus-per-run (or --gpus): one GPU and one task per job by default, K GPUs
    and K tasks (DDP ranks) when asked; a negative count is one line."""
    asked = []

    def submitted(spec, runs, jobs, slurm, gpus_per_run, runs_per_gpu, wait):
        asked.append((slurm["gpus_per_node"], slurm["tasks_per_node"]))
        return {"skipped": [], "done": [], "diverged": [], "failed": [], "blocked": [], "submitted": ["a run"]}

    monkeypatch.setattr(sweep, "run_sweep", submitted)
    spec = str(REPO / "configs" / "sweeps" / "quickstart.yaml")
    for extra in ([], ["--gpus", "2"], ["--gpus-per-run", "0"]):
        assert main(["sweep", spec, "--runs", str(tmp_path), "--slurm", *extra]) == 0
    assert asked == [(1, 1), (2, 2), (0, 1)]
    capsys.readouterr()
    assert main(["sweep", spec, "--runs", str(tmp_path), "--slurm", "--gpus", "-1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["mtlbench: error: sweep: --gpus-per-run takes 0 (CPU jobs) or more, got -1"]
