"""Published tables under leaderboards/ regenerate identically from the records committed beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboards.cli import render_leaderboard
from leaderboards.render import GENERATED

LEADERBOARDS = Path(__file__).resolve().parents[2] / "leaderboards"
PUBLISHED = sorted(folder for folder in LEADERBOARDS.iterdir() if (folder / "records").is_dir())


def test_the_quickstart_table_is_published():
    assert LEADERBOARDS / "quickstart" in PUBLISHED


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda folder: folder.name)
def test_published_table_regenerates_identically(folder, tmp_path):
    render_leaderboard(folder / "records", tmp_path, png=False)
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex"):
        committed = (folder / name).read_text()
        if not name.endswith(".csv"):  # CSV has no comment syntax; the folder's README says it
            assert GENERATED in committed
        assert (tmp_path / name).read_text() == committed, f"{folder.name}/{name} differs from what its records give"
