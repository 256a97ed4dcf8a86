"""The exact linear study: closed forms against lstsq, the STL peak at p = n, the pooled peak at
p = T n, and the Monte Carlo mean against the closed-form STL risk."""

from __future__ import annotations

import numpy as np
import pytest

from mtlbench.bench.sweeps.linear_study import (
    Curve,
    LinearStudy,
    draw_tasks,
    load_linear_spec,
    mtl_solution,
    run_study,
    stacked_design,
    stl_expected_risk,
)


@pytest.mark.parametrize(
    ("tasks", "n", "p", "scale"),
    [(3, 10, 4, 1.0), (3, 10, 10, 1.0), (3, 10, 25, 0.5), (2, 8, 9, 2.0), (4, 6, 12, 0.0), (4, 6, 40, 0.0), (1, 10, 30, 1.0)],
)
def test_the_closed_form_mtl_solution_is_lstsqs_minimum_norm_solution(tasks, n, p, scale):
    inputs, targets, _ = draw_tasks(np.random.default_rng(p), tasks, n, p, 0.5, 1.0, 0.5)
    theta = np.linalg.lstsq(stacked_design(inputs, scale), targets.reshape(-1), rcond=None)[0]
    reference = theta[:p] + scale * theta[p:].reshape(tasks, p)
    np.testing.assert_allclose(mtl_solution(inputs, targets, scale), reference, atol=1e-8)


def _medians(curve: Curve, ratios: tuple[float, ...], draws: int = 60) -> dict[float, float]:
    rows = run_study(LinearStudy(n=10, ratios=ratios, curves=(curve,), draws=draws))
    return {row["ratio"]: row["median"] for row in rows}


def test_stl_peaks_at_p_equal_n_and_pooling_moves_the_peak_to_p_equal_t_n():
    ratios = (0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0)
    stl = _medians(Curve("stl", 1, 0.0), ratios)
    assert max(stl, key=stl.get) == 1.0
    pooled = _medians(Curve("pooled", 3, 0.8, 0.0), ratios)
    assert max(pooled, key=pooled.get) == 3.0


def test_the_simulated_stl_risk_matches_its_closed_form_expectation():
    rows = run_study(LinearStudy(n=20, ratios=(0.25, 3.0), curves=(Curve("stl", 1, 0.0),), draws=400))
    for row in rows:
        assert row["mean"] == pytest.approx(stl_expected_risk(row["p"], 20, 1.0, 0.5), rel=0.05)
    assert stl_expected_risk(20, 20, 1.0, 0.5) == float("inf")


def test_shared_parts_lower_the_overparameterised_risk_of_related_tasks():
    ratios = (3.0,)
    related, unrelated = (_medians(Curve("mtl", 4, rho, 1.0), ratios, draws=80)[3.0] for rho in (1.0, 0.0))
    assert related < unrelated


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"n": 2, "panels": {"a": [{"estimator": "stl"}]}}, "n .samples per task. must be an integer >= 4"),
        ({"panels": {}}, "panels must map a title to a list of curves"),
        ({"panels": {"a": [{"estimator": "ridge"}]}}, "a curve is .estimator: stl.mtl.pooled"),
        ({"panels": {"a": [{"estimator": "mtl", "relatedness": 2}]}}, r"relatedness in \[0, 1\]"),
        ({"ratio": [1], "panels": {"a": [{"estimator": "stl"}]}}, "unknown key 'ratio'"),
    ],
)
def test_bad_linear_specs_are_one_line(spec, message):
    with pytest.raises(ValueError, match=message):
        load_linear_spec("spec.yaml", {"study": "linear_regression", **spec})
