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
def test_publish_puts_a_check_made_elsewhere_in_the_readme(checked, tmp_path):
    """The files of a check that came back from a GPU node: no measuring, and the block the
    check itself wrote, generated again from its records."""
    _, out, _ = checked
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- perf:gpu_check -->\nnot yet\n<!-- /perf:gpu_check -->\n")
    assert main(["gpu-check", "--publish", str(out / "files"), "--readme", str(readme)]) == 0
    summary = (out / "files" / "summary.md").read_text()
    assert readme.read_text() == f"intro\n<!-- perf:gpu_check -->\n{summary}<!-- /perf:gpu_check -->\n"


# ---------------------------------------------------------------- --publish: others' files as data
BLOCK = "intro\n<!-- perf:gpu_check -->\nnot yet\n<!-- /perf:gpu_check -->\nrest\n"
HOSTILE = "<script>alert(1)</script> [click](javascript:alert(1)) \u202eevil\x00nul"
END = " <!-- /perf:gpu_check -->"  # the block's end, which would cut it short


def perf_record(text: str = "") -> dict:
    """A perf record as ``mtlbench perf`` writes it (two variants, one failed), ``text`` added
    to each of its strings."""
    row = {
        "method": f"EW{text}",
        "seconds_per_step": 0.01,
        "x_ew": 1.0,
        "x_floor": 1.25,
        "images_per_second": 400.0,
        "peak_memory_mb": None,
    }
    return {
        "schema": "mtlbench.perf/1",
        "created": "2025-01-02T03:04:05+00:00",
        "command": f"mtlbench perf --name gpu_check --variants [ew,upgrad]{text}",
        "device": f"CPU x86_64, 2 threads{text}",
        "torch": "2.9.0",
        "model": {"backbone": f"test_resnet{text}", "shared_parameters": 123456, "tasks": ["segmentation", "depth"], "jacobian_mb": 0.9},
        "input": {"batch_size": 4, "height": 32, "width": 48},
        "precision": "bf16",
        "rounds": 2,
        "variants": {
            f"ew{text}": {**row, "error": None},
            "upgrad": {**row, "seconds_per_step": None, "images_per_second": None, "error": f"RuntimeError: out of memory{text}"},
        },
    }


def check_folder(folder: Path, text: str = "") -> Path:
    """The files ``gpu-check --out`` leaves: records (``text`` added to their strings) and a
    summary.md that says something else."""
    folder.mkdir()
    steps = {
        "perf": {"status": "done", "seconds": 12.3, "finding": f"EW 400 images/s{text}"},
        "fit": {"status": "failed", "seconds": 3.0, "error": f"RuntimeError: fit-upgrad-ddp exited with 1{text}"},
        "determinism": {"status": "done", "seconds": 7.9, "finding": f"identical{text}"},
    }
    (folder / "gpu_check.json").write_text(json.dumps({"schema": "mtlbench.gpu_check/1", "steps": steps}))
    (folder / "perf.json").write_text(json.dumps(perf_record(text)))
    (folder / "summary.md").write_text(f"COPIED {text}\n")
    return folder


def test_publish_generates_the_block_from_the_records_not_from_the_summary_text(tmp_path):
    folder = check_folder(tmp_path / "files")
    readme = tmp_path / "README.md"
    readme.write_text(BLOCK)
    assert main(["gpu-check", "--publish", str(folder), "--readme", str(readme)]) == 0
    block = readme.read_text().split("<!-- perf:gpu_check -->\n")[1].split("<!-- /perf:gpu_check -->")[0]
    assert "COPIED" not in block
    assert block == gpu_check.folder_summary(folder)
    assert (
        block.splitlines()[0] == "2025-01-02, CPU x86_64, 2 threads, torch 2.9.0: `mtlbench perf --name gpu_check --variants [ew,upgrad]`"
    )
    assert "| ew | EW | 0.010 | 1.00 | 1.25 | 400 | - |" in block
    assert "| upgrad | EW | failed: RuntimeError: out of memory | | | | |" in block
    assert block.endswith("- fit: failed after 3 s: RuntimeError: fit-upgrad-ddp exited with 1\n- determinism (8 s): identical\n")


def test_publish_shows_the_text_of_records_as_text(tmp_path):
    """HTML, a Markdown link, a direction override and NUL, in every string of the records and
    in summary.md: none reaches the README as written, and the block stays one block."""
    folder = check_folder(tmp_path / "files", text=HOSTILE + END)
    (folder / "summary.md").write_text(f"{HOSTILE}\n")
    readme = tmp_path / "README.md"
    readme.write_text(BLOCK)
    assert main(["gpu-check", "--publish", str(folder), "--readme", str(readme)]) == 0
    text = readme.read_text()
    command = "`mtlbench perf --name gpu_check --variants [ew,upgrad]?script?alert(1)?/script? [click](javascript:alert(1)) ?evil?nul"
    command += " ?!-- /perf:gpu_check --?`"
    for hostile in ("<script>", "[click](", "\u202e", "\x00"):
        assert hostile not in text.replace(command, "")
    assert command in text  # a code span: shown as written, never markup (no backtick, < or > to leave it)
    assert text.count("<!-- /perf:gpu_check -->") == 1 and text.endswith("<!-- /perf:gpu_check -->\nrest\n")
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt; \\[click\\](javascript:alert(1)) \ufffdevil\ufffdnul &lt;!-- /perf:gpu_check --&gt;" in text
    )


@pytest.mark.parametrize("name", ["summary.md", "gpu_check.json", "perf.json"])
def test_publish_refuses_a_file_that_leads_out_of_its_folder(tmp_path, capsys, name):
    outside = check_folder(tmp_path / "elsewhere")
    folder = check_folder(tmp_path / "files")
    (folder / name).unlink()
    (folder / name).symlink_to(outside / name)
    readme = tmp_path / "README.md"
    readme.write_text(BLOCK)
    assert main(["gpu-check", "--publish", str(folder), "--readme", str(readme)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"mtlbench: error: gpu-check --publish: {_what(name)} {folder / name} is a link that leads outside the folder read; "
        "copy the file itself into the folder; pass the folder gpu-check --out wrote"
    ]
    assert readme.read_text() == BLOCK


def _what(name: str) -> str:
    return {"summary.md": "gpu-check summary", "gpu_check.json": "gpu-check record", "perf.json": "perf record"}[name]


@pytest.mark.parametrize("publish", [True, False], ids=["publish", "check"])
def test_a_linked_readme_is_refused_and_left_a_link(tmp_path, capsys, publish):
    folder = check_folder(tmp_path / "files")
    target = tmp_path / "README.md"
    target.write_text(BLOCK)
    link = tmp_path / "link.md"
    link.symlink_to(target)
    options = ["--publish", str(folder)] if publish else ["--device", "cpu", "--out", str(tmp_path / "out"), "--minutes", "0.01"]
    assert main(["gpu-check", *options, "--readme", str(link)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"mtlbench: error: gpu-check: --readme {link} is a symbolic link; give the file it leads to "
        "(its block is written by replacing the file)"
    ]
    assert link.is_symlink() and link.readlink() == target and target.read_text() == BLOCK
    assert not (tmp_path / "out").exists()


ENDLESS_README = """
import contextlib, io, resource, sys
from mtlbench.bench.cli.entry import main
import torch  # (what a check imports before it reads --readme)

used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), used + (1 << 30)))
for options in (["--publish", sys.argv[1]], ["--device", "cpu", "--out", sys.argv[2], "--minutes", "0.01"]):
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            code = main(["gpu-check", *options, "--readme", "/dev/zero"])
    except BaseException as error:
        code = type(error).__name__
    print(code, printed.getvalue().splitlines())
"""


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_readme_is_one_line_in_bounded_memory(tmp_path):
    """--readme /dev/zero, with the process's memory held to 1 GiB more than its imports took."""
    import subprocess
    import sys

    folder = check_folder(tmp_path / "files")
    command = [sys.executable, "-c", ENDLESS_README, str(folder), str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    line = "['mtlbench: error: gpu-check: --readme /dev/zero is not a regular file (a FIFO, device or folder); give a plain file']"
    assert done.stdout.splitlines() == [f"2 {line}", f"2 {line}"], done.stdout + done.stderr[-2000:]
