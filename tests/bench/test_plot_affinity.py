"""``mtlbench plot`` on a run folder holding a TaskAffinity callback's ``task_affinity.json``:
the three affinity figures, with or without gradient statistics beside them; a folder with
neither file, or a file that does not fit, is one line naming it. A statistics file is bounded
like an affinity file: its counts of tasks, probes and values are refused before any figure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mtlbench.bench.cli.entry import main
from mtlbench.bench.run.errors import RunFileError
from mtlbench.bench.run.files import AFFINITY_FILE, STATS_FILE
from mtlbench.bench.sweeps.plot import MAX_PROBE_VALUES, MAX_PROBES, MAX_TASKS, plot_run, read_affinity

AFFINITY_FIGURES = ["affinity_matrix.png", "affinity_over_training.png", "affinity_vs_gradients.png"]
STATS_FIGURES = ["cosine_inter_task_vs_inter_sample.png", "grad_norms.png", "magnitude_similarity_inter_task_vs_inter_sample.png"]
SEVEN = ["segmentation", "depth", "normal", "edges", "saliency", "parts", "keypoints"]


def affinity_file(tasks: list[str], lookaheads: int = 4) -> dict:
    """A synthetic task affinity file: fixed, distinct values in range, steps 0, 10, 20, ..."""
    size = len(tasks)

    def matrix(scale: float, shift: float, step: int) -> list[list[float]]:
        return [[shift + scale * ((3 * i + 5 * j + step) % 7 - 3) / 3 for j in range(size)] for i in range(size)]

    entries = [
        {"step": 10 * k, "affinity": matrix(0.05, 0.0, k), "cos": matrix(0.9, 0.0, k), "mag_sim": matrix(0.4, 0.5, k)}
        for k in range(lookaheads)
    ]
    return {"tasks": tasks, "every_n_steps": 10, "direction": "adam", "lookaheads": entries}


def write(folder: Path, content) -> Path:
    path = folder / AFFINITY_FILE
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def assert_pngs(folder: Path, names: list[str]) -> None:
    assert sorted(path.name for path in folder.glob("*.png")) == sorted(names)
    for name in names:
        data = (folder / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, name


HOSTILE = ["$\\frac{a}{b}$", "$\\frac{", "x" * 200]  # mathtext (which could stop the plot) if drawn raw; a long name


@pytest.mark.parametrize("tasks", [HOSTILE, SEVEN], ids=["3 tasks with hostile names", "7 tasks"])
def test_the_affinity_figures_need_no_gradient_statistics(tmp_path, tasks):
    write(tmp_path, affinity_file(tasks))
    written = plot_run(tmp_path, tmp_path / "figures")
    assert [path.name for path in written] == AFFINITY_FIGURES
    assert_pngs(tmp_path / "figures", AFFINITY_FIGURES)


def test_a_folder_with_both_files_gets_every_figure(tmp_path):
    write(tmp_path, affinity_file(["depth", "normal"], lookaheads=1))
    probes = [{"step": s, "norm/depth": 1.0 + s, "norm/normal": 2, "inter_task/cos/0": 0.1, "inter_task/mag_sim/0": 0.5} for s in range(3)]
    (tmp_path / STATS_FILE).write_text(json.dumps({"tasks": ["depth", "normal"], "probes": probes}))
    assert main(["plot", str(tmp_path)]) == 0
    assert_pngs(tmp_path, STATS_FIGURES + AFFINITY_FIGURES)


def test_a_folder_with_neither_file_is_one_line_naming_both_and_their_callbacks(tmp_path, capsys):
    with pytest.raises(FileNotFoundError) as raised:
        plot_run(tmp_path)
    message = str(raised.value)
    assert all(name in message for name in (STATS_FILE, AFFINITY_FILE, "GradientProbe", "TaskAffinity"))
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and AFFINITY_FILE in err[0] and "TaskAffinity" in err[0]


def _broken(change):
    content = affinity_file(["depth", "normal", "edges"])
    change(content)
    return content


@pytest.mark.parametrize(
    "content, reason",
    [
        (_broken(lambda c: c["lookaheads"][1]["affinity"].pop()), "lookahead 1's 'affinity' must be a 3 x 3 list of finite numbers"),
        (_broken(lambda c: c["lookaheads"][0]["cos"][2].append(0.0)), "lookahead 0's 'cos' must be a 3 x 3 list of finite numbers"),
        (_broken(lambda c: c["lookaheads"][2]["mag_sim"][0].__setitem__(1, "0.5")), "lookahead 2's 'mag_sim' must be a 3 x 3 list"),
        (_broken(lambda c: c["lookaheads"][0]["affinity"][0].__setitem__(0, True)), "lookahead 0's 'affinity' must be a 3 x 3 list"),
        (_broken(lambda c: c["lookaheads"][3]["affinity"][1].__setitem__(1, float("nan"))), "lookahead 3's 'affinity' must be a 3 x"),
        (_broken(lambda c: c["lookaheads"][3]["cos"][1].__setitem__(1, float("inf"))), "lookahead 3's 'cos' must be a 3 x 3 list"),
        (_broken(lambda c: c["lookaheads"][1].pop("step")), "lookahead 1 has no integer step"),
        (_broken(lambda c: c["lookaheads"][1].update(step="10")), "lookahead 1 has no integer step"),
        (_broken(lambda c: c["lookaheads"].append([])), "'lookaheads' must be a non-empty list of objects"),
        (_broken(lambda c: c.update(lookaheads=[])), "'lookaheads' must be a non-empty list of objects"),
        (_broken(lambda c: c["tasks"].__setitem__(1, 7)), "'tasks' must be a list of 2 to 64 unique names"),
        (_broken(lambda c: c["tasks"].__setitem__(1, "depth")), "'tasks' must be a list of 2 to 64 unique names"),
        (_broken(lambda c: c.update(tasks=["depth"])), "'tasks' must be a list of 2 to 64 unique names"),
        (_broken(lambda c: c.update(direction="Adam")), "'direction' must be one of adam, sgd"),
        ("[1, 2]", "'tasks' must be a list of 2 to 64 unique names"),
        ("{oops", "is not JSON"),
    ],
)
def test_an_affinity_file_that_does_not_fit_is_one_line_naming_it(tmp_path, capsys, content, reason):
    path = write(tmp_path, content)
    with pytest.raises(RunFileError, match=re.escape(reason)) as raised:
        plot_run(tmp_path)
    assert str(path) in str(raised.value) and "a TaskAffinity callback wrote" in str(raised.value)
    assert list(tmp_path.glob("*.png")) == []  # checked before any figure is drawn
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and reason in err[0]


def test_a_malformed_affinity_file_stops_the_gradient_figures_too(tmp_path):
    (tmp_path / STATS_FILE).write_text(json.dumps({"tasks": ["depth"], "probes": [{"step": 0, "norm/depth": 1.0}]}))
    write(tmp_path, _broken(lambda c: c["lookaheads"][0].pop("step")))
    with pytest.raises(RunFileError, match="lookahead 0 has no integer step"):
        plot_run(tmp_path)
    assert list(tmp_path.glob("*.png")) == []


def test_lookaheads_are_read_in_step_order_as_arrays(tmp_path):
    content = affinity_file(["depth", "normal"], lookaheads=3)
    content["lookaheads"].reverse()
    data = read_affinity(write(tmp_path, content))
    assert data.steps == [0, 10, 20] and data.direction == "adam" and data.tasks == ["depth", "normal"]
    assert data.affinity.shape == data.cos.shape == data.mag_sim.shape == (3, 2, 2)
    assert data.affinity[2].tolist() == content["lookaheads"][0]["affinity"]


def _stats(tasks: int = 2, probes: int = 2, values: int = 0) -> dict:
    names = [f"task{index}" for index in range(tasks)]
    entries = [{"step": step, **{f"norm/{name}": 1.0 for name in names[:2]}} for step in range(probes)]
    entries[0] |= {f"inter_task/cos/{index}": 0.5 for index in range(values)}
    return {"tasks": names, "probes": entries}


@pytest.mark.parametrize(
    "content, reason",
    [
        (_stats(tasks=MAX_TASKS + 1), f"'tasks' must be a list of names, 1 to {MAX_TASKS} and each once"),
        (_stats(probes=MAX_PROBES + 1), f"'probes' must be a list of at most {MAX_PROBES} objects"),
        (_stats(values=MAX_PROBE_VALUES), f"probe 0 holds {MAX_PROBE_VALUES + 3} values, more than the {MAX_PROBE_VALUES}"),
        ({"tasks": ["depth", "depth"], "probes": []}, "'tasks' must be a list of names, 1 to 64 and each once"),
    ],
    ids=["tasks", "probes", "values of a probe", "a task twice"],
)
def test_a_statistics_file_beyond_the_bounds_is_one_line_before_any_figure(tmp_path, capsys, content, reason):
    (tmp_path / STATS_FILE).write_text(json.dumps(content))
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "figures")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and reason in captured.err and STATS_FILE in captured.err
    assert not (tmp_path / "figures").exists()  # refused before the folder, let alone a figure
