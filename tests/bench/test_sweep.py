"""Sweeps: expansion with stable ids and baselines, skipping complete runs, rerunning the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mtlbench.bench.sweeps.sweep import load_spec, plan, run_sweep

REPO = Path(__file__).resolve().parents[2]


def tiny_spec(tmp_path: Path, cache: str) -> Path:
    spec = {
        "base": str(REPO / "configs" / "quickstart.yaml"),
        "overrides": [
            f"--data.init_args.cache_dir={cache}",
            "--data.init_args.num_train=48",
            "--data.init_args.num_val=8",
            "--data.init_args.num_test=8",
            "--data.init_args.height=48",
            "--data.init_args.width=64",
            "--data.init_args.batch_size=8",
            "--data.init_args.tasks=[segmentation, depth]",
            "--trainer.max_epochs=1",
            "--trainer.callbacks=[]",
            "--trainer.enable_checkpointing=false",
        ],
        "methods": {"EW": str(REPO / "configs" / "method" / "ew.yaml"), "UW": str(REPO / "configs" / "method" / "uw.yaml")},
        "optimizers": {"Adam": {"config": str(REPO / "configs" / "optim" / "adam.yaml"), "lr": [0.003]}},
        "seeds": [0],
        "stl": True,
        "tasks": ["segmentation", "depth"],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_plan_has_stable_ids_and_baselines(tmp_path):
    spec = load_spec(REPO / "configs" / "sweeps" / "quickstart.yaml")
    runs = plan(spec, tmp_path)
    ids = [run.run_id for run in runs]
    assert len(ids) == len(set(ids)) == 2 * 2 * (3 + 6)  # optimizers x seeds x (baselines + methods)
    assert "stl-depth-Adam-lr0.001-s0" in ids and "Nash-MTL-SGD-lr0.05-s1" in ids
    assert ids == [run.run_id for run in plan(load_spec(REPO / "configs" / "sweeps" / "quickstart.yaml"), tmp_path)]


def test_a_method_entry_can_carry_fit_arguments(tmp_path):
    spec = load_spec(REPO / "configs" / "sweeps" / "refresh.yaml")
    runs = {run.run_id: run.args for run in plan(spec, tmp_path)}
    assert "--model.refresh_every=4" in runs["UPGrad-k4-Adam-lr0.001-s0"]
    assert not any("refresh_every" in arg for arg in runs["UPGrad-Adam-lr0.001-s0"])
    assert not any("refresh_every" in arg for arg in runs["stl-depth-SGD-lr0.05-s2"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load((REPO / "configs/sweeps/refresh.yaml").read_text()), "methods": {"X": {"args": []}}}))
    with pytest.raises(ValueError, match="method 'X' must be a config file or"):
        load_spec(bad)


def test_interrupted_sweep_reruns_only_what_is_missing(tiny_cache, tmp_path):
    """(In this process: runs in processes of their own, --jobs 2, are the subject of test_sweep_devices and test_resume.)"""
    spec = tiny_spec(tmp_path, tiny_cache)
    runs_dir = tmp_path / "runs"
    first = run_sweep(spec, runs_dir, jobs=1)
    assert sorted(first["done"]) == [
        "EW-Adam-lr0.003-s0",
        "UW-Adam-lr0.003-s0",
        "stl-depth-Adam-lr0.003-s0",
        "stl-segmentation-Adam-lr0.003-s0",
    ]
    assert first["failed"] == [] and first["skipped"] == []
    # simulate a run killed half way: its record never reached "complete"
    record = runs_dir / "UW-Adam-lr0.003-s0" / "version_0" / "results.json"
    payload = json.loads(record.read_text())
    payload["status"] = "running"
    record.write_text(json.dumps(payload))
    second = run_sweep(spec, runs_dir, jobs=1)
    assert second["done"] == ["UW-Adam-lr0.003-s0"] and len(second["skipped"]) == 3
    assert json.loads(record.read_text())["status"] == "complete"
    # model selection: the multi-task runs select by validation Delta_m against the baselines run first
    assert first["done"][:2] == ["stl-segmentation-Adam-lr0.003-s0", "stl-depth-Adam-lr0.003-s0"]
    baseline = json.loads((runs_dir / "baselines" / "Adam.json").read_text())
    stl_depth = json.loads((runs_dir / "stl-depth-Adam-lr0.003-s0" / "version_0" / "results.json").read_text())
    assert baseline["depth"] == stl_depth["metrics"]["val"][-1]["tasks"]["depth"]  # one epoch, one seed, one lr
    ew = json.loads((runs_dir / "EW-Adam-lr0.003-s0" / "version_0" / "results.json").read_text())
    assert ew["selection"]["criterion"] == "val_delta_m"
    assert ew["selection"]["baseline"]["depth/abs_err"] == pytest.approx(baseline["depth"]["abs_err"])
    assert stl_depth["selection"]["criterion"] == "val_loss"


def test_sweep_command_skips_complete_runs_and_prints_the_leaderboard(tiny_cache, tmp_path, capsys):
    from mtlbench.bench.sweeps.sweep import main

    spec = tiny_spec(tmp_path, tiny_cache)
    runs_dir = tmp_path / "runs"
    assert main([str(spec), "--runs", str(runs_dir)]) == 0
    assert main([str(spec), "--runs", str(runs_dir)]) == 0  # everything complete: nothing runs again
    out = capsys.readouterr().out
    assert "4 skipped, 0 done" in out and out.count("full tables: ") == 2 and "# Leaderboard" not in out  # a summary, not the table
    table = (runs_dir / "leaderboard" / "leaderboard.md").read_text()
    assert "| EW |" in table and "| UW" in table
    summary = [line.split() for line in out.splitlines() if line.startswith("   ") and line.split()[0].isdigit()]  # rank, method, ...
    assert {line[1] for line in summary} == {"EW", "UW"} and all("seeds" in line for line in summary)
    assert "      EW has 1 seed: comparisons need at least 2 seeds per method; run more seeds" in out  # why no verdict


def written_log(path: Path, timeout: float = 20.0) -> bytes:
    """A W&B transaction log once its writer (W&B's own service process, which may still be
    flushing when the run has finished) has put more than its header in it."""
    import time

    deadline = time.monotonic() + timeout
    while len(data := path.read_bytes()) <= 16 and time.monotonic() < deadline:
        time.sleep(0.2)
    return data


def test_sweep_logs_each_run_to_its_own_offline_wandb_run(tiny_cache, tmp_path, monkeypatch):
    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec["overrides"] = [arg for arg in spec["overrides"] if "tasks=" not in arg] + ["--data.init_args.tasks=[depth, normal]"]
    spec["tasks"] = ["depth", "normal"]
    spec["methods"] = {"EW": spec["methods"]["EW"]}
    spec["wandb"] = {"project": "sweep-test"}
    spec_path.write_text(yaml.safe_dump(spec))
    runs_dir = tmp_path / "runs"
    assert run_sweep(spec_path, runs_dir)["done"] == ["stl-depth-Adam-lr0.003-s0", "stl-normal-Adam-lr0.003-s0", "EW-Adam-lr0.003-s0"]
    offline = sorted((runs_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 3  # one W&B run per sweep run, none reused
    for folder in offline:
        assert json.loads((folder / "files" / "results.json").read_text())["status"] == "complete"
        log = written_log(next(folder.glob("*.wandb")))
        assert b"sweep-test" in log and b"spec" in log  # project, and the group: the spec's name
    from mtlbench.leaderboards.records import load_runs

    runs, _ = load_runs(runs_dir)
    assert len(runs) == 3  # W&B's copies of the records are not counted again


def test_multi_task_runs_wait_for_their_baselines(tiny_cache, tmp_path):
    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec["overrides"].append("--model.net.init_args.backbone=resnet19")  # every run fails
    spec_path.write_text(yaml.safe_dump(spec))
    outcome = run_sweep(spec_path, tmp_path / "runs")
    assert len(outcome["failed"]) == 2 and outcome["done"] == []
    assert outcome["blocked"] == ["EW-Adam-lr0.003-s0", "UW-Adam-lr0.003-s0"]


@pytest.mark.slow
def test_submitit_path_runs_baselines_then_methods(tiny_cache, tmp_path):
    """The --slurm path through submitit's local executor (real subprocesses, no SLURM here)."""
    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec["methods"] = {"EW": spec["methods"]["EW"]}
    spec_path.write_text(yaml.safe_dump(spec))
    runs_dir = tmp_path / "runs"
    outcome = run_sweep(spec_path, runs_dir, slurm={"cluster": "local", "timeout_min": 10})
    assert outcome["submitted"] == ["stl-segmentation-Adam-lr0.003-s0", "stl-depth-Adam-lr0.003-s0", "EW-Adam-lr0.003-s0"]
    import time  # the jobs of the last phase run on: wait for their record

    record = runs_dir / "EW-Adam-lr0.003-s0" / "version_0" / "results.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (record.is_file() and json.loads(record.read_text())["status"] == "complete"):
        time.sleep(1)
    assert json.loads(record.read_text())["selection"]["criterion"] == "val_delta_m"


def test_bad_spec_is_named(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"base": "x.yaml"}))
    with pytest.raises(ValueError, match="missing 'methods'"):
        load_spec(path)


@pytest.mark.slow
def test_a_two_process_job_is_requeued_when_signalled_and_resumes(tiny_cache, tmp_path):
    """--slurm with 2 tasks per job through submitit's local executor: the job runs PCGrad under
    DDP on 2 CPU processes; the timeout signal (USR2) makes it requeue itself, and the requeued
    job resumes from the last checkpoint and completes."""
    import signal
    import subprocess
    import time

    import submitit

    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    kept = [
        arg for arg in spec["overrides"] if not arg.startswith(("--trainer.max_epochs", "--trainer.callbacks", "--trainer.enable_check"))
    ]
    spec["overrides"] = [*kept, "--trainer.max_epochs=8", "--model.net.init_args.norm=group"]
    spec["methods"], spec["stl"] = {"PCGrad": str(REPO / "configs" / "method" / "pcgrad.yaml")}, False
    spec_path.write_text(yaml.safe_dump(spec))
    runs_dir = tmp_path / "runs"
    slurm = {"cluster": "local", "timeout_min": 10, "tasks_per_node": 2, "gpus_per_node": 0}
    assert run_sweep(spec_path, runs_dir, slurm=slurm)["submitted"] == ["PCGrad-Adam-lr0.003-s0"]
    run_dir = runs_dir / "PCGrad-Adam-lr0.003-s0" / "version_0"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (run_dir / "checkpoints" / "last.ckpt").is_file():
        time.sleep(0.2)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file(), "the job saved no checkpoint"
    tasks = subprocess.run(["pgrep", "-f", f"submitit.core._submit {runs_dir}"], capture_output=True, text=True).stdout.split()
    assert len(tasks) == 2, tasks
    for pid in tasks:  # what SLURM sends before the time limit
        subprocess.run(["kill", f"-{signal.Signals(submitit.JobEnvironment._usr_sig()).name[3:]}", pid], check=True)
    record = run_dir / "results.json"
    while time.monotonic() < deadline and not (record.is_file() and json.loads(record.read_text())["status"] == "complete"):
        time.sleep(1)
    final = json.loads(record.read_text())
    assert final["status"] == "complete" and final["trainer"]["world_size"] == 2
    assert [entry["epoch"] for entry in final["metrics"]["val"]] == list(range(8))  # the history survives the requeue
    assert len(final["resumed"]) == 1 and final["resumed"][0]["epoch"] >= 1
    logs = "".join(path.read_text() for path in (runs_dir / ".submitit").rglob("*_log.*"))
    assert "Requeued job" in logs and "Restoring states from the checkpoint path" in logs and "last.ckpt" in logs


def test_a_diverging_run_is_recorded_and_the_sweep_goes_on(tiny_cache, tmp_path):
    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    nan_method = tmp_path / "nan.yaml"
    nan_method.write_text(yaml.safe_dump({"class_path": "tests.bench.nonfinite.NaNAfter", "init_args": {"steps": 2}}))
    spec["methods"] = {"NaN": str(nan_method), "EW": str(REPO / "configs" / "method" / "ew.yaml")}
    spec["stl"] = False
    spec_path.write_text(yaml.safe_dump(spec))
    runs_dir = tmp_path / "runs"
    outcome = run_sweep(spec_path, runs_dir)
    assert outcome["diverged"] == ["NaN-Adam-lr0.003-s0"] and outcome["done"] == ["EW-Adam-lr0.003-s0"]
    record = json.loads((runs_dir / "NaN-Adam-lr0.003-s0" / "version_0" / "results.json").read_text())
    assert record["status"] == "diverged"
    assert record["divergence"] == {"step": 2, "task": None, "method": "NaNAfter", "what": "the weighted loss"}
    assert sorted(run_sweep(spec_path, runs_dir)["skipped"]) == ["EW-Adam-lr0.003-s0", "NaN-Adam-lr0.003-s0"]  # a result: not rerun
    from mtlbench.leaderboards.cli import render_leaderboard

    table = render_leaderboard(runs_dir, tmp_path / "board")
    assert "diverged at step 2: the weighted loss not finite (NaNAfter, Adam, seed 0)" in table


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("base: x\nmethods: [a\n", "is not valid YAML at line 3"),
        ("- a\n- b\n", "expected a mapping of base, methods, optimizers, seeds"),
        ("base: x\nmethods: [a]\noptimizers: {}\nseeds: [0]\n", "'methods' must be a non-empty mapping"),
        ("base: x\nmethods: {a: b}\noptimizers: {A: {config: c, lr: [1]}}\nseeds: [zero]\n", "'seeds' must be integers"),
    ],
)
def test_a_malformed_spec_is_one_line(tmp_path, capsys, text, expected):
    from mtlbench.bench.cli.entry import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    assert main(["sweep", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_an_unwritable_runs_folder_is_one_line(tmp_path, capsys):
    from mtlbench.bench.cli.entry import main

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    assert main(["sweep", str(REPO / "configs" / "sweeps" / "quickstart.yaml"), "--runs", str(a_file / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Not a directory" in err[0], err


@pytest.mark.parametrize(
    "content",
    ['["complete"]', '{"schema": "mtlbench.run/1", "status": "complete", "method": "EW"}', "{not json", '{"status": "complete"}'],
    ids=["list", "malformed", "not-json", "no-schema"],
)
def test_a_record_that_does_not_fit_the_schema_is_no_result_of_a_resumed_sweep(tmp_path, content):
    """A colleague's sweep folder may hold anything: such a run is run again, not trusted or crashed on."""
    from mtlbench.bench.run.launch import interrupted_run
    from mtlbench.bench.sweeps.sweep import PlannedRun

    run = PlannedRun("EW-Adam-s0", (), "Adam")
    run.record(tmp_path).parent.mkdir(parents=True)
    run.record(tmp_path).write_text(content)
    assert not run.is_complete(tmp_path)
    assert interrupted_run(tmp_path / "EW-Adam-s0") is None


def test_parallel_runs_share_the_cores_instead_of_each_taking_all(tmp_path, monkeypatch):
    """With --jobs N, each run process is started with OMP_NUM_THREADS = cores / N (at least 1),
    unless the user set it."""
    import subprocess

    from mtlbench.bench.sweeps import sweep

    seen = []

    def fake_run(command, stdout, stderr, env):
        seen.append(env.get("OMP_NUM_THREADS"))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(sweep.subprocess, "run", fake_run)
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run = sweep.PlannedRun("EW-Adam-lr0.001-s0", ("--config", "x.yaml"), "Adam")
    assert sweep._run_locally(run, tmp_path, jobs=2) == ("EW-Adam-lr0.001-s0", 0)
    assert sweep._run_locally(run, tmp_path, jobs=16)[1] == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    sweep._run_locally(run, tmp_path, jobs=2)
    assert seen == ["4", "1", "3"]


def test_a_failed_run_keeps_its_traceback_in_its_log_and_one_console_line(tiny_cache, tmp_path, capsys):
    from mtlbench.bench.sweeps.sweep import main as sweep_main

    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec["methods"], spec["stl"] = {"EW": spec["methods"]["EW"]}, False
    spec["overrides"].append('--trainer.callbacks+={"class_path": "tests.bench.killer.FailAt", "init_args": {"step": 1}}')
    spec_path.write_text(yaml.safe_dump(spec))
    assert sweep_main([str(spec_path), "--runs", str(tmp_path / "runs")]) == 1
    log = (tmp_path / "runs" / "EW-Adam-lr0.003-s0.log").read_text()
    assert "Traceback (most recent call last)" in log and "tests/bench/killer.py" in log, log[-2000:]
    assert "RuntimeError: injected failure at step 1" in log
    printed = capsys.readouterr()
    failures = [line for line in printed.out.splitlines() if line.startswith("failed:")]
    assert failures == [f"failed: EW-Adam-lr0.003-s0 (log: {tmp_path / 'runs' / 'EW-Adam-lr0.003-s0.log'})"]
    assert "Traceback" not in printed.out + printed.err
