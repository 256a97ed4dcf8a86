"""Metrics against hand-computed references (PROTOCOL.md definitions)."""

import math

import pytest
import torch
import torch.nn.functional as F

from mtlbench.tasks.depth import DepthErrors
from mtlbench.tasks.normal import NormalAngleErrors
from mtlbench.tasks.segmentation import SegmentationScores


def one_hot_logits(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(pred, num_classes).permute(0, 3, 1, 2).float()


def test_miou_is_pooled_over_the_split_with_ignore_pixels_excluded():
    metric = SegmentationScores(num_classes=3, ignore_index=-1)
    # batch 1: gt [0 0 1 -1], pred [0 1 1 2]; batch 2: gt [2 2 0 -1], pred [2 0 0 0]
    metric.update(one_hot_logits(torch.tensor([[[0, 1, 1, 2]]]), 3), torch.tensor([[[0, 0, 1, -1]]]))
    metric.update(one_hot_logits(torch.tensor([[[2, 0, 0, 0]]]), 3), torch.tensor([[[2, 2, 0, -1]]]))
    # valid pixels (gt, pred): (0,0) (0,1) (1,1) (2,2) (2,0) (0,0)
    # class 0: TP 2, FP 1 (gt 2 -> 0), FN 1 (gt 0 -> 1): IoU 2/4
    # class 1: TP 1, FP 1, FN 0: IoU 1/2 ; class 2: TP 1, FP 0, FN 1: IoU 1/2
    values = metric.compute()
    assert values["miou"].item() == pytest.approx(0.5)
    assert values["pix_acc"].item() == pytest.approx(4 / 6)


def test_miou_skips_classes_absent_from_prediction_and_ground_truth():
    metric = SegmentationScores(num_classes=4, ignore_index=-1)
    metric.update(one_hot_logits(torch.tensor([[[0, 1]]]), 4), torch.tensor([[[0, 0]]]))
    # class 0: IoU 1/2, class 1: IoU 0/1, classes 2 and 3 have empty unions -> mean of two
    assert metric.compute()["miou"].item() == pytest.approx(0.25)


def test_pooled_miou_differs_from_per_batch_average():
    metric = SegmentationScores(num_classes=2, ignore_index=-1)
    metric.update(one_hot_logits(torch.tensor([[[0, 0, 0, 0]]]), 2), torch.tensor([[[0, 0, 0, 1]]]))
    metric.update(one_hot_logits(torch.tensor([[[1]]]), 2), torch.tensor([[[1]]]))
    # pooled: class 0 IoU 3/4, class 1 TP 1 FN 1 -> 1/2 => 0.625 (per-batch mean would be 0.6875)
    assert metric.compute()["miou"].item() == pytest.approx(0.625)


def test_depth_errors_are_pixel_pooled_over_valid_pixels():
    metric = DepthErrors()
    metric.update(torch.tensor([[[[1.0, 2.0, 7.0]]]]), torch.tensor([[[[2.0, 4.0, 0.0]]]]))
    metric.update(torch.tensor([[[[3.0]]]]), torch.tensor([[[[1.0]]]]))
    # valid errors: |1-2|=1, |2-4|=2, |3-1|=2 -> abs 5/3; relative 1/2, 2/4, 2/1 -> 3/3
    values = metric.compute()
    assert values["abs_err"].item() == pytest.approx(5 / 3)
    assert values["rel_err"].item() == pytest.approx(1.0)


def test_depth_without_valid_pixels_is_zero_not_nan():
    metric = DepthErrors()
    metric.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert metric.compute()["abs_err"].item() == 0.0


def normals_at(angles_deg):
    """Predictions rotated by the given angles from the gt (0, 0, 1), as (1, 3, 1, N)."""
    radians = torch.deg2rad(torch.tensor(angles_deg, dtype=torch.float64))
    pred = torch.stack([torch.sin(radians), torch.zeros_like(radians), torch.cos(radians)])
    return pred[None, :, None, :].float()


def test_normal_angles_against_hand_computed_values():
    angles = [0.0, 5.0, 11.0, 12.0, 20.0, 25.0, 29.0, 40.0, 90.0, 179.0]
    gt = torch.zeros(1, 3, 1, len(angles))
    gt[:, 2] = 1.0
    prediction = normals_at(angles) * 3.0  # unnormalised predictions are normalised first
    metric = NormalAngleErrors()
    metric.update(prediction, gt)
    values = metric.compute()
    assert values["mean_angle"].item() == pytest.approx(sum(angles) / len(angles), abs=1e-3)
    # lower median of 10 values = the 5th smallest = 20 degrees, within half a histogram bin
    assert values["median_angle"].item() == pytest.approx(20.0, abs=0.01)
    assert values["within_11_25"].item() == pytest.approx(3 / 10)
    assert values["within_22_5"].item() == pytest.approx(5 / 10)
    assert values["within_30"].item() == pytest.approx(7 / 10)


def test_invalid_normals_are_excluded():
    gt = torch.zeros(1, 3, 1, 3)
    gt[0, 2, 0, :2] = 1.0  # third pixel all-zero: invalid
    metric = NormalAngleErrors()
    metric.update(normals_at([10.0, 30.0, 90.0]), gt)
    values = metric.compute()
    assert values["mean_angle"].item() == pytest.approx(20.0, abs=1e-3)
    assert values["within_30"].item() == pytest.approx(0.5)


def test_small_angles_are_accurate():
    gt = torch.zeros(1, 3, 1, 1)
    gt[0, 2] = 1.0
    metric = NormalAngleErrors()
    metric.update(normals_at([0.05]), gt)
    assert metric.compute()["mean_angle"].item() == pytest.approx(0.05, abs=2e-3)


def test_median_over_many_pixels_matches_torch_median():
    torch.manual_seed(0)
    angles = torch.rand(1001) * 60
    gt = torch.zeros(1, 3, 1, 1001)
    gt[0, 2] = 1.0
    metric = NormalAngleErrors()
    metric.update(normals_at(angles[:500].tolist()), gt[..., :500])
    metric.update(normals_at(angles[500:].tolist()), gt[..., 500:])
    assert metric.compute()["median_angle"].item() == pytest.approx(angles.median().item(), abs=0.01)
    assert metric.compute()["mean_angle"].item() == pytest.approx(angles.mean().item(), abs=1e-3)
    assert not math.isnan(metric.compute()["within_11_25"].item())
