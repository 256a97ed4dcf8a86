"""Two fresh processes train method configs and write bit-identical records on CPU: the methods
that draw random numbers, keep state or call a solver in the default run, every config in the
slow one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.every_method_run import METHODS

REPO = Path(__file__).resolve().parents[2]
COMPARED = ("val", "test", "test_last_epochs", "test_last_epochs_mean")


def _records(folder: Path) -> dict[str, dict]:
    return {path.relative_to(folder).parts[0]: json.loads(path.read_text()) for path in folder.rglob("results.json")}


# one of each source of nondeterminism: random draws on the gradients (GradDrop) and on the loss
# weights (RLW), state across steps (FAMO), a solver with state (Nash-MTL) and a quadratic program
# (UPGrad), and the plain sum; the slow run covers every config, PCGrad, RGW, DWA and CAGrad included
SENSITIVE = ("ew", "graddrop", "rlw", "famo", "nash_mtl", "upgrad")


def _same_records_in_two_processes(cache: str, out: Path, methods: list[str]) -> None:
    command = [sys.executable, "-m", "tests.bench.every_method_run", cache]
    processes = [subprocess.Popen([*command, str(out / name), *methods], cwd=REPO, stderr=subprocess.PIPE, text=True) for name in "ab"]
    for process in processes:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    first, second = _records(out / "a"), _records(out / "b")
    assert sorted(first) == sorted(second) == sorted(methods)
    for method, record in first.items():
        assert record["status"] == "complete", method
        for key in COMPARED:
            assert record["metrics"][key] == second[method]["metrics"][key], f"{method}: {key}"
        assert record["gradient_statistics"] == second[method]["gradient_statistics"], method


def test_sensitive_method_configs_give_the_same_record_in_two_fresh_processes(tiny_cache, tmp_path):
    assert set(SENSITIVE) <= {method.stem for method in METHODS}
    _same_records_in_two_processes(tiny_cache, tmp_path, list(SENSITIVE))


@pytest.mark.slow
def test_every_method_config_gives_the_same_record_in_two_fresh_processes(tiny_cache, tmp_path):
    _same_records_in_two_processes(tiny_cache, tmp_path, [method.stem for method in METHODS])
