"""The datamodule side of scaling studies: training subsets, label noise, missing input, and the
synthetic scenes' extra tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlbench.datamodules import DatasetError, SyntheticScenesDataModule
from mtlbench.datamodules.synthetic.render import render_scene


def _setup(make, **overrides):
    datamodule = make(**overrides)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def test_train_size_takes_nested_subsets_and_leaves_validation_and_test_alone(tiny_datamodule):
    full, small, smaller = (_setup(tiny_datamodule, train_size=size) for size in (None, 20, 10))
    assert len(full.datasets["train"]) == 48 and len(small.datasets["train"]) == 20 and len(smaller.datasets["train"]) == 10
    assert set(smaller.datasets["train"].indices) < set(small.datasets["train"].indices) < set(full.datasets["train"].indices)
    assert small.datasets["val"].indices == full.datasets["val"].indices
    with pytest.raises(DatasetError, match=r"train_size=49 must be in \[1, 48\]"):
        _setup(tiny_datamodule, train_size=49)


def test_label_noise_is_fixed_per_sample_and_only_in_training(tiny_datamodule):
    clean = _setup(tiny_datamodule)
    noisy = _setup(tiny_datamodule, label_noise=0.5, noisy_task="segmentation")
    again = _setup(tiny_datamodule, label_noise=0.5, noisy_task="segmentation")
    _, clean_targets = clean.datasets["train"][0]
    _, noisy_targets = noisy.datasets["train"][0]
    labelled = clean_targets["segmentation"] >= 0
    changed = (noisy_targets["segmentation"] != clean_targets["segmentation"])[labelled].float().mean().item()
    assert 0.3 < changed < 0.55  # half the labelled pixels redrawn, 1/7 of them to the same class
    assert torch.equal(noisy_targets["segmentation"][~labelled], clean_targets["segmentation"][~labelled])  # ignore stays ignore
    assert torch.equal(again.datasets["train"][0][1]["segmentation"], noisy_targets["segmentation"])
    assert torch.equal(noisy_targets["depth"], clean_targets["depth"])
    for split in ("val", "test"):
        assert torch.equal(noisy.datasets[split][0][1]["segmentation"], clean.datasets[split][0][1]["segmentation"])


def test_noise_on_a_task_the_run_does_not_train_changes_nothing(tiny_datamodule):
    clean, other = (
        _setup(tiny_datamodule, tasks=["segmentation"]),
        _setup(tiny_datamodule, tasks=["segmentation"], label_noise=0.5, noisy_task="depth"),
    )
    assert other.label_noise is None
    assert torch.equal(other.datasets["train"][0][1]["segmentation"], clean.datasets["train"][0][1]["segmentation"])


def test_depth_and_normal_noise_keep_their_invariants(tiny_datamodule):
    for task in ("depth", "normal"):
        clean = _setup(tiny_datamodule)
        _, targets = _setup(tiny_datamodule, label_noise=0.3, noisy_task=task).datasets["train"][1]
        original = clean.datasets["train"][1][1][task]
        valid = original.abs().sum(0) > 0
        assert not torch.allclose(targets[task], original)
        assert torch.equal(targets[task][:, ~valid], original[:, ~valid])  # invalid pixels stay invalid
        if task == "depth":
            assert (targets[task][:, valid] > 0).all()
        else:
            assert torch.allclose(targets[task][:, valid].norm(dim=0), torch.ones(int(valid.sum())), atol=1e-5)


def test_missing_input_removes_the_same_fraction_in_every_split(tiny_datamodule):
    clean = _setup(tiny_datamodule)
    patches = _setup(tiny_datamodule, missing_input=0.5, missing_patch=8)
    channels = _setup(tiny_datamodule, missing_input=2 / 3, missing_mode="channels")
    for split in ("train", "val", "test"):
        image, _ = patches.datasets[split][0]
        zeroed = (image.abs().sum(0) == 0).float().mean().item()
        assert zeroed == pytest.approx(0.5, abs=0.02), split
        kept, _ = channels.datasets[split][0]
        assert kept[1:].abs().sum() == 0 and torch.equal(kept[0], clean.datasets[split][0][0][0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"label_noise": 0.2}, "label_noise needs noisy_task, one of the dataset's tasks"),
        ({"label_noise": 0.2, "noisy_task": "albedo"}, r"one of the dataset's tasks \['segmentation', .*\]; got 'albedo'"),
        ({"label_noise": 1.5, "noisy_task": "edges", "tasks": ["depth"]}, r"label_noise=1.5 for task 'edges' must be in \[0, 1.0\]"),
        ({"label_noise": 1.5, "noisy_task": "segmentation"}, r"label_noise=1.5 for task 'segmentation' must be in \[0, 1.0\]"),
        ({"missing_input": 1.0}, r"missing_input=1.0 must be in \[0, 1\)"),
        ({"missing_mode": "pixels"}, "missing_mode 'pixels' is unknown"),
    ],
)
def test_bad_study_settings_are_one_line(tiny_datamodule, overrides, message):
    with pytest.raises(DatasetError, match=message):
        tiny_datamodule(**overrides)


def test_the_study_tasks_load_and_the_default_stays_the_three_tasks(tiny_datamodule):
    assert [task.name for task in tiny_datamodule().tasks] == ["segmentation", "depth", "normal"]
    datamodule = _setup(tiny_datamodule, tasks=["segmentation", "edges", "boundary", "texture", "pattern"])
    _, targets = datamodule.datasets["train"][0]
    for name in ("edges", "boundary", "texture"):
        values = set(np.unique(targets[name].numpy()).tolist())
        assert values <= {0, 1} and len(values) == 2, name
    assert set(np.unique(targets["pattern"].numpy()).tolist()) <= set(range(5))
    groups = SyntheticScenesDataModule.task_groups
    assert set(groups) == {"related", "unrelated"} and all(len(tasks) == 2 for tasks in groups.values())


def test_the_geometric_maps_follow_the_scene():
    frame = render_scene(3, height=48, width=64)
    assert np.array_equal(frame.boundary, frame.label == -1)  # class boundaries are the unannotated pixels
    jumps = np.abs(np.diff(frame.depth, axis=1)) > 0.2 * np.minimum(frame.depth[:, 1:], frame.depth[:, :-1])
    valid = (frame.depth[:, 1:] > 0) & (frame.depth[:, :-1] > 0)
    assert frame.edges[:, :-1][jumps & valid].all()  # every large depth jump is an edge
