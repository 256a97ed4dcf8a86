"""Study axes in sweep specs: checked at spec time in one line, expanded into stable run ids with
single-task baselines per setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtlbench.bench.sweeps.sweep import load_spec, plan

REPO = Path(__file__).resolve().parents[2]


def _spec(tmp_path: Path, axes: object, **more) -> Path:
    spec = {
        "base": str(REPO / "configs" / "quickstart.yaml"),
        "methods": {"EW": str(REPO / "configs" / "method" / "ew.yaml")},
        "optimizers": {"Adam": {"config": str(REPO / "configs" / "optim" / "adam.yaml"), "lr": [0.001]}},
        "seeds": [0],
        "stl": True,
        "tasks": ["segmentation", "depth", "normal"],
        "axes": axes,
        **more,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"depth_of_field": [1, 2]}, "unknown axis 'depth_of_field'; the axes are train_size, width, label_noise"),
        ({"train_size": []}, r"axes.train_size needs a non-empty list of values \(an integer >= 1\)"),
        ({"train_size": [100, 0]}, "axes.train_size: 0 is not an integer >= 1"),
        ({"width": [1, 1]}, r"axes.width: values repeat in \[1, 1\]"),
        ({"tasks": [["segmentation", "albedo"]]}, "axes.tasks: SyntheticScenesDataModule has no task 'albedo'; its tasks are segmentation"),
        ({"tasks": []}, "axes.tasks needs a non-empty list of task sets"),
        ({"label_noise": {"task": "depth", "levels": [0, -0.1]}}, r"label_noise: -0.1 is not a noise level in \[0, inf\]"),
        ({"label_noise": {"task": "segmentation", "levels": [1.5]}}, r"1.5 is not a noise level in \[0, 1\]"),
        ({"label_noise": {"task": "edges", "levels": [0.1]}}, "label_noise: task 'edges' is not trained by the sweep"),
        ({"label_noise": [0.1]}, r"label_noise takes a mapping \{task: depth, levels: \[0, 0.2, 0.5\]\}"),
        ({"missing_input": {"mode": "pixels", "fractions": [0.5]}}, "mode 'pixels' is unknown; choose patches or channels"),
        ({"missing_input": {"mode": "patches", "fractions": [1.0]}}, r"1.0 is not a fraction in \[0, 1\)"),
        (
            {"relatedness": {"tasks": ["segmentation"], "groups": ["cousins"]}},
            "has no task group 'cousins'; its groups are related, unrelated",
        ),
        ({"tasks": [["depth"]], "relatedness": {"tasks": ["depth"], "groups": ["related"]}}, "tasks and relatedness both choose"),
        ([1, 2], "axes takes a mapping of axis -> values"),
    ],
)
def test_bad_axes_are_one_line_at_spec_time(tmp_path, axes, message):
    with pytest.raises(ValueError, match=message) as error:
        load_spec(_spec(tmp_path, axes))
    assert "\n" not in str(error.value)


def test_a_grid_gives_each_setting_its_baselines_and_stable_ids(tmp_path):
    spec = load_spec(_spec(tmp_path, {"train_size": [50, 100], "label_noise": {"task": "depth", "levels": [0, 0.3]}}))
    runs = {run.run_id: run for run in plan(spec, tmp_path / "runs")}
    assert len(runs) == 4 * 3 + 4  # 4 settings x (3 baselines + EW)
    ew = runs["EW-Adam-lr0.001-s0-noise-depth0.3-n100"]
    assert "--data.init_args.train_size=100" in ew.args and "--data.init_args.label_noise=0.3" in ew.args
    assert f"--model.selection_baseline={tmp_path / 'runs' / 'baselines' / 'Adam-noise-depth0.3-n100.json'}" in ew.args
    stl_depth, stl_seg = runs["stl-depth-Adam-lr0.001-s0-noise-depth0.3-n100"], runs["stl-segmentation-Adam-lr0.001-s0-noise-depth0.3-n100"]
    assert "--data.init_args.noisy_task=depth" in stl_depth.args  # the noisy task's baseline learns from noisy targets
    assert "--data.init_args.noisy_task=depth" in stl_seg.args  # the others carry the setting, untouched by it
    assert stl_depth.selection_group == ew.selection_group == "Adam-noise-depth0.3-n100"


def test_label_noise_reaches_the_runs_of_a_spec_that_names_no_tasks(tmp_path):
    path = _spec(tmp_path, {"label_noise": {"task": "depth", "levels": [0.3]}}, stl=False)
    spec = yaml.safe_load(path.read_text())
    del spec["tasks"]
    path.write_text(yaml.safe_dump(spec))
    (run,) = plan(load_spec(path), tmp_path / "runs")
    assert "--data.init_args.label_noise=0.3" in run.args and "--data.init_args.noisy_task=depth" in run.args


def test_task_sets_share_the_baselines_of_their_setting(tmp_path):
    axes = {"relatedness": {"tasks": ["segmentation"], "groups": ["related", "unrelated"]}, "width": [0.5]}
    runs = {run.run_id: run for run in plan(load_spec(_spec(tmp_path, axes)), tmp_path / "runs")}
    baselines = sorted(run.baseline_of for run in runs.values() if run.baseline_of)
    assert baselines == sorted(["segmentation", "depth", "normal", "edges", "boundary", "texture", "pattern"])
    related = runs["EW-Adam-lr0.001-s0-aux-related-w0.5"]
    assert "--data.init_args.tasks=[segmentation,edges,boundary]" in related.args
    assert related.selection_group == runs["EW-Adam-lr0.001-s0-aux-unrelated-w0.5"].selection_group == "Adam-w0.5"
    one_task = plan(load_spec(_spec(tmp_path, {"tasks": [["segmentation"], ["segmentation", "depth"]]})), tmp_path / "runs")
    assert [run.run_id for run in one_task if not run.baseline_of] == ["EW-Adam-lr0.001-s0-tasks-segmentation.depth"]


def test_a_spec_without_axes_plans_the_runs_it_always_did(tmp_path):
    spec = load_spec(REPO / "configs" / "sweeps" / "quickstart.yaml")
    ids = [run.run_id for run in plan(spec, tmp_path)]
    assert ids[0] == "stl-segmentation-Adam-lr0.001-s0" and "Nash-MTL-SGD-lr0.05-s1" in ids and len(ids) == 36


def test_every_study_spec_in_configs_loads():
    specs = sorted((REPO / "configs" / "sweeps").glob("study_*.yaml"))
    assert len(specs) >= 5
    for path in specs:
        assert plan(load_spec(path), Path("/nonexistent"))
