"""A run or a sweep SIGKILLed from outside at random points (in a training step, in validation,
while a checkpoint is written), run again, ends with the records of the uninterrupted one (every
validation and test metric equal on CPU), in one run folder; with loader workers and
augmentation, resuming in the middle of an epoch."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.bench.killer import run_until_killed
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
EPOCHS, STEPS_PER_EPOCH = 3, 6  # 48 training images, batch 8
KILLED_EPOCHS = 2  # of the fits killed from outside
COMPARED = ("val", "test", "test_last_epochs", "test_last_epochs_mean")
SEED = random.randrange(2**16)  # the kill points of this session, drawn from it (given in failures)


def _pause(marker: Path, **where: int) -> str:
    pause = {"class_path": "tests.bench.killer.PauseAt", "init_args": {"marker": str(marker), **where}}
    return f"--trainer.callbacks+={json.dumps(pause)}"


def _pausing_writer(marker: Path, save: int, from_step: int = 0) -> str:
    writer = {
        "class_path": "tests.bench.killer.PausingCheckpointIO",
        "init_args": {"marker": str(marker), "save": save, "from_step": from_step},
    }
    return f"--trainer.plugins={json.dumps(writer)}"


def _metrics(record: dict) -> dict:
    return {key: record["metrics"][key] for key in COMPARED}


def _fit_arguments(cache: str, folder: Path) -> list[str]:
    """PCGrad (randomised, through the Jacobian producer) with 2 persistent loader workers,
    augmentation, the gradient probe every 3 steps and last.ckpt every 2 steps."""
    args = [*tiny_cli_args(cache, folder, QUICKSTART), f"--trainer.max_epochs={KILLED_EPOCHS}", "--checkpoint_every_n_steps=2"]
    args += ["--model.method", str(REPO / "configs" / "method" / "pcgrad.yaml"), "--data.init_args.num_workers=2"]
    args += ["--data.init_args.augment=true", "--data.init_args.num_val=9"]
    probe = {"class_path": "mtlbench.bench.run.callbacks.GradientProbe", "init_args": {"every_n_steps": 3}}
    return [*args, f"--trainer.callbacks=[{json.dumps(probe)}]"]


def test_a_fit_killed_in_a_step_in_validation_and_while_writing_a_checkpoint_ends_with_the_same_record(tiny_cache, tmp_path):
    """The same command, run again after each kill, continues the interrupted run: first killed in
    epoch 0 after its mid-epoch checkpoint, then in a validation batch of epoch 0, then halfway
    through writing one of the checkpoints of the end of epoch 0 or of epoch 1; the fourth run
    completes it."""
    from mtlbench.bench.run.launch import main

    draw = random.Random(SEED)
    step, val_batch, save = draw.randrange(3, STEPS_PER_EPOCH), draw.randrange(2), draw.randrange(1, 6)
    where = f"(seed {SEED}: step {step}, validation batch {val_batch} of epoch 0, save {save} from step {STEPS_PER_EPOCH})"
    assert main(["fit", *_fit_arguments(tiny_cache, tmp_path / "straight")]) == 0
    killed = [sys.executable, "-m", "mtlbench.bench.run.launch", "fit", *_fit_arguments(tiny_cache, tmp_path / "killed")]
    kills = [
        _pause(tmp_path / "step.kill", step=step),
        _pause(tmp_path / "validation.kill", val_epoch=0, val_batch=val_batch),
        _pausing_writer(tmp_path / "checkpoint.kill", save, from_step=STEPS_PER_EPOCH),
    ]
    command = [*killed, *kills]
    for marker in ("step.kill", "validation.kill", "checkpoint.kill"):
        run_until_killed(command, tmp_path / marker, tmp_path / "killed.log", REPO)
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "continuing the interrupted run" in again.stderr, again.stderr[-2000:]
    records = sorted((tmp_path / "killed").rglob("results.json"))
    assert len(records) == 1, f"{where}: {records}"
    resumed = json.loads(records[0].read_text())
    expected = json.loads(next((tmp_path / "straight").rglob("results.json")).read_text())
    # the record lists the resumes behind the checkpoint the last run continued from: a run killed
    # before it wrote a checkpoint of its own leaves no trace
    assert resumed["status"] == "complete" and 1 <= len(resumed["resumed"]) <= 3, where
    assert _metrics(resumed) == _metrics(expected), where
    assert resumed["gradient_statistics"] == expected["gradient_statistics"], where
    assert sorted((tmp_path / "killed").rglob("*.tmp")) == [], "a resumed run clears the writes its kill cut short"


@pytest.mark.slow  # 34 s; the default run kills a fit in a step, a validation and a checkpoint write (above)
def test_a_sweep_killed_at_a_random_point_resumes_to_the_same_records(tiny_cache, tmp_path):
    """The sweep's process is killed from outside, after the first run's first checkpoints, in a
    training step, in a validation or while a checkpoint is written (drawn), and the same sweep,
    run again, ends with the uninterrupted sweep's records."""
    from mtlbench.bench.sweeps.sweep import run_sweep
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

    draw = random.Random(SEED + 1)
    marker = tmp_path / "b" / "sweep.kill"
    kind, kill = draw.choice(
        [
            ("a training step", _pause(marker, step=draw.randrange(STEPS_PER_EPOCH + 1, EPOCHS * STEPS_PER_EPOCH))),
            ("a validation", _pause(marker, val_epoch=draw.randrange(1, EPOCHS))),
            ("a checkpoint write", _pausing_writer(marker, draw.randrange(4, 7))),  # the first 3 end epoch 0
        ]
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert run_sweep(spec(tmp_path / "a", []), tmp_path / "a" / "runs")["failed"] == []
    command = [
        sys.executable,
        "-m",
        "mtlbench.bench.cli.entry",
        "sweep",
        str(spec(tmp_path / "b", [kill])),
        "--runs",
        str(tmp_path / "b" / "runs"),
    ]
    run_until_killed(command, marker, tmp_path / "b" / "killed.log", REPO)
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    logs = "".join(path.read_text() for path in (tmp_path / "b" / "runs").glob("*.log"))
    assert "mtlbench sweep: resuming from" in logs, f"killed in {kind} (seed {SEED})"
    for run in ("EW-Adam-lr0.003-s0", "UW-Adam-lr0.003-s0"):
        records = sorted((tmp_path / "b" / "runs" / run).rglob("results.json"))
        assert len(records) == 1
        expected = json.loads(next((tmp_path / "a" / "runs" / run).rglob("results.json")).read_text())
        assert _metrics(json.loads(records[0].read_text())) == _metrics(expected), f"{run}, killed in {kind} (seed {SEED})"


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
    from mtlbench.bench.run.launch import main

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
    from mtlbench.bench.run.launch import main

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


@pytest.mark.slow
def test_a_fit_killed_before_its_first_checkpoint_starts_afresh_in_its_folder(tiny_cache, tmp_path):
    """Killed in epoch 0 with no checkpoint yet: the same command, run again, starts the run
    over in its folder and ends with the uninterrupted record."""
    from mtlbench.bench.run.launch import main

    step = random.Random(SEED + 2).randrange(1, STEPS_PER_EPOCH)
    arguments = [arg for arg in _fit_arguments(tiny_cache, tmp_path / "straight") if not arg.startswith("--checkpoint_every")]
    assert main(["fit", *arguments]) == 0
    killed = [arg.replace(str(tmp_path / "straight"), str(tmp_path / "killed")) for arg in arguments]
    command = [sys.executable, "-m", "mtlbench.bench.run.launch", "fit", *killed, _pause(tmp_path / "first.kill", step=step)]
    run_until_killed(command, tmp_path / "first.kill", tmp_path / "killed.log", REPO)
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "continuing the interrupted run" in again.stderr, again.stderr[-2000:]
    records = sorted((tmp_path / "killed").rglob("results.json"))
    assert len(records) == 1
    expected = json.loads(next((tmp_path / "straight").rglob("results.json")).read_text())
    assert _metrics(json.loads(records[0].read_text())) == _metrics(expected), f"killed at step {step} (seed {SEED})"
