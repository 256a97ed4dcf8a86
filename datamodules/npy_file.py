"""One ``.npy`` sample of a release, checked before anything is mapped or allocated.

A release comes from others (a download, a colleague's conversion), so a sample file is read as
data: a regular file only (a FIFO would block the reader for ever), a header that numpy's own
parser reads within its size limit, a numeric dtype, a shape of at most :data:`MAX_DIMS`
dimensions, each a non-negative integer (not a boolean), with at least one element and at most
:data:`MAX_ELEMENTS`, and exactly the data bytes the header promises. Only then is the file
memory-mapped: a crafted header cannot make a reader allocate what the file does not hold.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import numpy as np

MAX_ELEMENTS = 2**27  # a 4K RGB image holds 2^24.6; its float64 copy for the checks stays at 1 GiB
MAX_HEADER = 10_000  # numpy's own default limit on a header's size
MAX_DIMS = 8  # a sample is HxW or HxWxC; numpy itself stops at 64


class NpyError(ValueError):
    """A sample file that is not read; the message says why (the caller names the file)."""


def _header(stream) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream, max_header_size=MAX_HEADER)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream, max_header_size=MAX_HEADER)
    raise NpyError(f"format version {version[0]}.{version[1]}, expected 1.0 or 2.0 (what np.save writes)")


def open_npy(path: Path) -> np.ndarray:
    """A read-only memory map of the array in ``path``; :class:`NpyError` for anything else."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise NpyError(f"cannot be opened ({error.strerror})") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise NpyError("not a regular file (a FIFO, device or folder)")
    with os.fdopen(descriptor, "rb") as stream:
        try:
            shape, fortran_order, dtype = _header(stream)
        except (ValueError, EOFError, SyntaxError) as error:
            raise NpyError(f"not a .npy file ({str(error).splitlines()[0][:120] if str(error) else type(error).__name__})") from None
        offset = stream.tell()
    if dtype.hasobject or dtype.kind not in "fiub":
        raise NpyError(f"dtype {dtype}, expected a numeric dtype")
    if len(shape) > MAX_DIMS:
        raise NpyError(f"shape of {len(shape)} dimensions, more than the {MAX_DIMS} a sample may have")
    if not all(type(size) is int and 0 <= size <= MAX_ELEMENTS for size in shape):
        raise NpyError(f"shape {shape} holds a dimension that is not an integer from 0 to {MAX_ELEMENTS}: crafted")
    elements = math.prod(shape)
    if elements == 0:
        raise NpyError(f"shape {shape} holds no values")
    if elements > MAX_ELEMENTS:
        raise NpyError(f"shape {shape} holds {elements} values, more than the {MAX_ELEMENTS} a sample may")
    if status.st_size - offset != elements * dtype.itemsize:
        raise NpyError(f"holds {status.st_size - offset} data bytes, its header promises {elements * dtype.itemsize}: truncated or crafted")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")
