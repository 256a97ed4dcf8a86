"""The one atomic writer: whole files, readable as any new file, nothing left by a failure."""

from __future__ import annotations

import os

import pytest

from mtlbench.leaderboards.atomic_write import write_atomic, write_text_atomic


def test_a_written_file_is_whole_and_readable_as_a_new_file(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a" / "table.md", "Δm\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "a" / "table.md").read_text(encoding="utf-8") == "Δm\n"
    assert (tmp_path / "a" / "table.md").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600: a web server can serve it


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    target = tmp_path / "table.md"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(target, "a lone surrogate \ud800")

    def half(stream):
        stream.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, half)
    assert target.read_text() == "old" and sorted(path.name for path in tmp_path.iterdir()) == ["table.md"]
