"""Checkpoints as data: written atomically, checked before they are read, chosen for a resume.

A kill during a write must not leave a truncated ``last.ckpt`` in place of the previous one, so
checkpoints are written to a temporary file in the same folder and renamed over the old one
(``os.replace`` is atomic on POSIX file systems). A checkpoint is a zip archive (torch's format);
its members' CRCs are checked before anything reads it, and so is what loading it would build
(:mod:`~mtlbench.bench.run.checkpoint_manifest`: only tensors and plain data, within the bytes of
the file). It is only ever loaded with ``weights_only=True`` (:meth:`AtomicCheckpointIO.load_checkpoint`
insists, whatever the caller asks): data, never code. Before the model takes a checkpoint's state dict,
:func:`check_model_state` compares it with the configured model (the method's state layout,
every entry's name and shape) and says in one line what does not fit.
"""

from __future__ import annotations

import pickle  # for its error type only: nothing here unpickles
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from mtlbench.bench.run import budget
from mtlbench.bench.run.checkpoint_manifest import check_directory, check_manifest
from mtlbench.bench.run.errors import CheckpointError
from mtlbench.bench.run.methods.state import MethodStateError, missing_entry, packed, read_method_state
from mtlbench.leaderboards.atomic_write import write_atomic

if TYPE_CHECKING:
    from torch import nn

    from mtlbench.bench.run.methods.base import _Method

RESUMABLE = ("last.ckpt", "best-*.ckpt")  # full checkpoints (the last-epochs ones hold weights only)
METHOD_STATE_KEY = "method._extra_state"  # the method's entry in the model's state dict


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with atomic replacement of the target file. It remembers the
    training step each file it wrote was taken at (:attr:`saved_steps`): two files of one step
    hold the same weights, and a test of one is a test of the other."""

    def __init__(self) -> None:
        super().__init__()
        self.saved_steps: dict[str, int] = {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        target = Path(path)
        self.saved_steps[str(target)] = checkpoint.get("global_step")
        with budget.part("checkpoints"):
            target.parent.mkdir(parents=True, exist_ok=True)
            discard_partial_writes(target.parent, target.name)
            write_atomic(target, lambda stream: torch.save(checkpoint, stream))

    def load_checkpoint(self, path, map_location: Any = lambda storage, loc: storage, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's loading, always with ``weights_only=True``: tensors and plain data only."""
        if weights_only is False:
            raise CheckpointError(
                f"checkpoint {path}: mtlbench loads checkpoints with weights_only=True only (a checkpoint is data, never code); "
                "drop --weights_only false"
            )
        check_checkpoint(Path(path))
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:  # torch's weights-only loader refused a global
            raise not_plain_data(path, error) from None


def discard_partial_writes(folder: Path, name: str = "*") -> None:
    """Remove the temporary files that writes of checkpoint ``name`` (all: ``*``) in ``folder``
    left when a kill cut them short (one process writes a run's checkpoints, one at a time)."""
    for leftover in Path(folder).glob(f".{name}.*.tmp"):
        leftover.unlink(missing_ok=True)


def not_plain_data(path: Any, error: pickle.UnpicklingError) -> CheckpointError:
    """The one line for a checkpoint that ``torch.load(weights_only=True)`` refused."""
    refused = next((line.strip() for line in str(error).splitlines() if "Unsupported global" in line), type(error).__name__)
    refused = refused.removeprefix("WeightsUnpickler error: ").split(" was not an allowed global")[0]
    return CheckpointError(
        f"checkpoint {path} holds objects other than tensors and plain data ({refused}); "
        "it is not loaded: use a checkpoint written by mtlbench"
    )


def check_checkpoint(path: Path) -> None:
    """Raise a one-line :class:`CheckpointError` unless ``path`` is a whole torch checkpoint (a zip
    archive whose every member's CRC checks out: truncated and overwritten files fail here) whose
    loading builds only tensors and plain data within the file's bytes
    (:func:`~mtlbench.bench.run.checkpoint_manifest.check_manifest`); nothing is unpickled to find out."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; give the path of a .ckpt file (runs/<name>/version_<n>/checkpoints/)")
    try:
        check_directory(path)
        with zipfile.ZipFile(path) as archive:
            check_manifest(path, archive)
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read ({error}); it is truncated or not a torch checkpoint") from None
    if broken is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt (member {broken} fails its CRC); use an earlier checkpoint")


def resumable_checkpoint(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest readable full checkpoint of a run folder to resume, and one line per unreadable
    one skipped (``last.ckpt`` first, then the selected epochs' ``best-*.ckpt``, newest first).
    The partial writes the interrupted run left are removed."""
    folder = Path(run_dir) / "checkpoints"
    discard_partial_writes(folder)
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


def _plain(name: Any) -> str:
    """A state-dict entry's name from a checkpoint, safe to print on one line."""
    text = str(name)
    return text if text.isprintable() and len(text) <= 80 else repr(text[:80])


def _listed(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(_plain(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _same_shape(saved: Any, expected: Any) -> bool:
    if not isinstance(expected, torch.Tensor):
        return True  # extra states: checked by their own layout
    return isinstance(saved, torch.Tensor) and saved.shape == expected.shape


def check_model_state(saved: Any, model: nn.Module, method: _Method, source: str) -> None:
    """Check a checkpoint's model state dict ``saved`` against ``model`` (whose method is
    ``method``) before it is loaded, in place: the method's state is read by its layout's rules
    (one written before the current layout is rewritten in it when it is plain data), and every
    other entry must exist in the model with the same shape. Raises a one-line
    :class:`CheckpointError` that starts with ``source`` (the checkpoint's path)."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"{source} holds no model state dict; it is not a checkpoint of mtlbench fit")
    try:
        values = read_method_state(saved.get(METHOD_STATE_KEY, missing_entry()), method)
    except MethodStateError as error:
        raise CheckpointError(f"{source} {error}") from None
    saved[METHOD_STATE_KEY] = packed(method, values)
    expected = model.state_dict()
    unexpected = [key for key in saved if key not in expected]
    missing = [key for key in expected if key not in saved]
    reshaped = [key for key, value in expected.items() if key in saved and not _same_shape(saved[key], value)]
    if not (unexpected or missing or reshaped):
        return
    parts = []
    if unexpected:
        parts.append(f"{len(unexpected)} entries the model lacks ({_listed(unexpected)})")
    if missing:
        parts.append(f"{len(missing)} of the model's entries missing ({_listed(missing)})")
    if reshaped:
        key = reshaped[0]
        held = tuple(saved[key].shape) if isinstance(saved[key], torch.Tensor) else type(saved[key]).__name__
        parts.append(f"{len(reshaped)} of other shapes ({_plain(key)}: {held} in the checkpoint, {tuple(expected[key].shape)} here)")
    raise CheckpointError(
        f"{source} does not fit the configured model: {'; '.join(parts)}; load it with the model, tasks and method of the run that wrote it"
    )


def stored_hyperparameters(path: Path) -> dict:
    """The ``hyper_parameters`` a checkpoint carries, loaded as plain data (``weights_only``,
    tensors memory-mapped, nothing imported or called); {} without any. The file is checked
    first (:func:`check_checkpoint`)."""
    check_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        raise not_plain_data(path, error) from None
    stored = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    return stored if isinstance(stored, dict) else {}


def _flat(value: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    if isinstance(value, dict) and value and depth < 16:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}{key}." if isinstance(key, str) else f"{prefix}?.", depth + 1))
        return flat
    return {prefix.rstrip("."): value}


def differing_keys(stored: dict, command: dict, limit: int = 4) -> str:
    """The dotted keys of ``stored`` whose values differ from (or are absent in) ``command``,
    printable and at most ``limit`` named; '' when they agree."""
    theirs, ours = _flat(stored), _flat(command)
    keys = sorted(key for key, value in theirs.items() if not key.startswith("_") and (key not in ours or not _equal(ours[key], value)))
    return _listed(keys, limit) if keys else ""


def _equal(ours: Any, theirs: Any) -> bool:
    try:
        return type(ours) is type(theirs) and bool(ours == theirs)
    except Exception:  # a tensor among them: not a configuration value mtlbench writes
        return False


SCHEDULED = ("lr",)  # what a scheduler moves during a run: restored from the checkpoint, not compared
NOT_SETTINGS = ("params", "param_names")


def optimizer_settings(optimizer: torch.optim.Optimizer, scheduled: bool) -> list[dict[str, Any]]:
    """Each parameter group's hyper-parameters (learning rate, momentum, betas, weight decay,
    ...): what configures the optimizer, not what it learned. With a scheduler, the current
    ``lr`` is the scheduler's state and is left out (``initial_lr`` is the configured one)."""
    return saved_settings(optimizer.param_groups, scheduled)


def saved_settings(groups: list[dict[str, Any]], scheduled: bool) -> list[dict[str, Any]]:
    """:func:`optimizer_settings` of parameter groups as an optimizer's state dict holds them."""
    skipped = NOT_SETTINGS + (SCHEDULED if scheduled else ())
    return [{key: value for key, value in group.items() if key not in skipped} for group in groups]


def check_optimizer_settings(configured: list[dict[str, Any]], restored: list[dict[str, Any]], source: str) -> None:
    """One-line :class:`CheckpointError` unless the optimizer restored from ``source`` has the
    hyper-parameters the run's config built: a checkpoint carries state, never configuration."""
    if len(configured) != len(restored):
        raise CheckpointError(f"{source} holds {len(restored)} optimizer parameter groups, this run's config builds {len(configured)}")
    for index, (ours, theirs) in enumerate(zip(configured, restored, strict=True)):
        for key in sorted(ours.keys() | theirs.keys()):
            if not _equal(ours.get(key), theirs.get(key)):
                raise CheckpointError(
                    f"{source}: its optimizer has {_plain(key)} {_plain(theirs.get(key))} in parameter group {index}, this run's config "
                    f"{_plain(ours.get(key))}; resume with the config that wrote the checkpoint (a checkpoint carries state, not settings)"
                )


MAX_COUNT = 2**62


def read_count(value: Any, what: str) -> int:
    """A checkpoint's step count, checked: an int in ``[0, 2^62]``, else one line naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise CheckpointError(f"{what} must be an int from 0 to 2^62, got {_plain(value)}: the checkpoint is not one this version writes")
    return value
