"""Two fresh processes train every method config and write bit-identical records on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.every_method_run import METHODS

REPO = Path(__file__).resolve().parents[2]
COMPARED = ("val", "test", "test_last_epochs", "test_last_epochs_mean")


def _records(folder: Path) -> dict[str, dict]:
    return {path.relative_to(folder).parts[0]: json.loads(path.read_text()) for path in folder.rglob("results.json")}


def test_every_method_config_gives_the_same_record_in_two_fresh_processes(tiny_cache, tmp_path):
    command = [sys.executable, "-m", "tests.bench.every_method_run", tiny_cache]
    processes = [subprocess.Popen([*command, str(tmp_path / name)], cwd=REPO, stderr=subprocess.PIPE, text=True) for name in "ab"]
    for process in processes:
        _, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
    first, second = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert sorted(first) == sorted(second) == sorted(method.stem for method in METHODS)
    for method, record in first.items():
        assert record["status"] == "complete", method
        for key in COMPARED:
            assert record["metrics"][key] == second[method]["metrics"][key], f"{method}: {key}"
        assert record["gradient_statistics"] == second[method]["gradient_statistics"], method
