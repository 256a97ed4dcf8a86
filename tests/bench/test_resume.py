"""A run or a sweep killed with SIGKILL at a random step, rerun, ends with the records of the
uninterrupted one (every validation and test metric equal on CPU), in one run folder."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
EPOCHS, STEPS_PER_EPOCH = 3, 6  # 48 training images, batch 8
COMPARED = ("val", "test", "test_last_epochs", "test_last_epochs_mean")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def _killer(step: int, marker: Path) -> str:
    killer = {"class_path": "tests.bench.killer.KillAt", "init_args": {"step": step, "marker": str(marker)}}
    return f"--trainer.callbacks+={json.dumps(killer)}"


def _metrics(record: dict) -> dict:
    return {key: record["metrics"][key] for key in COMPARED}


@pytest.mark.parametrize(
    "window",
    [pytest.param((1, STEPS_PER_EPOCH), marks=pytest.mark.slow), (STEPS_PER_EPOCH + 1, EPOCHS * STEPS_PER_EPOCH)],
    ids=["before", "after"],
)
def test_a_fit_killed_at_a_random_step_and_run_again_ends_with_the_same_record(tiny_cache, tmp_path, window):
    """Killed before its first checkpoint (it starts afresh in its folder) or after (it resumes);
    either way the same command, run again, continues the interrupted run."""
    step = random.randrange(*window)
    common = ["fit", *tiny_cli_args(tiny_cache, tmp_path / "x", QUICKSTART), f"--trainer.max_epochs={EPOCHS}"]
    common += ["--model.method", str(REPO / "configs" / "method" / "pcgrad.yaml")]  # randomised and through the producer
    assert _cli(*common, f"--trainer.logger.init_args.save_dir={tmp_path / 'straight'}").returncode == 0
    killed = [*common, f"--trainer.logger.init_args.save_dir={tmp_path / 'killed'}", _killer(step, tmp_path / "marker")]
    first = _cli(*killed)
    assert first.returncode == -9, f"the run was not killed at step {step}: {first.stderr[-2000:]}"
    again = _cli(*killed)  # the very same command
    assert again.returncode == 0 and "continuing the interrupted run" in again.stderr, again.stderr[-2000:]
    records = sorted((tmp_path / "killed").rglob("results.json"))
    assert len(records) == 1, f"killed at step {step}: {records}"
    resumed = json.loads(records[0].read_text())
    expected = json.loads(next((tmp_path / "straight").rglob("results.json")).read_text())
    assert resumed["status"] == "complete"
    assert _metrics(resumed) == _metrics(expected), f"killed at step {step}"
    assert resumed["gradient_statistics"] == expected["gradient_statistics"]


def test_a_sweep_killed_mid_run_resumes_to_the_same_records(tiny_cache, tmp_path):
    from tests.bench.test_sweep import tiny_spec

    def spec(folder: Path, extra: list[str]) -> Path:
        path = tiny_spec(folder, tiny_cache)
        loaded = yaml.safe_load(path.read_text())
        replaced = ("--trainer.max_epochs", "--trainer.callbacks", "--trainer.enable_checkpointing")
        loaded["overrides"] = [arg for arg in loaded["overrides"] if not arg.startswith(replaced)] + [
            f"--trainer.max_epochs={EPOCHS}",
            *extra,
        ]
        loaded["stl"] = False
        path.write_text(yaml.safe_dump(loaded))
        return path

    def sweep(path: Path, runs: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "bench.entry", "sweep", str(path), "--runs", str(runs)]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert sweep(spec(tmp_path / "a", []), tmp_path / "a" / "runs").returncode == 0
    step = random.Random(7).randrange(STEPS_PER_EPOCH + 1, EPOCHS * STEPS_PER_EPOCH)  # the first run, after a checkpoint
    killing = spec(tmp_path / "b", [_killer(step, tmp_path / "b" / "marker")])
    assert sweep(killing, tmp_path / "b" / "runs").returncode == -9
    rerun = sweep(killing, tmp_path / "b" / "runs")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    logs = "".join(path.read_text() for path in (tmp_path / "b" / "runs").glob("*.log"))
    assert "mtlbench sweep: resuming from" in logs
    for run in ("EW-Adam-lr0.003-s0", "UW-Adam-lr0.003-s0"):
        records = sorted((tmp_path / "b" / "runs" / run).rglob("results.json"))
        assert len(records) == 1
        expected = json.loads(next((tmp_path / "a" / "runs" / run).rglob("results.json")).read_text())
        assert _metrics(json.loads(records[0].read_text())) == _metrics(expected), run


STATEFUL_CONFIGS = [
    "nash_mtl",
    "famo",
    "dwa",
    *(pytest.param(name, marks=pytest.mark.slow) for name in ("gradvac", "excess_mtl", "pcd", "db_mtl")),
]


@pytest.mark.parametrize("method", STATEFUL_CONFIGS)
def test_a_stateful_method_resumed_from_its_checkpoint_ends_with_the_same_record(tiny_cache, tmp_path, method):
    """The method's state goes through a real checkpoint file (mtlbench.method_state/1) and the
    resumed run continues exactly: 3 epochs straight, or 2 then resumed from last.ckpt to 3."""
    from bench.cli import main

    common = [*tiny_cli_args(tiny_cache, tmp_path / "x", QUICKSTART), "--data.init_args.num_train=16", "--test_after_fit=false"]
    common += ["--model.method", str(REPO / "configs" / "method" / f"{method}.yaml")]
    assert main(["fit", *common, "--trainer.max_epochs=3", f"--trainer.logger.init_args.save_dir={tmp_path / 'straight'}"]) == 0
    resumed = [*common, f"--trainer.logger.init_args.save_dir={tmp_path / 'resumed'}"]
    assert main(["fit", *resumed, "--trainer.max_epochs=2"]) == 0
    last = next((tmp_path / "resumed").rglob("last.ckpt"))
    assert main(["fit", *resumed, "--trainer.max_epochs=3", f"--ckpt_path={last}"]) == 0
    straight = json.loads(next((tmp_path / "straight").rglob("results.json")).read_text())
    again = json.loads(next((tmp_path / "resumed").rglob("results.json")).read_text())
    assert again["metrics"]["val"] == straight["metrics"]["val"]


def test_a_finished_run_continued_for_more_epochs_ends_as_one_run_of_that_length(tiny_cache, tmp_path):
    """2 epochs, then the same run continued to 3 from its last.ckpt: one complete record that
    trains, selects and tests as a 3-epoch run (the epochs tested and deleted by the first fit
    keep their recorded test metrics)."""
    from bench.cli import main

    common = [*tiny_cli_args(tiny_cache, tmp_path / "x", QUICKSTART), "--data.init_args.num_train=16"]
    assert main(["fit", *common, "--trainer.max_epochs=3", f"--trainer.logger.init_args.save_dir={tmp_path / 'straight'}"]) == 0
    continued = [*common, f"--trainer.logger.init_args.save_dir={tmp_path / 'continued'}"]
    assert main(["fit", *continued, "--trainer.max_epochs=2"]) == 0
    last = next((tmp_path / "continued").rglob("last.ckpt"))
    assert main(["fit", *continued, "--trainer.max_epochs=3", f"--ckpt_path={last}"]) == 0
    records = sorted((tmp_path / "continued").rglob("results.json"))
    assert len(records) == 1
    again = json.loads(records[0].read_text())
    straight = json.loads(next((tmp_path / "straight").rglob("results.json")).read_text())
    assert again["status"] == "complete" and len(again["resumed"]) == 1
    assert [entry["epoch"] for entry in again["metrics"]["test_last_epochs"]] == [0, 1, 2]
    assert _metrics(again) == _metrics(straight)
    assert again["selection"]["epoch"] == straight["selection"]["epoch"]
