"""The probe and the run record under DDP: two CPU processes with gloo."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]


def test_probe_and_record_under_ddp(tiny_cache, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.ddp_probe_run", tiny_cache, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads((tmp_path / "probe.json").read_text())
    assert probe["world_size"] == 2
    assert len(probe["probes"]) == 3  # 48 images / batch 8 / 2 processes: one probe per step, logged once
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["status"] == "fitted" and record["trainer"]["world_size"] == 2
    assert record["gradient_statistics"]["probes"] == 3
    assert sorted((tmp_path / "lightning_logs").rglob("gradient_stats.json")) != []


def test_cli_trains_a_gradient_method_under_ddp(tiny_cache, tmp_path):
    """The README's DDP command, on 2 CPU processes: one complete run record, written once."""
    args = tiny_cli_args(tiny_cache, tmp_path, str(REPO / "configs" / "quickstart.yaml"))
    command = ["fit", *args, "--trainer.max_epochs=2", "--trainer.devices=2", "--trainer.strategy=ddp"]
    command += ["--model.method", str(REPO / "configs" / "method" / "pcgrad.yaml")]
    done = subprocess.run([sys.executable, "-m", "bench.cli", *command], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = list(tmp_path.rglob("results.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "complete" and record["method"]["name"] == "PCGrad"
    assert record["trainer"]["world_size"] == 2 and len(record["metrics"]["val"]) == 2
    assert set(record["metrics"]["test"]) == {"segmentation", "depth", "normal"}
    assert done.stdout.count("run record:") == 1
    assert "BatchNorm normalises each of the 2 processes' shards on its own" in done.stderr  # the quickstart net uses BatchNorm
