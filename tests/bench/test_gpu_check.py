"""``mtlbench gpu-check --device cpu``: the GPU check at its tiny size, so that it is known to work
before a GPU is lent; its files are read back by ``mtlbench leaderboard --perf``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtlbench.bench.cli import gpu_check
from mtlbench.bench.cli.entry import main

# The whole check at its tiny size takes about 90 s, so it runs with -m slow (before a lent GPU's
# first call: python -m pytest -m slow tests/bench/test_gpu_check.py); the default run keeps the
# check out of time (7 s), which starts all four steps and writes their files.
SLOW = pytest.mark.slow


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> tuple[int, Path, str]:
    out = tmp_path_factory.mktemp("gpu-check")
    readme = out / "README.md"
    readme.write_text("# x\n<!-- perf:gpu_check -->\nnot yet measured\n<!-- /perf:gpu_check -->\nrest\n")
    code = main(["gpu-check", "--device", "cpu", "--out", str(out / "files"), "--readme", str(readme)])
    return code, out, readme.read_text()


@SLOW
def test_every_step_is_done_and_its_figures_are_in_the_files(checked):
    code, out, _ = checked
    files = out / "files"
    assert code == 0
    summary = json.loads((files / "gpu_check.json").read_text())
    assert summary["schema"] == "mtlbench.gpu_check/1" and summary["device"] == "cpu" and summary["size"] == "tiny"
    assert {name: step["status"] for name, step in summary["steps"].items()} == dict.fromkeys(
        ("perf", "fit", "determinism", "leaderboard"), "done"
    )
    perf = json.loads((files / "perf.json").read_text())
    assert perf["schema"] == "mtlbench.perf/1" and perf["precision"] == "bf16" and perf["rounds"] == 2
    assert list(perf["variants"]) == gpu_check.perf_variants("cpu")
    assert all(row["error"] is None and row["seconds_per_step"] > 0 for row in perf["variants"].values())
    for method in gpu_check.EXACT:  # looped (the CPU default) and batched, both timed against the floor
        assert perf["variants"][method]["task_gradients"] == "looped" and perf["variants"][method]["x_floor"] > 0
        assert perf["variants"][f"{method}+batched"]["task_gradients"] == "batched"
    assert perf["variants"]["ew+compile"]["peak_memory_mb"] is not None
    record = json.loads((files / "runs" / "fit-upgrad-ddp" / "version_0" / "results.json").read_text())
    assert record["status"] == "complete" and record["method"]["name"] == "UPGrad"
    assert record["trainer"]["precision"] == "bf16-mixed" and record["trainer"]["world_size"] == 1
    assert record["config"]["trainer"]["strategy"] == "ddp" and record["dataset"]["name"] == "NYUv2DataModule"
    assert 1 < record["budget"]["start_up"] < record["budget"]["total"]  # a run in its own process: its imports
    assert not list(files.rglob("*.ckpt"))  # checkpoints are not results: nothing large comes back from a GPU machine
    pairs = summary["steps"]["determinism"]["pairs"]
    assert set(pairs) == {"default", "true"}  # 'warn' only where 'true' refuses a kernel
    assert all(text.startswith("identical (all ") for text in pairs.values())  # a CPU repeats itself at fixed threads


@SLOW
def test_the_summary_goes_to_the_readme_block(checked):
    _, out, readme = checked
    summary = (out / "files" / "summary.md").read_text()
    assert readme == f"# x\n<!-- perf:gpu_check -->\n{summary}<!-- /perf:gpu_check -->\nrest\n"
    assert "| upgrad+batched | UPGrad |" in summary and "bf16 autocast" in summary
    assert "- fit (" in summary and "record complete" in summary and "- determinism (" in summary


@SLOW
def test_its_files_are_read_back_by_the_leaderboard(checked, tmp_path):
    _, out, _ = checked
    files = out / "files"
    board = tmp_path / "board"
    assert main(["leaderboard", str(files / "runs"), "--perf", str(files / "perf.json"), "--out", str(board)]) == 0
    table = (board / "leaderboard.md").read_text()
    perf = json.loads((files / "perf.json").read_text())
    assert "## NYUv2DataModule / test_resnet / Adam" in table
    upgrad = next(line for line in table.splitlines() if line.startswith("| UPGrad |") and "s/step" not in line)
    assert f"| {perf['variants']['upgrad']['x_ew']:.3g} |" in upgrad  # the cost column is the perf record's (3 digits)


def test_compare_pair_names_what_differs(tmp_path):
    """The determinism probe's comparison, with a negative control: one weight moved by 1e-6."""
    check = gpu_check.Check(tmp_path, "cpu", gpu_check.TINY, None, "mtlbench gpu-check")
    state = {"net.weight": torch.ones(3, 2), "method.state": {"weights": torch.zeros(3)}}
    for run_id, moved in (("a", 0.0), ("b", 0.0), ("c", 1e-6)):
        folder = tmp_path / "runs" / run_id / "version_0"
        (folder / "checkpoints").mkdir(parents=True)
        copy = {"net.weight": state["net.weight"] + moved, "method.state": {"weights": state["method.state"]["weights"].clone()}}
        torch.save({"state_dict": copy}, folder / "checkpoints" / "last.ckpt")
        test = {"segmentation": {"miou": 0.5 + moved}}
        (folder / "results.json").write_text(json.dumps({"metrics": {"val": [], "test": test}}))
    assert gpu_check.compare_pair(check, "a", "b") == "identical (all 2 tensors of the state, all 1 metrics)"
    moved = "1 of 2 state tensors differ (by up to 9.54e-07), metrics by up to 1.00e-06"  # 1 + 1e-6 in float32
    assert gpu_check.compare_pair(check, "a", "c") == moved


def test_bad_options_are_one_line_before_anything_runs(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    assert main(["gpu-check", "--device", "cpu", "--out", str(tmp_path / "out"), "--readme", str(readme)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"mtlbench: error: {readme} has no '<!-- perf:gpu_check -->' ... '<!-- /perf:gpu_check -->' block; "
        "add those two lines where the table goes"
    ]
    assert not (tmp_path / "out").exists()
    if not torch.cuda.is_available():
        assert main(["gpu-check", "--device", "cuda"]) == 2
        assert "gpu-check: --device cuda, but torch sees no GPU" in capsys.readouterr().err


def test_a_check_out_of_time_stops_each_step_and_keeps_what_it_measured(tmp_path, capsys):
    """--minutes bounds the whole check: perf stops timing, the runs are stopped, and every figure
    measured before is in the files and on the console."""
    import time

    started = time.monotonic()
    assert main(["gpu-check", "--device", "cpu", "--out", str(tmp_path), "--minutes", "0.05"]) == 1
    assert time.monotonic() - started < 60
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert steps["perf"]["status"] == "done" and steps["perf"]["rounds"] == 1
    perf = json.loads((tmp_path / "perf.json").read_text())
    measured = [label for label, row in perf["variants"].items() if row["seconds_per_step"]]
    assert measured and "not warmed up within the deadline" in (tmp_path / "perf.md").read_text()
    assert steps["fit"]["status"] == "failed" and "the check's time ran out" in steps["fit"]["error"]
    assert steps["determinism"]["status"] == "failed" and "time ran out" in steps["determinism"]["error"]
    printed = capsys.readouterr().out
    assert "gpu-check: fit: failed" in printed and f"| {measured[0]} |" in printed


@SLOW
def test_publish_puts_a_check_made_elsewhere_in_the_readme(checked, tmp_path, capsys):
    """The files of a check that came back from a GPU node: no measuring, the summary in the block;
    a folder that is not a check's, or a summary that would open another block, is refused."""
    _, out, _ = checked
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- perf:gpu_check -->\nnot yet\n<!-- /perf:gpu_check -->\n")
    assert main(["gpu-check", "--publish", str(out / "files"), "--readme", str(readme)]) == 0
    summary = (out / "files" / "summary.md").read_text()
    assert readme.read_text() == f"intro\n<!-- perf:gpu_check -->\n{summary}<!-- /perf:gpu_check -->\n"
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "gpu_check.json").write_text(json.dumps({"schema": "mtlbench.gpu_check/1"}))
    (hostile / "summary.md").write_text("x\n<!-- /perf:gpu_check -->\n<script>\n")
    assert main(["gpu-check", "--publish", str(hostile), "--readme", str(readme)]) == 2
    assert "does not hold a gpu-check's files" in capsys.readouterr().err
    assert readme.read_text().endswith(f"{summary}<!-- /perf:gpu_check -->\n")  # unchanged
