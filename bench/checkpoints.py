"""Checkpoints as data: written atomically, checked before they are read, chosen for a resume.

A kill during a write must not leave a truncated ``last.ckpt`` in place of the previous one, so
checkpoints are written to a temporary file in the same folder and renamed over the old one
(``os.replace`` is atomic on POSIX file systems). A checkpoint is a zip archive (torch's format);
its members' CRCs are checked before anything reads it, and it is only ever loaded with
``weights_only=True`` (LightningCLI and Lightning's restore both do): data, never code.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from bench.errors import CheckpointError

RESUMABLE = ("last.ckpt", "best-*.ckpt")  # full checkpoints (the last-epochs ones hold weights only)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with atomic replacement of the target file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                torch.save(checkpoint, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide checkpoints from the group
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_checkpoint(path: Path) -> None:
    """Raise a one-line :class:`CheckpointError` unless ``path`` is a whole torch checkpoint (a zip
    archive whose every member's CRC checks out: truncated and overwritten files fail here, and
    nothing is unpickled to find out)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; give the path of a .ckpt file (runs/<name>/version_<n>/checkpoints/)")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read ({error}); it is truncated or not a torch checkpoint") from None
    if broken is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt (member {broken} fails its CRC); use an earlier checkpoint")


def resumable_checkpoint(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest readable full checkpoint of a run folder, and one line per unreadable one skipped
    (``last.ckpt`` first, then the selected epochs' ``best-*.ckpt``, newest first)."""
    folder = Path(run_dir) / "checkpoints"
    candidates = [path for pattern in RESUMABLE for path in sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)]
    skipped = []
    for path in candidates:
        try:
            check_checkpoint(path)
        except CheckpointError as error:
            skipped.append(str(error))
            continue
        return path, skipped
    return None, skipped
