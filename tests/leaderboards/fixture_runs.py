"""Deterministic fixture run records: 3 methods x 2 optimizers x 3 seeds, single-task baselines,
one diverged and one unfinished run, written in the results.json schema. EW under Adam also ran
at a second learning rate whose test metrics look better but whose validation metrics are
worse: an honest table must choose by validation."""

from __future__ import annotations

import json
from pathlib import Path

DIRECTIONS = {"segmentation": {"miou": "higher", "pix_acc": "higher"}, "depth": {"abs_err": "lower", "rel_err": "lower"}}
# per (method, optimizer): multiplicative effect on (miou, pix_acc, abs_err, rel_err) relative to STL
EFFECTS = {
    ("EW", "Adam"): (1.02, 1.01, 1.03, 1.02),
    ("UW", "Adam"): (1.03, 1.01, 0.99, 1.00),
    ("MGDA", "Adam"): (0.96, 0.99, 0.95, 0.97),
    ("EW", "SGD"): (0.97, 0.99, 1.06, 1.05),
    ("UW", "SGD"): (1.00, 1.00, 1.01, 1.01),
    ("MGDA", "SGD"): (0.99, 1.00, 0.98, 0.99),
}
STL = {"miou": 0.50, "pix_acc": 0.80, "abs_err": 0.40, "rel_err": 0.15}
LR = {"Adam": 0.001, "SGD": 0.05}


def record(method, optimizer, seed, tasks, metrics, status="complete", cost=0.1, lr=None, val=None):
    val = metrics if val is None else val
    history = [{"epoch": 0, "tasks": val, "select": 1.0 + 0.01 * seed}] if status == "complete" else []
    return {
        "schema": "mtlbench.run/1",
        "status": status,
        "config": {"model": {"net": {"init_args": {"backbone": "test_resnet"}}}},
        "seed": seed,
        "method": {"name": method},
        "optimizer": {"name": optimizer, "lr": lr or LR[optimizer]},
        "dataset": {"name": "SyntheticScenesDataModule", "tasks": [{"name": t} for t in tasks]},
        "directions": {t: DIRECTIONS[t] for t in tasks},
        "metrics": {"val": history, "test": metrics if status == "complete" else None},
        "cost": {"seconds_per_step": {"median": cost}, "peak_memory_mb": 1000.0 + 10 * len(tasks)},
        "gradient_statistics": {
            "inter_task/cos": {"mean": 0.1 + 0.01 * seed},
            "inter_task/mag_sim": {"mean": 0.6},
            "inter_task/conflict_rate": 0.2,
        }
        if len(tasks) > 1
        else {},
    }


def noise(seed: int, index: int) -> float:
    return 1.0 + 0.004 * (((seed * 7 + index * 3) % 5) - 2)


def write_fixture_runs(root: Path) -> Path:
    runs = []
    for (method, optimizer), effect in EFFECTS.items():
        for seed in range(3):
            values = [STL[m] * e * noise(seed, i) for i, (m, e) in enumerate(zip(STL, effect, strict=True))]
            metrics = {"segmentation": {"miou": values[0], "pix_acc": values[1]}, "depth": {"abs_err": values[2], "rel_err": values[3]}}
            cost = {"EW": 0.1, "UW": 0.1, "MGDA": 0.19}[method]
            runs.append((f"{method}-{optimizer}-s{seed}", record(method, optimizer, seed, ["segmentation", "depth"], metrics, cost=cost)))
    for seed in range(3):  # lr 0.01: better on test, worse on validation
        test = {"segmentation": {"miou": 0.6, "pix_acc": 0.9}, "depth": {"abs_err": 0.3, "rel_err": 0.1}}
        val = {"segmentation": {"miou": 0.4, "pix_acc": 0.6}, "depth": {"abs_err": 0.45, "rel_err": 0.2}}
        runs.append((f"EW-Adam-lr0.01-s{seed}", record("EW", "Adam", seed, ["segmentation", "depth"], test, lr=0.01, val=val)))
    for optimizer in ("Adam", "SGD"):
        for seed in range(2):
            seg = {"segmentation": {"miou": STL["miou"] * noise(seed, 5), "pix_acc": STL["pix_acc"] * noise(seed, 6)}}
            depth = {"depth": {"abs_err": STL["abs_err"] * noise(seed, 7), "rel_err": STL["rel_err"] * noise(seed, 8)}}
            runs.append((f"stl-seg-{optimizer}-s{seed}", record("EW", optimizer, seed, ["segmentation"], seg)))
            runs.append((f"stl-depth-{optimizer}-s{seed}", record("EW", optimizer, seed, ["depth"], depth)))
    diverged = record(
        "PCGrad",
        "Adam",
        0,
        ["segmentation", "depth"],
        {"segmentation": {"miou": float("nan"), "pix_acc": 0.1}, "depth": {"abs_err": 9.0, "rel_err": 1.0}},
    )
    runs.append(("PCGrad-Adam-s0", diverged))
    runs.append(("CAGrad-Adam-s0", record("CAGrad", "Adam", 0, ["segmentation", "depth"], {}, status="running")))
    for name, payload in runs:
        folder = root / name / "version_0"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(payload, indent=1))
    return root
