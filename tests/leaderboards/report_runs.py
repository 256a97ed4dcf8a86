"""Deterministic run records for the report's tests: 5 methods x {Adam, SGD} x 3 seeds and
single-task baselines with Adam only (Elich et al.'s protocol), on a chosen dataset with the
metrics of its tasks, near the published values so that differences read like real ones."""

from __future__ import annotations

import json
from pathlib import Path

METRICS = {
    "segmentation": {"miou": ("higher", 0.70), "pix_acc": ("higher", 0.92)},
    "depth": {"abs_err": ("lower", 0.0135), "rel_err": ("lower", 30.0)},
    "normal": {"mean_angle": ("lower", 25.0), "median_angle": ("lower", 19.0), "within_11_25": ("higher", 0.30)}
    | {"within_22_5": ("higher", 0.57), "within_30": ("higher", 0.69)},
}
# per (method, optimizer): the factor on every "lower is better" metric (its inverse on the others)
EFFECTS = {
    ("EW", "Adam"): 1.10,
    ("UW", "Adam"): 1.04,
    ("CAGrad", "Adam"): 1.02,
    ("Nash-MTL", "Adam"): 0.99,
    ("FAMO", "Adam"): 1.01,
    ("EW", "SGD"): 1.20,
    ("UW", "SGD"): 1.25,
    ("CAGrad", "SGD"): 1.15,
    ("Nash-MTL", "SGD"): 1.08,
    ("FAMO", "SGD"): 1.12,
}
LR = {"Adam": 0.001, "SGD": 0.05}


def _metrics(tasks: list[str], factor: float, seed: int) -> dict[str, dict[str, float]]:
    jitter = 1.0 + 0.003 * (seed - 1)
    return {
        task: {name: value * (factor if way == "lower" else 1 / factor) * jitter for name, (way, value) in METRICS[task].items()}
        for task in tasks
    }


def _record(method: str, optimizer: str, seed: int, tasks: list[str], dataset: str, factor: float) -> dict:
    metrics = _metrics(tasks, factor, seed)
    gradients = {}
    if len(tasks) > 1 and method == "EW":
        gradients = {
            "inter_task/cos": {"mean": 0.05 + 0.01 * seed},
            "inter_task/mag_sim": {"mean": 0.70},
            "inter_sample/cos": {"mean": 0.20},
            "inter_sample/mag_sim": {"mean": 0.95},
        }
    return {
        "schema": "mtlbench.run/1",
        "status": "complete",
        "config": {"model": {"net": {"class_path": "mtlbench.models.SegNet"}}},
        "seed": seed,
        "method": {"name": method},
        "optimizer": {"name": optimizer, "lr": LR[optimizer]},
        "dataset": {"name": dataset, "tasks": [{"name": task} for task in tasks]},
        "directions": {task: {name: way for name, (way, _) in METRICS[task].items()} for task in tasks},
        "metrics": {"val": [{"epoch": 0, "tasks": metrics, "select": 1.0}], "test": metrics},
        "cost": {"seconds_per_step": {"median": 0.1}},
        "gradient_statistics": gradients,
    }


def write_report_runs(root: Path, dataset: str, tasks: list[str]) -> Path:
    runs = {}
    for (method, optimizer), factor in EFFECTS.items():
        for seed in range(3):
            runs[f"{method}-{optimizer}-s{seed}"] = _record(method, optimizer, seed, tasks, dataset, factor)
    for task in tasks:
        for seed in range(3):
            runs[f"stl-{task}-Adam-s{seed}"] = _record("EW", "Adam", seed, [task], dataset, 1.0)
    for name, payload in runs.items():
        folder = root / name / "version_0"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(payload, indent=1))
    return root
