"""The paper protocols: each spec plans the published protocol, and the CPU-size versions on
synthetic scenes run end to end into `mtlbench report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mtlbench.bench.sweeps.sweep import load_spec, plan, run_sweep
from mtlbench.leaderboards.records import load_runs
from mtlbench.leaderboards.report import render_report
from mtlbench.leaderboards.tables import build_boards

REPO = Path(__file__).resolve().parents[2]
SWEEPS = REPO / "configs" / "sweeps"
ELICH_LRS = [0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0005, 0.0001, 0.00005, 0.00001]


def _value(args: tuple[str, ...], key: str) -> str | None:
    return next((arg.split("=", 1)[1] for arg in args if arg.startswith(key + "=")), None)


@pytest.mark.parametrize(("name", "tasks", "runs"), [("paper_nash_mtl_nyuv2", 3, 45), ("paper_nash_mtl_cityscapes", 2, 42)])
def test_the_nash_mtl_protocol_plans_mtan_runs_with_single_task_segnets(tmp_path, name, tasks, runs):
    spec = load_spec(SWEEPS / f"{name}.yaml")
    planned = plan(spec, tmp_path)
    assert len(planned) == runs and sum(bool(run.baseline_of) for run in planned) == 3 * tasks
    base = yaml.safe_load(Path(spec["base"]).read_text())
    assert base["model"]["method_lr"] == 0.025 and base["trainer"]["limit_val_batches"] == 0 and base["last_epochs"]["save_top_k"] == 10
    assert base["trainer"]["max_epochs"] == 200 and base["model"]["lr_scheduler"]["init_args"] == {"step_size": 100, "gamma": 0.5}
    for run in planned:
        assert _value(run.args, "--model.optimizer.init_args.lr") == "0.0001"
        assert _value(run.args, "--model.selection_baseline") is None  # no validation split to select on
        net = _value(run.args, "--model.net")
        assert (net is not None and net.endswith("configs/model/segnet.yaml")) == bool(run.baseline_of)
    famo = next(run for run in planned if run.run_id.startswith("FAMO-"))
    gamma = "0.001" if tasks == 3 else "0.01"
    assert f"--model.method.init_args.weight_decay={gamma}" in famo.args
    assert spec["report"]["test_metrics"] == "last_epochs_mean"


@pytest.mark.parametrize(("name", "tasks"), [("paper_elich_nyuv2", 3), ("paper_elich_cityscapes", 2)])
def test_the_elich_protocol_sweeps_ten_lrs_per_optimizer_against_adam_baselines(tmp_path, name, tasks):
    spec = load_spec(SWEEPS / f"{name}.yaml")
    planned = plan(spec, tmp_path)
    baselines = [run for run in planned if run.baseline_of]
    assert len(baselines) == tasks * 6 * 3 and {run.optimizer for run in baselines} == {"Adam"}
    assert len(planned) - len(baselines) == 7 * 2 * 10 * 3
    for optimizer in ("Adam", "SGD"):
        assert spec["optimizers"][optimizer]["lr"] == ELICH_LRS
        mine = [run for run in planned if run.optimizer == optimizer and not run.baseline_of]
        assert {_value(run.args, "--model.selection_baseline") for run in mine} == {str(tmp_path / "baselines" / "Adam.json")}
    sgd = yaml.safe_load(Path(spec["optimizers"]["SGD"]["config"]).read_text())["init_args"]
    assert sgd["momentum"] == 0.9 and sgd["weight_decay"] == 1e-5
    ew = next(run for run in planned if run.run_id.startswith("EW-"))
    assert any("GradientProbe" in arg and "every_n_steps: 5" in arg for arg in ew.args)


def test_bad_stl_entries_are_one_line(tmp_path):
    spec = yaml.safe_load((SWEEPS / "paper_elich_synthetic.yaml").read_text())
    spec["base"] = str(REPO / "configs" / "protocols" / "elich_synthetic.yaml")
    spec["methods"] = {"EW": str(REPO / "configs" / "method" / "ew.yaml")}
    optim = REPO / "configs" / "optim"
    spec["optimizers"] = {name: {**entry, "config": str(optim / Path(entry["config"]).name)} for name, entry in spec["optimizers"].items()}
    spec.pop("report")
    path = tmp_path / "spec.yaml"
    for stl, message in [
        ({"optimizer": "Lion"}, r"stl.optimizer must be one of the optimizers \(Adam, SGD\), got 'Lion'"),
        ({"lr": []}, r"stl.lr must be a non-empty list of learning rates, got \[\]"),
        ({"epochs": 3}, r"'stl' takes true or \{optimizer: NAME, lr: \[...\], args: \[...\]\}"),
    ]:
        path.write_text(yaml.safe_dump({**spec, "stl": stl}))
        with pytest.raises(ValueError, match=f"sweep spec {path}: {message}"):
            load_spec(path)
    path.write_text(yaml.safe_dump({**spec, "validation": "no"}))
    with pytest.raises(ValueError, match="'validation' is true"):
        load_spec(path)


def _shrunk(tmp_path: Path, name: str, cache: str, methods: list[str], extra: list[str]) -> Path:
    """The CPU-size protocol cut further for the test suite: two methods, one seed, 32x32, 8 images."""
    spec = yaml.safe_load((SWEEPS / f"{name}.yaml").read_text())
    spec["base"] = str(SWEEPS / spec["base"])
    spec["methods"] = {
        key: (str(SWEEPS / value) if isinstance(value, str) else {**value, "config": str(SWEEPS / value["config"])})
        for key, value in spec["methods"].items()
        if key in methods
    }
    spec["optimizers"] = {key: {**value, "config": str(SWEEPS / value["config"])} for key, value in spec["optimizers"].items()}
    spec["stl"]["args"] = [arg.replace("../", str(SWEEPS.parent) + "/") for arg in spec["stl"].get("args", [])]
    spec["report"]["published"] = [str(SWEEPS / item) for item in spec["report"]["published"]]
    spec["seeds"] = [0]
    spec["overrides"] = [
        f"--data.init_args.cache_dir={cache}",
        "--data.init_args.num_train=8",
        "--data.init_args.num_test=8",
        "--data.init_args.height=32",
        "--data.init_args.width=32",
        "--trainer.max_epochs=2",
        *extra,
    ]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_nash_mtl_protocol_runs_at_cpu_size_into_a_report(tmp_path):
    spec = _shrunk(tmp_path, "paper_nash_mtl_synthetic", str(tmp_path / "cache"), ["EW", "UW"], ["--last_epochs.save_top_k=2"])
    runs = tmp_path / "runs"
    outcome = run_sweep(spec, runs)
    assert len(outcome["done"]) == 5 and not outcome["failed"] and not (runs / "baselines").exists()
    records = {path.parent.parent.name: json.loads(path.read_text()) for path in runs.glob("*/version_0/results.json")}
    assert records["stl-depth-Adam-lr0.0001-s0"]["config"]["model"]["net"]["class_path"] == "mtlbench.models.SegNet"
    uw = records["UW-Adam-lr0.0001-s0"]
    assert uw["config"]["model"]["net"]["class_path"] == "mtlbench.models.MTANSegNet" and uw["metrics"]["val"] == []
    assert [entry["epoch"] for entry in uw["metrics"]["test_last_epochs"]] == [0, 1]
    loaded, _ = load_runs(runs, "last_epochs_mean")
    (board,) = build_boards(loaded, stl_model="SegNet")
    assert board.model == "MTANSegNet" and not board.missing_baselines and [row.method for row in board.rows] != []
    text = render_report(spec, runs)
    assert "not the paper's NYUv2DataModule" in text and "| EW | Adam | LS |" in text and "| UW | Adam | UW |" in text


@pytest.mark.slow  # 16 s; the Nash-MTL protocol's run above keeps the default check of the same path into a report
def test_the_elich_protocol_runs_at_cpu_size_into_a_report(tmp_path):
    spec = _shrunk(tmp_path, "paper_elich_synthetic", str(tmp_path / "cache"), ["EW", "CAGrad"], ["--data.init_args.num_val=8"])
    data = yaml.safe_load(spec.read_text())
    data["optimizers"]["Adam"]["lr"] = [0.01]
    data["optimizers"]["SGD"]["lr"] = [0.05]
    spec.write_text(yaml.safe_dump(data))
    runs = tmp_path / "runs"
    outcome = run_sweep(spec, runs)
    assert len(outcome["done"]) == 3 * 2 + 2 * 2 and not outcome["failed"]
    assert sorted(path.name for path in (runs / "baselines").iterdir()) == ["Adam.json"]
    sgd = json.loads((runs / "CAGrad-SGD-lr0.05-s0" / "version_0" / "results.json").read_text())
    adam = json.loads((runs / "baselines" / "Adam.json").read_text())
    assert sgd["selection"]["criterion"] == "val_delta_m"
    assert sgd["selection"]["baseline"] == {f"{task}/{name}": value for task, values in adam.items() for name, value in values.items()}
    text = render_report(spec, runs)
    assert "Optimizers only in the paper, left out of the comparison: signSGD." in text
    assert "| CAGrad | SGD | CAGrad |" in text
    assert "magnitude similarity inter-task" in text  # EW's gradients were probed
