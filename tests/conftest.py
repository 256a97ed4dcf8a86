"""Shared fixtures: a tiny synthetic release generated once per test session."""

from __future__ import annotations

import pytest

from datamodules import SyntheticScenesDataModule

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
