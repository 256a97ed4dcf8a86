"""Sweeps: expansion with stable ids and baselines, skipping complete runs, rerunning the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bench.sweep import load_spec, plan, run_sweep

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


def test_interrupted_sweep_reruns_only_what_is_missing(tiny_cache, tmp_path):
    spec = tiny_spec(tmp_path, tiny_cache)
    runs_dir = tmp_path / "runs"
    first = run_sweep(spec, runs_dir, jobs=2)
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


def test_bad_spec_is_named(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"base": "x.yaml"}))
    with pytest.raises(ValueError, match="missing 'methods'"):
        load_spec(path)
