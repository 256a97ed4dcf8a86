"""The README's commands, and the single quickstart run checked for real (slow: about 2.5 minutes
on 2 CPU cores; the quickstart sweep's output is checked by tests/leaderboards/test_published.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_commands_match_ci_and_configs():
    assert ".venv/bin/mtlbench sweep configs/sweeps/quickstart.yaml" in README  # the main job
    assert (REPO / "configs" / "sweeps" / "quickstart.yaml").is_file()
    assert "mtlbench fit --config configs/quickstart.yaml" in README
    assert (REPO / "configs" / "quickstart.yaml").is_file()
    assert ".venv/bin/python -m pytest" in README
    assert ".venv/bin/python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_readme_cluster_commands_are_accepted_and_their_specs_train_on_gpus():
    """The sweeps of "Running on GPUs and clusters": known options, an existing spec whose base
    config names a GPU trainer, and the GPU-check block that ``gpu-check --readme`` fills."""
    import shlex

    import yaml

    from mtlbench.bench.sweeps.sweep import build_parser, load_spec

    commands = [line.strip() for line in README.splitlines() if line.strip().startswith("mtlbench sweep") and "--gpus-per-run" in line]
    assert len(commands) == 3
    for command in commands:
        args = build_parser().parse_args(shlex.split(command.split("#")[0])[2:])
        assert args.gpus_per_run in (1, 2)
        base = yaml.safe_load(Path(load_spec(REPO / args.spec)["base"]).read_text())
        assert base["trainer"]["accelerator"] == "gpu"
    assert "<!-- perf:gpu_check -->" in README and "<!-- /perf:gpu_check -->" in README


def run_cli(*args: str, env: dict, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "mtlbench.bench.run.launch", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)


@pytest.mark.slow
def test_quickstart_beats_an_untrained_model(tmp_path):
    env = {**os.environ, "MTLBENCH_CACHE": str(tmp_path / "cache")}
    config = str(REPO / "configs" / "quickstart.yaml")
    run_cli("fit", "--config", config, "--trainer.enable_progress_bar=false", env=env, cwd=tmp_path)
    run_cli("test", "--config", config, "--trainer.logger.init_args.name=untrained", env=env, cwd=tmp_path)
    trained = json.loads(next((tmp_path / "runs" / "quickstart").rglob("results.json")).read_text())
    untrained = json.loads(next((tmp_path / "runs" / "untrained").rglob("results.json")).read_text())
    assert trained["status"] == "complete"
    for task, metrics in trained["metrics"]["test"].items():
        for metric, value in metrics.items():
            before = untrained["metrics"]["test"][task][metric]
            better = value > before if trained["directions"][task][metric] == "higher" else value < before
            assert better, f"{task}/{metric}: trained {value:.4f} vs untrained {before:.4f}"
