"""Every method's docstring carries an example, which the suite runs as a doctest
(tests/test_doctests.py): a newcomer sees each method called, with its output."""

from __future__ import annotations

import doctest

import pytest

from mtlbench.bench.run.methods import GRADIENT_AGGREGATORS, LOSS_WEIGHTINGS


@pytest.mark.parametrize("method", [*LOSS_WEIGHTINGS, *GRADIENT_AGGREGATORS], ids=lambda method: method.__name__)
def test_every_method_has_a_runnable_example(method):
    examples = doctest.DocTestParser().get_examples(method.__doc__ or "")
    assert examples, f"{method.__name__}'s docstring has no example"
    assert any(f"{method.__name__}(" in example.source for example in examples)  # the example calls the method itself
