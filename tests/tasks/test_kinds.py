"""Properties every built-in task kind keeps: its metrics are the directions it declares, its
per-pixel losses average to its training loss, its targets come out in its format, and an
identity augmentation changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlbench.tasks import BUILT_IN_KINDS, TaskSpec, depth_task, normal_task, segmentation_task

TASKS = {"segmentation": segmentation_task(5), "depth": depth_task(), "normal": normal_task()}


def batch(task: TaskSpec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A prediction and a target of ``task`` (2 x 6 x 7 pixels), a third of the pixels ignored."""
    shape = (2, 6, 7)
    holes = torch.rand(shape, generator=generator) < 1 / 3
    prediction = torch.randn(2, task.channels, 6, 7, generator=generator)
    if task.kind.name == "segmentation":
        target = torch.randint(0, task.channels, shape, generator=generator).masked_fill(holes, -1)
    elif task.kind.name == "depth":
        target = (torch.rand(shape, generator=generator) * 9 + 1).masked_fill(holes, 0)[:, None]
    else:
        target = torch.nn.functional.normalize(torch.randn(2, 3, 6, 7, generator=generator), dim=1) * (~holes)[:, None]
    return prediction, target


def test_every_built_in_kind_has_a_task_here():
    assert set(TASKS) == set(BUILT_IN_KINDS)


@pytest.mark.parametrize("name", list(TASKS))
def test_the_pixel_losses_average_to_the_training_loss(name):
    task = TASKS[name]
    prediction, target = batch(task, torch.Generator().manual_seed(0))
    valid = task.kind.valid(task, target)
    per_pixel = task.kind.pixel_losses(task, prediction.double(), target)
    assert valid.shape == per_pixel.shape == (2, 6, 7) and per_pixel.dtype == torch.float64
    assert torch.all(per_pixel[~valid] == 0)
    mean = per_pixel.sum() / valid.sum()
    assert task.kind.loss(task, prediction, target).item() == pytest.approx(mean.item(), rel=1e-6)


@pytest.mark.parametrize("name", list(TASKS))
def test_the_metrics_are_the_declared_directions(name):
    task = TASKS[name]
    metric = task.kind.metrics(task)
    metric.update(*batch(task, torch.Generator().manual_seed(1)))
    assert set(metric.compute()) == set(task.kind.metric_directions)


@pytest.mark.parametrize("name", list(TASKS))
def test_targets_in_the_kind_format_and_an_identity_augmentation_changes_nothing(name):
    task = TASKS[name]
    array = np.random.default_rng(0).random((6, 7) if task.channels == 1 or name == "segmentation" else (6, 7, 3), dtype=np.float32)
    tensor = task.kind.target(array)
    assert tensor.shape == ((6, 7) if name == "segmentation" else (task.channels, 6, 7))
    assert tensor.dtype == (torch.int16 if name == "segmentation" else torch.float32)
    assert np.array_equal(task.kind.augment(array, 1.0, False, "metric"), array)


def test_kinds_are_equal_by_class_and_a_spec_resolves_a_name():
    assert TaskSpec("d", "depth", 1).kind == BUILT_IN_KINDS["depth"] != BUILT_IN_KINDS["normal"]
    assert hash(TaskSpec("d", "depth", 1).kind) == hash(BUILT_IN_KINDS["depth"])
