"""Every docstring example in the installed packages runs, imported by its installed name
(``mtlbench.…``), so a newcomer's copy-paste works and no module is imported twice."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("mtlbench.bench", "mtlbench.tasks", "mtlbench.models", "mtlbench.datamodules", "mtlbench.leaderboards")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def installed_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        names += [info.name for info in pkgutil.walk_packages(importlib.import_module(package).__path__, prefix=f"{package}.")]
    return sorted(names)


MODULES = installed_modules()


def test_the_walk_finds_the_packages_and_their_examples():
    assert {"mtlbench.bench.run.module", "mtlbench.bench.run.methods.upgrad", "mtlbench.leaderboards.delta_m"} <= set(MODULES)
    finder = doctest.DocTestFinder()
    examples = sum(len(test.examples) for name in MODULES for test in finder.find(importlib.import_module(name)))
    assert examples > 100


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (the report above)"
