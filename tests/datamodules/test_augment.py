"""Geometry of the joint augmentation: depth scales the right way, normals mirror, labels stay aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlbench.datamodules import JointAugment
from mtlbench.tasks import depth_task, normal_task, segmentation_task

H, W = 24, 36
KINDS = {task.name: task.kind for task in (segmentation_task(4), depth_task(), normal_task())}


def sample():
    """Depth encodes the label (depth = 1 + label) so alignment can be read off any output;
    the left half faces +x, the right half faces the camera; a hole (0) in the corner."""
    label = np.tile((np.arange(W) // 4 % 5).astype(np.float32), (H, 1))
    depth = 1.0 + label
    depth[:3, :3] = 0.0
    normal = np.zeros((H, W, 3), np.float32)
    normal[:, : W // 2, 0] = 1.0
    normal[:, W // 2 :, 2] = -1.0
    normal[:3, :3] = 0.0
    image = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    return image, {"segmentation": label, "depth": depth, "normal": normal}


@pytest.mark.parametrize("depth_kind", ["metric", "inverse"])
def test_depth_scales_the_right_way_and_labels_stay_aligned(depth_kind):
    transform = JointAugment(H, W, depth_kind, KINDS, flip_probability=0.5)
    image, targets = sample()
    seen_scales = set()
    for seed in range(30):
        torch.manual_seed(seed)
        out_image, out, applied = transform.augment(image, {k: v.copy() for k, v in targets.items()})
        seen_scales.add(applied.scale)
        valid = out["depth"] > 0
        undone = out["depth"] * applied.scale if depth_kind == "metric" else out["depth"] / applied.scale
        np.testing.assert_allclose(undone[valid], 1.0 + out["segmentation"][valid], rtol=1e-5)
        assert out_image.shape == (H, W, 3) and out["depth"].shape == (H, W)
        # nearest-neighbour: labels keep their values, holes stay holes (no blending at edges)
        assert set(np.unique(out["segmentation"])) <= set(np.unique(targets["segmentation"]))
        np.testing.assert_array_equal(valid, np.linalg.norm(out["normal"], axis=-1) > 0)
    assert seen_scales == {1.0, 1.2, 1.5}


def test_known_scale_crop_matches_a_manual_crop_and_zoom():
    transform = JointAugment(H, W, "metric", KINDS, scales=(1.5,), flip_probability=0.0)
    image, targets = sample()
    _, out, applied = transform.augment(image, {k: v.copy() for k, v in targets.items()})
    x0, y0, x1, y1 = applied.crop
    assert (x1 - x0, y1 - y0) == (round(W / 1.5), round(H / 1.5)) and applied.scale == 1.5
    window = targets["depth"][y0:y1, x0:x1]
    rows = np.minimum((np.arange(H) + 0.5) * (y1 - y0) / H, y1 - y0 - 1).astype(int)
    cols = np.minimum((np.arange(W) + 0.5) * (x1 - x0) / W, x1 - x0 - 1).astype(int)
    expected = window[np.ix_(rows, cols)] / 1.5
    assert np.mean(np.isclose(out["depth"], expected)) > 0.95  # up to nearest-neighbour rounding at cell edges


def test_flip_mirrors_the_sample_and_negates_normal_x():
    transform = JointAugment(H, W, "metric", KINDS, scales=(1.0,), flip_probability=1.0)
    image, targets = sample()
    out_image, out, applied = transform.augment(image, {k: v.copy() for k, v in targets.items()})
    assert applied.flipped and applied.scale == 1.0
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out["segmentation"], targets["segmentation"][:, ::-1])
    # the left half faced +x; mirrored, it sits on the right and faces -x
    np.testing.assert_array_equal(out["normal"][3:, W // 2 :, 0], -1.0)
    np.testing.assert_array_equal(out["normal"][:, : W // 2, 2], -1.0)
    np.testing.assert_array_equal(out["depth"], targets["depth"][:, ::-1])


def test_no_flip_keeps_normals():
    transform = JointAugment(H, W, "metric", KINDS, scales=(1.0,), flip_probability=0.0)
    image, targets = sample()
    _, out, applied = transform.augment(image, {k: v.copy() for k, v in targets.items()})
    assert not applied.flipped
    np.testing.assert_array_equal(out["normal"], targets["normal"])


def test_color_jitter_changes_the_image_only():
    transform = JointAugment(H, W, "metric", KINDS, scales=(1.0,), flip_probability=0.0, color_jitter=0.4)
    image, targets = sample()
    out_image, out, _ = transform.augment(image, {k: v.copy() for k, v in targets.items()})
    assert not np.allclose(out_image, image)
    for name in targets:
        np.testing.assert_array_equal(out[name], targets[name])


def test_scales_below_one_are_refused():
    with pytest.raises(ValueError, match="scales must be >= 1"):
        JointAugment(H, W, "metric", KINDS, scales=(0.5,))


def test_each_sample_is_augmented_from_torchs_generator_state():
    """A resumed run restores torch's generator, and with it the augmentations to come."""
    transform = JointAugment(H, W, "metric", KINDS, color_jitter=0.2)
    image, targets = sample()
    state = torch.get_rng_state()
    first = [transform.augment(image, dict(targets))[2] for _ in range(8)]
    torch.set_rng_state(state)
    again = [transform.augment(image, dict(targets))[2] for _ in range(8)]
    assert first == again and len(set(first)) > 1
