"""The one atomic writer: a reader never sees a half-written file, and a file is readable by
whoever may read a new file here (the umask), never mkstemp's 0600.

Everything mtlbench writes for others goes through :func:`write_atomic`: run records, gradient
statistics, checkpoints, perf records, tables, the site's pages, published records. The data go
to a temporary file beside the target (``.NAME.XXXX.tmp``), are flushed to disk, and the file is
renamed over the target (``os.replace`` is atomic on POSIX file systems); a failure removes
the temporary file and leaves the previous target as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Replace ``path`` with what ``write(stream)`` writes into a binary stream."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    write_atomic(path, lambda stream: stream.write(data))


def write_text_atomic(path: str | Path, text: str) -> None:
    """``text`` as UTF-8 (a string that cannot be encoded fails before the target is touched)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, allow_nan=True) + "\n")


def write_png(path: str | Path, figure: Any, dpi: int) -> None:
    """A matplotlib ``figure`` saved as PNG at ``path`` (atomically; no "Software" tag, so the
    same figure gives the same bytes), then closed."""
    import matplotlib.pyplot as plt

    write_atomic(path, lambda stream: figure.savefig(stream, format="png", dpi=dpi, metadata={"Software": None}))
    plt.close(figure)
