"""NYUv2 and Cityscapes datamodules on tiny releases written in the exact layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from mtlbench.bench.cli.entry import main
from mtlbench.datamodules import CityscapesDataModule, DatasetError, NYUv2DataModule
from mtlbench.datamodules.fake_release import write_release
from mtlbench.models import MultiTaskNet

HEIGHT, WIDTH = 35, 47  # odd on purpose


@pytest.fixture(scope="module")
def nyuv2_root(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("nyuv2"), "nyuv2", num_train=12, num_test=5, height=HEIGHT, width=WIDTH)


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("cityscapes"), "cityscapes", num_train=10, num_test=4, height=HEIGHT, width=WIDTH)


def nyuv2(root, **kwargs) -> NYUv2DataModule:
    return NYUv2DataModule(root=str(root), num_val=3, batch_size=4, num_workers=0, **kwargs)


def cityscapes(root, **kwargs) -> CityscapesDataModule:
    return CityscapesDataModule(root=str(root), num_val=3, batch_size=4, num_workers=0, **kwargs)


def test_nyuv2_shapes_dtypes_and_splits(nyuv2_root):
    dm = nyuv2(nyuv2_root)
    dm.setup()
    assert {name: len(ds) for name, ds in dm.datasets.items()} == {"train": 9, "val": 3, "test": 5}
    train, val = set(dm.datasets["train"].indices), set(dm.datasets["val"].indices)
    assert not train & val and train | val == set(range(12))
    for split in ("train", "val", "test"):
        image, targets = dm.datasets[split][0]
        assert image.shape == (3, HEIGHT, WIDTH) and image.dtype == torch.float32
        assert targets["segmentation"].shape == (HEIGHT, WIDTH) and targets["segmentation"].dtype == torch.int16
        assert targets["depth"].shape == (1, HEIGHT, WIDTH) and targets["depth"].dtype == torch.float32
        assert targets["normal"].shape == (3, HEIGHT, WIDTH) and targets["normal"].dtype == torch.float32
        assert targets["segmentation"].min() >= -1 and targets["segmentation"].max() <= 12


def test_cityscapes_shapes_classes_and_splits(cityscapes_root):
    for classes in (7, 19):
        dm = cityscapes(cityscapes_root, num_classes=classes)
        dm.setup()
        assert {name: len(ds) for name, ds in dm.datasets.items()} == {"train": 7, "val": 3, "test": 4}
        _, targets = dm.datasets["test"][0]
        assert set(targets) == {"segmentation", "depth"} and dm.tasks[0].channels == classes
        assert targets["segmentation"].max() < classes


def test_validation_split_is_deterministic_and_seed_independent(nyuv2_root):
    splits = []
    for seed in (0, 1):
        pl.seed_everything(seed)
        dm = nyuv2(nyuv2_root)
        dm.setup("fit")
        splits.append(dm.datasets["val"].indices)
    assert splits[0] == splits[1]


def test_test_split_is_touched_only_by_test(nyuv2_root):
    dm = nyuv2(nyuv2_root)
    dm.setup("fit")
    assert "test" not in dm.datasets
    dm.setup("test")
    assert "test" in dm.datasets


def test_task_subsets_for_single_task_baselines(nyuv2_root):
    dm = nyuv2(nyuv2_root, tasks=["normal"])
    dm.setup("fit")
    _, targets = dm.datasets["train"][0]
    assert set(targets) == {"normal"}


def test_augmentation_only_on_training_samples(nyuv2_root):
    dm = nyuv2(nyuv2_root)
    dm.setup()
    assert dm.datasets["train"].transform is not None
    assert dm.datasets["val"].transform is None and dm.datasets["test"].transform is None
    raw = np.load(nyuv2_root / "val" / "depth" / "0.npy")[..., 0]
    np.testing.assert_allclose(dm.datasets["test"][0][1]["depth"][0].numpy(), raw, rtol=1e-6)


@pytest.mark.parametrize("make", [nyuv2, cityscapes], ids=["nyuv2", "cityscapes"])
def test_short_training_run(make, nyuv2_root, cityscapes_root, tmp_path):
    root = nyuv2_root if make is nyuv2 else cityscapes_root
    from mtlbench.bench.run.module import MultiTaskModule

    pl.seed_everything(0)
    dm = make(root)
    module = MultiTaskModule(dm.tasks, net=lambda t: MultiTaskNet(t, backbone="test_resnet", decoder_channels=8))
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(module, datamodule=dm)
    results = trainer.test(module, datamodule=dm, verbose=False)[0]
    assert all(np.isfinite(v) for v in results.values())
    assert {key.split("/")[1] for key in results} == {task.name for task in dm.tasks}


def test_missing_root_names_argument_and_environment_variable(monkeypatch):
    monkeypatch.delenv("MTLBENCH_NYUV2", raising=False)
    with pytest.raises(
        DatasetError, match=r"no dataset root; pass --data.init_args.root PATH or set MTLBENCH_NYUV2 \(expected layout: nyuv2/"
    ):
        NYUv2DataModule().setup("fit")


def test_root_from_environment_variable(monkeypatch, nyuv2_root):
    monkeypatch.setenv("MTLBENCH_NYUV2", str(nyuv2_root))
    dm = NYUv2DataModule(num_val=3, num_workers=0)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 9


# --------------------------------------------------------------------------- bad data, one case each


def corrupt(root, tmp_path, action) -> str:
    copy = tmp_path / "nyuv2"
    shutil.copytree(root, copy)
    action(copy)
    return str(copy)


def save(path, array):
    np.save(path, array)


BAD_CASES = {
    "missing root": (lambda r: shutil.rmtree(r), r"dataset root .*nyuv2 does not exist; expected layout"),
    "missing split": (lambda r: shutil.rmtree(r / "train"), r"missing split folder .*nyuv2/train; expected layout"),
    "missing modality": (lambda r: shutil.rmtree(r / "train" / "depth"), r"missing modality folder .*train/depth; expected layout"),
    "count mismatch": (lambda r: (r / "train" / "normal" / "11.npy").unlink(), r"sample counts differ between modalities"),
    "wrong shape": (
        lambda r: save(r / "train" / "image" / "0.npy", np.zeros((HEIGHT, WIDTH))),
        r"train/image/0.npy: shape \(35, 47\), expected HxWx3",
    ),
    "wrong size": (lambda r: save(r / "train" / "depth" / "0.npy", np.ones((HEIGHT + 1, WIDTH))), r"train/depth/0.npy: size 36x47 differs"),
    "wrong dtype": (
        lambda r: save(r / "train" / "label" / "0.npy", np.full((HEIGHT, WIDTH), "a")),
        r"train/label/0.npy: unreadable .npy \(dtype <U1, expected a numeric",
    ),
    "label out of range": (
        lambda r: save(r / "train" / "label" / "0.npy", np.full((HEIGHT, WIDTH), 13.0)),
        r"labels in \[13, 13\], expected -1 \(ignore\) to 12",
    ),
    "non-integer label": (lambda r: save(r / "train" / "label" / "0.npy", np.full((HEIGHT, WIDTH), 0.5)), r"labels are not integer-valued"),
    "negative depth": (lambda r: save(r / "train" / "depth" / "0.npy", -np.ones((HEIGHT, WIDTH, 1))), r"train/depth/0.npy: negative depth"),
    "bad normals": (
        lambda r: save(r / "train" / "normal" / "0.npy", np.full((HEIGHT, WIDTH, 3), 0.3)),
        r"train/normal/0.npy: 1645 normals are neither unit length nor all-zero",
    ),
    "image out of range": (
        lambda r: save(r / "train" / "image" / "0.npy", np.full((HEIGHT, WIDTH, 3), 255.0)),
        r"image values in \[255, 255\], expected \[0, 1\]",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_data_gives_one_clear_error(case, nyuv2_root, tmp_path):
    action, expected = BAD_CASES[case]
    root = corrupt(nyuv2_root, tmp_path, action)
    with pytest.raises(DatasetError, match=expected) as info:
        nyuv2(root).setup("fit")
    assert "\n" not in str(info.value)


def test_data_check_reports_every_problem(nyuv2_root, tmp_path, capsys):
    def two_problems(r):
        save(r / "train" / "depth" / "5.npy", -np.ones((HEIGHT, WIDTH, 1)))  # not seen by the setup spot check
        save(r / "val" / "label" / "2.npy", np.full((HEIGHT, WIDTH), 20.0))

    root = corrupt(nyuv2_root, tmp_path, two_problems)
    nyuv2(root).setup()  # first and last samples are fine: setup passes
    assert main(["data", "check", root]) == 1
    out = capsys.readouterr().out
    assert "train/depth/5.npy: negative depth" in out and "val/label/2.npy: labels in [20, 20]" in out
    assert "NYUv2 release at" in out and "2 problem(s)" in out
    assert main(["data", "check", str(nyuv2_root)]) == 0
    assert "no problems" in capsys.readouterr().out


def test_a_corrupt_npy_header_is_named_by_data_check_and_by_training(nyuv2_root, tmp_path, capsys):
    def broken_header(r):
        for path in (r / "train" / "image" / "3.npy", r / "train" / "depth" / "4.npy"):
            data = bytearray(path.read_bytes())
            data[6:8] = b"\x09\x00"  # an .npy format version numpy does not know
            path.write_bytes(bytes(data))

    root = corrupt(nyuv2_root, tmp_path, broken_header)
    assert main(["data", "check", root]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any("train/image/3.npy: unreadable .npy" in line for line in out), out
    assert any("train/depth/4.npy: unreadable .npy" in line for line in out), out
    from mtlbench.datamodules.npy_release import load_float32

    with pytest.raises(DatasetError, match=r"depth/4.npy: unreadable .npy .*; replace the file"):
        load_float32(Path(root) / "train" / "depth" / "4.npy")


def _samples(dataset, keys) -> list:
    return [dataset[key] for key in keys]


def _same(first: list, second: list) -> bool:
    return all(
        torch.equal(a[0], b[0]) and a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in a[1])
        for a, b in zip(first, second, strict=True)
    )


def test_samples_from_memory_equal_the_files_and_stay_unchanged_by_transforms(nyuv2_root, monkeypatch):
    """A split that fits is read from disk once; what it serves then is bit-identical to reading
    the files each time, augmentation included, and a transform writing into its arrays does not
    reach what is kept."""
    from mtlbench.datamodules import npy_release
    from mtlbench.datamodules.sampling import SampleKey

    reads = []
    load = npy_release.load_float32
    monkeypatch.setattr(npy_release, "load_float32", lambda path: reads.append(path) or load(path))
    dm = nyuv2(nyuv2_root)
    dm.setup()
    train = dm.datasets["train"]
    keys = [SampleKey(index, seed=100 + index) for index in range(len(train))]
    first = _samples(train, keys)
    per_epoch = len(reads)
    assert per_epoch == len(train) * 4  # image + 3 tasks
    second = _samples(train, keys)
    assert len(reads) == per_epoch and train._caching  # the second epoch reads nothing
    assert _same(first, second)
    original = train.transform

    def scribble(image, targets, seed):  # a transform that writes into the arrays it is given
        image[...] = -1.0
        for target in targets.values():
            target[...] = 0.0
        return original(image, targets, seed)

    train.transform = scribble
    _samples(train, keys)
    train.transform = original
    assert _same(first, _samples(train, keys))

    monkeypatch.setattr(npy_release, "CACHE_LIMIT_BYTES", 1)  # a split that does not fit is read every time
    dm = nyuv2(nyuv2_root)
    dm.setup()
    reads.clear()
    uncached = _samples(dm.datasets["train"], keys)
    _samples(dm.datasets["train"], keys)
    assert len(reads) == 2 * per_epoch and dm.datasets["train"]._caching is False
    assert _same(first, uncached)
