"""Gradient methods are exact under DDP: 2 gloo processes on two half-batches take the same
steps as 1 process on the whole batch (``ddp_equivalence.py`` trains both)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.bench.ddp_equivalence import CONFIGS, EPOCHS, STEPS_PER_EPOCH

REPO = Path(__file__).resolve().parents[2]


def _train(out: Path, world: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.ddp_equivalence", str(out), str(world)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp-exactness")
    _train(out, 1)
    _train(out, 2)
    return out


def _load(runs: Path, name: str, world: int, rank: int = 0) -> dict:
    return torch.load(runs / f"{name}-world{world}-rank{rank}.pt", weights_only=True)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_processes_take_the_steps_of_one(runs, name):
    one, two, other_rank = _load(runs, name, 1), _load(runs, name, 2), _load(runs, name, 2, rank=1)
    moved = (one["params"] - one["initial"]).abs().max().item()
    assert moved > 1e-2, "the run should train"
    assert torch.equal(two["params"], other_rank["params"]), "ranks must hold identical parameters"
    # float32 sums in another order: differences stay some 1000 times below what a step moves
    difference = (two["params"] - one["params"]).abs().max().item()
    assert difference < 1e-4, f"{name}: 2-process parameters differ by {difference:.2e} (a step moves them by {moved:.2e})"


@pytest.mark.parametrize("name", ["EW", "GradNorm", "MGDA-features", "PCGrad-parameters", "Nash-MTL-features"])
def test_probe_statistics_are_those_of_the_whole_batch(runs, name):
    one, two = _load(runs, name, 1)["probes"], _load(runs, name, 2)["probes"]
    assert len(one) == len(two) == math.ceil(EPOCHS * STEPS_PER_EPOCH / 2)
    for probe_one, probe_two in zip(one, two, strict=True):
        assert probe_one.keys() == probe_two.keys()
        for key, value in probe_one.items():
            if isinstance(value, float):
                # sign-conflict fractions may flip a handful of near-zero coordinates out of ~10^5
                assert probe_two[key] == pytest.approx(value, rel=1e-4, abs=1e-4), key
