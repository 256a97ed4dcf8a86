"""A release's .npy samples from others: each hostile file is one line of `mtlbench data check`,
which goes on with the other files, found without allocating what the header claims and without
blocking on a FIFO; crafted headers (shapes, orders, dtypes) included."""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from mtlbench.datamodules.fake_release import write_release
from mtlbench.datamodules.npy_file import NpyError, open_npy


def crafted_header(shape: object, data: bytes = b"\0" * 64, descr: str = "'<f8'", fortran_order: str = "False") -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': {fortran_order}, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


CASES = {
    "0-byte file": (lambda path: path.write_bytes(b""), "not a .npy file (EOF"),
    "0x0 array": (lambda path: np.save(path, np.zeros((0, 0), np.float32)), "shape (0, 0) holds no values"),
    "huge header": (lambda path: path.write_bytes(crafted_header((40000, 40000))), "holds 1600000000 values, more than"),
    "short data": (lambda path: path.write_bytes(crafted_header((8, 8))), "holds 64 data bytes, its header promises 512"),
    "object dtype": (lambda path: np.save(path, np.array([{"a": 1}], dtype=object)), "dtype object, expected a numeric dtype"),
    "FIFO": (lambda path: (path.unlink(), os.mkfifo(path)), "not a regular file"),
    "negative shape": (lambda path: path.write_bytes(crafted_header((-8, -8), b"\0" * 512)), "shape (-8, -8) holds a dimension that"),
    "boolean dimension": (lambda path: path.write_bytes(crafted_header((True, 64), b"\0" * 512)), "shape (True, 64) holds a dimension"),
    "dimension beyond 2^64": (lambda path: path.write_bytes(crafted_header((2**64, 1, -1))), "holds a dimension that is not an integer"),
    "101 dimensions": (lambda path: path.write_bytes(crafted_header((1,) * 100 + (64,), b"\0" * 512)), "shape of 101 dimensions"),
    "shape ()": (lambda path: path.write_bytes(crafted_header(())), "holds 64 data bytes, its header promises 8"),
    "0-d array": (lambda path: np.save(path, np.float32(1.0)), "shape (), expected HxW or HxWx1 for depth"),
    "shape with a string": (lambda path: path.write_bytes(crafted_header((8, "8"))), "not a .npy file (shape is not valid: (8, '8'))"),
    "fortran_order 1": (lambda path: path.write_bytes(crafted_header((8,), fortran_order="1")), "fortran_order is not a valid bool: 1"),
    "descr |O": (lambda path: path.write_bytes(crafted_header((8,), descr="'|O'")), "dtype object, expected a numeric dtype"),
}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_release(tmp_path_factory.mktemp("release") / "nyuv2", "nyuv2", num_train=2, num_test=2, height=8, width=8)


@pytest.mark.timeout(20)  # a reader blocked on the FIFO fails, not hangs
@pytest.mark.parametrize("case", CASES)
def test_a_hostile_sample_is_one_line_of_data_check(release, tmp_path, case, capsys):
    from mtlbench.bench.cli.data import main

    root = tmp_path / "release"
    shutil.copytree(release, root)
    spoil, reason = CASES[case]
    spoil(root / "train" / "depth" / "1.npy")
    start = time.perf_counter()
    assert main(["check", str(root)]) == 1
    assert time.perf_counter() - start < 20
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if "depth/1.npy" in line]
    assert len(lines) == 1 and reason in lines[0], lines
    assert out[-1] == f"NYUv2 release at {root}: 1 problem(s)"  # every other file checked, and fine


def test_a_whole_sample_maps_without_a_copy(release):
    array = open_npy(release / "train" / "depth" / "0.npy")
    assert isinstance(array, np.memmap) and np.array_equal(array, np.load(release / "train" / "depth" / "0.npy"))
    with pytest.raises(NpyError, match="not a regular file"):
        open_npy(release / "train")  # a folder: refused before it is read
