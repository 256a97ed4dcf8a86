"""The console is mtlbench's: library chatter is quietened narrowly, and --verbose brings it back."""

from __future__ import annotations

import logging
import os

from mtlbench.bench.run.console import VERBOSE_ENV, quiet_libraries, take_verbose_flag


def test_verbose_is_taken_out_of_the_arguments_and_inherited(monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    assert take_verbose_flag(["fit", "--config", "x.yaml"]) == ["fit", "--config", "x.yaml"] and VERBOSE_ENV not in os.environ
    assert take_verbose_flag(["fit", "--verbose", "--config", "x.yaml"]) == ["fit", "--config", "x.yaml"]
    assert os.environ[VERBOSE_ENV] == "1"  # DDP's processes and a sweep's runs see it too


def test_lightnings_advertisement_is_dropped_and_its_other_lines_kept(monkeypatch, caplog):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    quiet_libraries()
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    with caplog.at_level(logging.INFO):
        logger.info("💡 Tip: For seamless cloud logging, try installing something")
        logger.info("GPU available: False, used: False")
        logging.getLogger("lightning_fabric.utilities.seed").info("Seed set to 0")
    assert [record.getMessage() for record in caplog.records] == ["GPU available: False, used: False"]
