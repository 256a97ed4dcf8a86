import math

import pytest
import torch

from mtlbench.tasks import TaskSpec, depth_task
from mtlbench.tasks.depth import depth_loss
from mtlbench.tasks.normal import normal_loss
from mtlbench.tasks.segmentation import segmentation_loss


def test_segmentation_loss_ignores_label_minus_one():
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 1, 0, 1] = 100.0  # ignored pixel would give a huge loss if counted
    loss = segmentation_loss(logits, torch.tensor([[[0, -1]]]))
    assert loss.item() == pytest.approx(math.log(2))


def test_depth_loss_averages_over_valid_pixels_only():
    loss = depth_loss(torch.tensor([[[[1.0, 3.0, 100.0]]]]), torch.tensor([[[[2.0, 1.0, 0.0]]]]))
    assert loss.item() == pytest.approx(1.5)


def test_normal_loss_is_one_minus_cosine_on_valid_pixels():
    prediction = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]]])  # (1, 3, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])  # second pixel invalid
    assert normal_loss(prediction, target).item() == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("fn", "prediction", "target"),
    [
        (lambda p, t: segmentation_loss(p, t), torch.randn(1, 3, 2, 2, requires_grad=True), torch.full((1, 2, 2), -1)),
        (depth_loss, torch.randn(1, 1, 2, 2, requires_grad=True), torch.zeros(1, 1, 2, 2)),
        (normal_loss, torch.randn(1, 3, 2, 2, requires_grad=True), torch.zeros(1, 3, 2, 2)),
    ],
)
def test_batch_without_valid_pixels_gives_zero_with_a_gradient(fn, prediction, target):
    loss = fn(prediction, target)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(prediction.grad, torch.zeros_like(prediction))


def test_a_task_of_an_unknown_kind_is_named_with_the_kinds_there_are():
    target = torch.tensor([[[[2.0, 1.0, 0.0]]]])
    assert depth_task().kind.loss(depth_task(), torch.ones_like(target), target) == depth_loss(torch.ones_like(target), target)
    with pytest.raises(ValueError, match="unknown task kind 'edge'; built-in kinds: segmentation, depth, normal"):
        TaskSpec("edges", "edge", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task 'normal' of kind 'normal' must have 3 channels, got 1"):
        TaskSpec("normal", "normal", 1)
