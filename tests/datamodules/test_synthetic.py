import json

import numpy as np
import pytest

from mtlbench.datamodules import DatasetError, SyntheticScenesDataModule, holdout_split
from mtlbench.datamodules.synthetic import NUM_CLASSES, render_scene
from mtlbench.datamodules.synthetic.generate import ensure_release
from mtlbench.datamodules.synthetic.render import camera_rays


def test_render_is_a_pure_function_of_the_seed():
    a, b, c = render_scene([3, 0, 7], 32, 48), render_scene([3, 0, 7], 32, 48), render_scene([3, 0, 8], 32, 48)
    for field in ("image", "label", "depth", "normal"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.image, c.image)


def test_rendered_frames_obey_the_release_conventions():
    seen = np.zeros(NUM_CLASSES, dtype=bool)
    for index in range(12):
        frame = render_scene([0, 0, index], 48, 64)
        assert frame.image.shape == (48, 64, 3) and frame.label.shape == frame.depth.shape == (48, 64)
        assert frame.image.min() >= 0.0 and frame.image.max() <= 1.0
        assert frame.label.min() >= -1 and frame.label.max() < NUM_CLASSES
        assert (frame.depth >= 0).all() and np.isfinite(frame.depth).all()
        norms = np.linalg.norm(frame.normal, axis=-1)
        assert np.allclose(norms[norms > 0], 1.0, atol=1e-6)
        # invalid depth and invalid normals coincide (sensor holes)
        np.testing.assert_array_equal(frame.depth == 0, norms == 0)
        seen[np.unique(frame.label[frame.label >= 0])] = True
    assert seen.sum() >= 6, f"only classes {np.flatnonzero(seen)} appear in 12 scenes"


def test_normals_face_the_camera_and_floor_points_up():
    frame = render_scene([0, 0, 1], 48, 64)
    valid = frame.depth > 0
    rays = camera_rays(48, 64, frame.focal).reshape(48, 64, 3)
    facing = np.einsum("hwc,hwc->hw", frame.normal, rays)
    assert (facing[valid] < 0).all(), "a visible surface must face the camera"
    floor = (frame.label == 0) & valid
    assert floor.any()
    # floor normal is "up" in the world = negative y (image up) in the camera frame
    assert (frame.normal[..., 1][floor] < -0.5).all()


def test_release_layout_splits_and_cache(tiny_cache, tiny_datamodule):
    dm = tiny_datamodule()
    root = dm.root
    meta = json.loads((root / "meta.json").read_text())
    assert meta["num_train_folder"] == 56 and meta["num_test"] == 8
    for split, count in (("train", 56), ("val", 8)):
        for modality in ("image", "label", "depth", "normal"):
            assert len(list((root / split / modality).glob("*.npy"))) == count
    assert np.load(root / "train" / "image" / "0.npy").shape == (48, 64, 3)
    dm.prepare_data()  # cached: no regeneration
    assert json.loads((root / "meta.json").read_text()) == meta
    dm.setup()
    sizes = {name: len(ds) for name, ds in dm.datasets.items()}
    assert sizes == {"train": 48, "val": 8, "test": 8}
    assert not set(dm.datasets["train"].indices) & set(dm.datasets["val"].indices)
    image, targets = dm.datasets["train"][0]
    assert image.shape == (3, 48, 64) and str(image.dtype) == "torch.float32"
    assert targets["segmentation"].shape == (48, 64) and str(targets["segmentation"].dtype) == "torch.int16"
    assert targets["depth"].shape == (1, 48, 64) and targets["normal"].shape == (3, 48, 64)


def test_holdout_split_is_deterministic_and_disjoint():
    train, val = holdout_split(100, 20)
    assert (train, val) == holdout_split(100, 20)
    assert len(val) == 20 and not set(train) & set(val) and sorted(train + val) == list(range(100))
    with pytest.raises(DatasetError, match="num_val"):
        holdout_split(10, 10)


def test_task_subset_and_unknown_task(tiny_datamodule):
    dm = tiny_datamodule(tasks=["depth"])
    assert [t.name for t in dm.tasks] == ["depth"]
    dm.setup("fit")
    _, targets = dm.datasets["train"][0]
    assert set(targets) == {"depth"}
    with pytest.raises(DatasetError, match=r"unknown task\(s\) \['albedo'\].*segmentation"):
        tiny_datamodule(tasks=["albedo"])


def test_missing_root_names_the_folder_and_layout(tmp_path):
    dm = SyntheticScenesDataModule(cache_dir=str(tmp_path), num_train=4, num_val=1, num_test=2)
    with pytest.raises(DatasetError, match=r"dataset root .* does not exist; expected layout"):
        dm.setup("fit")


def test_missing_modality_folder_is_reported(tiny_cache, tmp_path):
    import shutil

    dm = SyntheticScenesDataModule(cache_dir=str(tmp_path), num_train=4, num_val=1, num_test=2, height=16, width=16)
    dm.prepare_data()
    shutil.rmtree(dm.root / "train" / "normal")
    with pytest.raises(DatasetError, match=r"missing modality folder .*train/normal"):
        dm.setup("fit")


def test_interrupted_generation_leaves_no_release(tmp_path, monkeypatch):
    import mtlbench.datamodules.synthetic.generate as generate

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "render_scene", explode)
    with pytest.raises(KeyboardInterrupt):
        ensure_release(tmp_path, 0, 2, 1, 16, 16)
    assert list(tmp_path.iterdir()) == []
