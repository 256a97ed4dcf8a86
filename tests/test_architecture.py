"""The layering holds (import-linter's contracts in pyproject.toml), and the check notices when an
import breaks it: a copy of the packages with one forbidden import fails it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "tasks", "models", "datamodules", "leaderboards")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` over the packages under ``root/mtlbench`` (found there first) with the project's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env, capture_output=True, text=True)


def test_the_contracts_hold():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 6 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("leaderboards/delta_m.py", "import torch", "leaderboards reads records and renders tables"),
        ("models/heads.py", "import mtlbench.datamodules", "models knows torch and timm"),
        ("bench/run/losses.py", "import mtlbench.bench.sweeps.sweep", "bench in rooms"),
        ("bench/run/methods/state.py", "import mtlbench.bench.run.methods.base", "no import circles among the modules of a package"),
        ("bench/sweeps/sweep.py", "import mtlbench.bench.cli.entry", "bench in rooms"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract):
    for package in PACKAGES:
        shutil.copytree(
            REPO / package,
            tmp_path / "mtlbench" / package,  # found before the installed ones: mtlbench is a namespace
            ignore=lambda folder, names: [n for n in names if not (n.endswith(".py") or (Path(folder) / n).is_dir())] + ["__pycache__"],
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint(tmp_path).returncode == 0  # the copy as it is keeps every contract
    target = tmp_path / "mtlbench" / module
    target.write_text(target.read_text() + f"\n{line}  # the forbidden import\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken and "BROKEN" in result.stdout
