"""The console is mtlbench's: library chatter is quietened narrowly, and --verbose brings it back."""

from __future__ import annotations

import logging
import os

import pytest

from mtlbench.bench.run.console import VERBOSE_ENV, quiet_libraries, take_verbose_flag


@pytest.fixture
def not_verbose(monkeypatch):
    """No ``--verbose`` yet, and the environment as it was after the test: take_verbose_flag writes
    ``os.environ`` itself, which a bare ``delenv`` of an absent variable would not undo."""
    monkeypatch.setenv(VERBOSE_ENV, "0")  # recorded, so teardown restores the variable's absence
    monkeypatch.delenv(VERBOSE_ENV)


def test_verbose_is_taken_out_of_the_arguments_and_inherited(not_verbose):
    assert take_verbose_flag(["fit", "--config", "x.yaml"]) == ["fit", "--config", "x.yaml"] and VERBOSE_ENV not in os.environ
    assert take_verbose_flag(["fit", "--verbose", "--config", "x.yaml"]) == ["fit", "--config", "x.yaml"]
    assert os.environ[VERBOSE_ENV] == "1"  # DDP's processes and a sweep's runs see it too


def test_lightnings_advertisement_is_dropped_and_its_other_lines_kept(not_verbose, caplog):
    quiet_libraries()
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    with caplog.at_level(logging.INFO):
        logger.info("💡 Tip: For seamless cloud logging, try installing something")
        logger.info("GPU available: False, used: False")
        logging.getLogger("lightning_fabric.utilities.seed").info("Seed set to 0")
    assert [record.getMessage() for record in caplog.records] == ["GPU available: False, used: False"]


def test_verbose_before_a_subcommand_reaches_that_subcommand(not_verbose, tmp_path, capsys):
    from mtlbench.bench.cli.entry import main

    missing = str(tmp_path / "no-release")
    assert main(["data", "check", missing]) == 1  # the dataset tool's report, not LightningCLI's exit 2
    plain = capsys.readouterr().out
    assert main(["--verbose", "data", "check", missing]) == 1 and os.environ[VERBOSE_ENV] == "1"
    assert capsys.readouterr().out == plain
    assert main(["--verbose", "plot", str(tmp_path)]) == 2  # plot's own one-line error: no gradient statistics there
    assert "invalid choice" not in capsys.readouterr().err
