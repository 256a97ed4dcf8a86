"""The probe and the run record under DDP: two CPU processes with gloo."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_gradient_methods_are_refused_under_ddp(tiny_cache, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.ddp_probe_run", tiny_cache, str(tmp_path), "upgrad"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    message = (tmp_path / "refused-0.txt").read_text()
    assert "UPGrad needs per-task gradients, which are not yet synchronised across 2 processes" in message
