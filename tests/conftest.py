"""Shared fixtures: a tiny synthetic release generated once per test session."""

from __future__ import annotations

import pytest

from mtlbench.datamodules import SyntheticScenesDataModule

TINY = {"num_train": 48, "num_val": 8, "num_test": 8, "height": 48, "width": 64, "batch_size": 8}


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> str:
    """A cache folder holding the tiny synthetic release used by most tests."""
    cache = tmp_path_factory.mktemp("mtlbench-cache")
    SyntheticScenesDataModule(cache_dir=str(cache), **TINY).prepare_data()
    return str(cache)


@pytest.fixture
def tiny_datamodule(tiny_cache: str):
    """Factory of tiny synthetic datamodules sharing the session's release."""

    def make(**overrides) -> SyntheticScenesDataModule:
        return SyntheticScenesDataModule(cache_dir=tiny_cache, **{**TINY, **overrides})

    return make


def tiny_cli_args(cache: str, save_dir, config: str) -> list[str]:
    """CLI arguments that run ``config`` on the tiny release, logging under ``save_dir``."""
    return [
        "--config",
        config,
        f"--data.init_args.cache_dir={cache}",
        *(f"--data.init_args.{key}={value}" for key, value in TINY.items()),
        f"--trainer.logger.init_args.save_dir={save_dir}",
        f"--trainer.default_root_dir={save_dir}",
        "--trainer.enable_progress_bar=false",
    ]
