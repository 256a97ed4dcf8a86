"""End-to-end runs through the CLI on the tiny synthetic release, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlbench.bench.run.callbacks import SCHEMA
from mtlbench.bench.run.launch import main
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def tiny_args(cache: str, save_dir: Path) -> list[str]:
    return [*tiny_cli_args(cache, save_dir, QUICKSTART), "--trainer.max_epochs=2"]


def test_fit_then_test_writes_a_complete_run_record(tiny_cache, tmp_path):
    assert main(["fit", *tiny_args(tiny_cache, tmp_path)]) == 0
    records = list(tmp_path.rglob("results.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["schema"] == SCHEMA and record["status"] == "complete"
    assert record["seed"] == 0 and record["method"]["name"] == "EW"
    assert record["optimizer"]["name"] == "Adam" and record["optimizer"]["lr"] == pytest.approx(1e-3)
    assert [t["name"] for t in record["dataset"]["tasks"]] == ["segmentation", "depth", "normal"]
    assert len(record["metrics"]["val"]) == 2
    test = record["metrics"]["test"]
    assert set(test["segmentation"]) == {"miou", "pix_acc"}
    assert set(test["depth"]) == {"abs_err", "rel_err"}
    assert set(test["normal"]) == {"mean_angle", "median_angle", "within_11_25", "within_22_5", "within_30"}
    assert record["directions"]["depth"]["abs_err"] == "lower" and record["directions"]["segmentation"]["miou"] == "higher"
    assert record["cost"]["seconds_per_step"]["median"] > 0 and record["cost"]["peak_memory_mb"] > 0
    assert record["config"]["model"]["net"]["init_args"]["backbone"] == "test_resnet"
    assert record["environment"]["versions"]["torch"]
    assert "commit" in record["environment"]["git"]
    assert "zero_update_steps" not in record  # every step moved the shared parameters


def test_steps_that_update_nothing_are_counted_in_the_record(tiny_cache, tmp_path):
    """A step whose shared-parameter update is exactly zero (here every task weight is 0, as every
    task gradient being zero would give) is not silent: the record counts such steps."""
    args = [*tiny_args(tiny_cache, tmp_path), "--trainer.max_epochs=1", "--model.method=mtlbench.bench.run.methods.FixedWeights"]
    assert main(["fit", *args, "--model.method.init_args.weights=[0, 0, 0]"]) == 0
    record = json.loads(next(tmp_path.rglob("results.json")).read_text())
    steps = record["metrics"]["val"][-1]["step"]
    assert steps > 0 and record["zero_update_steps"] == steps


def test_single_task_run_uses_the_same_pipeline(tiny_cache, tmp_path):
    args = [*tiny_args(tiny_cache, tmp_path), "--data.init_args.tasks=[depth]", "--trainer.max_epochs=1"]
    assert main(["fit", *args]) == 0
    record = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert list(record["metrics"]["test"]) == ["depth"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("--model.net.init_args.backbone=resnet19", r"unknown timm backbone 'resnet19'; close matches: .*resnet18"),
        ("--model.net.init_args.pretrained=/no/such/weights.pth", r"pretrained weights file '/no/such/weights.pth' not found"),
        ("--data.init_args.tasks=[depth, albedo]", r"unknown task\(s\) \[.albedo.\]"),
        ("--model.method=configs/method/nosuch.yaml", r"--model.method: 'configs/method/nosuch.yaml' is neither an existing config file"),
        ("--model.optimizer=torch.optim.Adamm", r"--model.optimizer: 'torch.optim.Adamm' is neither an existing config file"),
        ("--data=mtlbench.datamodules.NoSuchDataModule", r"--data: .*NoSuchDataModule"),
        ("--model.method.init_args.space=nowhere", r"--model.method: Option 'space' is not accepted"),
        ("--trainer.max_epochs=-3", r"`max_epochs` must be a non-negative integer or -1"),
        ("--trainer.max_epochs=three", r"--trainer.max_epochs: 'three' is not a valid int or null"),
        ("--data.init_args.batch_size=0", r"batch_size must be >= 1"),
        ("--config=no/such/config.yaml", r"--config: File does not exist: .*no/such/config.yaml"),
        ("--trainer.logger.init_args.save_dir={file}/runs", r"Not a directory: .*; check that the folder exists and is writable"),
        ("--ckpt_path={file}", r"checkpoint .* cannot be read \(File is not a zip file\)"),
        ("--ckpt_path=/no/such.ckpt", r"checkpoint /no/such.ckpt not found"),
        ("--model.optimizer.init_args.lr=-1", r"optimizer: Invalid learning rate: -1.0; fix --model.optimizer.init_args"),
    ],
)
def test_user_errors_end_in_one_line(tiny_cache, tmp_path, capfd, override, expected):
    """The whole console (both streams, at the file-descriptor level, so library loggers count)
    is the one line, and no warning was raised on the way."""
    import re
    import warnings

    a_file = tmp_path / "a_file"
    a_file.write_bytes(b"not a checkpoint, and not a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning a console shows, once per call
        for hidden in (DeprecationWarning, PendingDeprecationWarning):  # what Python hides outside __main__
            warnings.filterwarnings("ignore", category=hidden)
        assert main(["fit", *tiny_args(tiny_cache, tmp_path), override.format(file=a_file)]) == 2
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mtlbench: error:") and re.search(expected, lines[0]), lines
    assert [f"{warning.category.__name__}: {warning.message}" for warning in caught] == []


def test_a_corrupt_checkpoint_is_named(tiny_cache, tmp_path, capsys):
    args = [*tiny_args(tiny_cache, tmp_path), "--trainer.max_epochs=1", "--test_after_fit=false"]
    assert main(["fit", *args]) == 0
    last = next(tmp_path.rglob("last.ckpt"))
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a tensor
    broken = tmp_path / "flipped.ckpt"
    broken.write_bytes(bytes(data))
    assert main(["test", "--config", QUICKSTART, f"--ckpt_path={broken}"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"mtlbench: error: checkpoint {broken} is corrupt (member ")


def test_help_keeps_the_full_usage(capsys):
    with pytest.raises(SystemExit) as leaving:
        main(["fit", "--help"])
    assert leaving.value.code == 0 and "--model.method" in capsys.readouterr().out


HEAVY = ("torch", "pytorch_lightning", "torchvision", "timm", "wandb", "cvxpy", "scipy", "matplotlib")


def _imported_by(*commands: list[str]) -> list[set[str]]:
    """The heavy packages each ``mtlbench`` command imports, run in turn in one fresh process."""
    import subprocess
    import sys

    code = (
        "import contextlib, io, json, sys\n"
        "from mtlbench.bench.cli.entry import main\n"
        f"for command in {[list(command) for command in commands]!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(command)\n"
        f"    print(json.dumps(sorted({{name.split('.')[0] for name in sys.modules}} & set({HEAVY!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [set(json.loads(line)) for line in done.stdout.splitlines()]


def test_help_and_the_record_readers_start_without_the_trainer():
    """`mtlbench --help`, and `leaderboard`, `report` and `plot --help`, import no torch, model
    zoo, cvxpy or wandb (nor scipy and matplotlib, which only running them needs)."""
    light = _imported_by(["--help"], ["leaderboard", "--help"], ["report", "--help"], ["sweep", "--help"])
    assert light == [set(), set(), set(), set()]
    plot = _imported_by(["plot", "--help"])
    assert plot == [{"matplotlib"}]


@pytest.mark.slow
def test_fit_help_imports_the_trainer_without_timm_or_wandb():
    """`fit --help` imports Lightning (its parser) but not timm or the wandb timm pulls in, which
    only a model built needs. (Slow: a fresh process importing Lightning, 7 s.)"""
    fit = _imported_by(["fit", "--help"])[0]
    assert {"torch", "pytorch_lightning"} <= fit and not fit & {"timm", "wandb"}


def test_a_resumed_fit_continues_its_run_folder_and_validation_history(tiny_cache, tmp_path):
    args = [*tiny_cli_args(tiny_cache, tmp_path, QUICKSTART), "--test_after_fit=false"]
    assert main(["fit", *args, "--trainer.max_epochs=1"]) == 0
    last = next(tmp_path.rglob("last.ckpt"))
    assert main(["fit", *args, "--trainer.max_epochs=2", f"--ckpt_path={last}"]) == 0
    assert [path.parent.name for path in tmp_path.rglob("results.json")] == ["version_0"]  # resumed in its own folder
    resumed = json.loads((tmp_path / "quickstart" / "version_0" / "results.json").read_text())
    assert [entry["epoch"] for entry in resumed["metrics"]["val"]] == [0, 1]
    assert resumed["resumed"][0]["epoch"] == 1 and resumed["status"] == "fitted"


def test_a_diverging_fit_stops_at_its_step_with_one_line(tiny_cache, tmp_path, capsys):
    args = [*tiny_args(tiny_cache, tmp_path), "--model.optimizer", str(REPO / "configs" / "optim" / "sgd.yaml")]
    assert main(["fit", *args, "--model.optimizer.init_args.lr=1e30"]) == 3
    record = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert record["status"] == "diverged" and record["divergence"]["what"] in {"the loss", "the gradient"}
    assert record["divergence"]["step"] >= 1 and record["metrics"]["test"] is None
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"mtlbench: EW diverged at step {record['divergence']['step']}: ")
