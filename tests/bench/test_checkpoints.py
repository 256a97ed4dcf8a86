"""Checkpoints: atomic writes, corruption found before reading, the fallback for a resume."""

from __future__ import annotations

import pytest
import torch

from mtlbench.bench.run.checkpoints import AtomicCheckpointIO, check_checkpoint, resumable_checkpoint
from mtlbench.bench.run.errors import CheckpointError


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, target)
    before = target.read_bytes()

    def dies_halfway(obj, stream):
        stream.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # what a kill looks like from inside

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, target)
    assert target.read_bytes() == before
    assert [path.name for path in target.parent.iterdir()] == ["last.ckpt"]  # no temporary left behind
    assert torch.load(target, weights_only=True)["step"] == 1


def test_a_resume_skips_an_unreadable_last_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 3}, folder / "best-epoch=3.ckpt")
    io.save_checkpoint({"epoch": 4}, folder / "last.ckpt")
    io.save_checkpoint({"epoch": 4}, folder / "epoch-epoch=4.ckpt")  # weights only: never resumed from
    assert resumable_checkpoint(tmp_path) == (folder / "last.ckpt", [])
    (folder / "last.ckpt").write_bytes((folder / "last.ckpt").read_bytes()[:100])  # truncated
    chosen, skipped = resumable_checkpoint(tmp_path)
    assert chosen == folder / "best-epoch=3.ckpt"
    assert len(skipped) == 1 and "last.ckpt cannot be read" in skipped[0]
    with pytest.raises(CheckpointError, match="truncated or not a torch checkpoint"):
        check_checkpoint(folder / "last.ckpt")
    assert resumable_checkpoint(tmp_path / "nothing") == (None, [])
