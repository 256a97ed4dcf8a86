"""The statistics behind every verdict: recomputed by a reader from the records, a known shift
found exactly where the test says it can be, the detectable difference's power measured, and bad
boards as one line each."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mtlbench.leaderboards.cli import render_and_summarise
from mtlbench.leaderboards.verdicts import (
    ALPHA,
    BETTER,
    NOT_SHOWN,
    WORSE,
    StatisticsError,
    compare_ranks,
    compare_with_reference,
    holm,
    minimal_detectable_difference,
    welch_p_value,
)
from tests.leaderboards.fixture_runs import write_fixture_runs

REFERENCE = Path(__file__).resolve().parents[2] / "leaderboards" / "reference"


def _reader_delta_m(records: Path) -> dict[str, dict[str, list[float]]]:
    """optimizer -> method -> Δm per seed, from the records' JSON alone (PROTOCOL.md's formula:
    100 / K * sum over metrics of the signed relative change against the single-task runs' mean)."""
    runs = [json.loads(path.read_text()) for path in sorted(records.glob("*/version_0/results.json"))]
    flat = [
        (run, {f"{task}/{name}": value for task, metrics in run["metrics"]["test"].items() for name, value in metrics.items()})
        for run in runs
    ]
    baseline: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run, test in flat:
        if len(run["dataset"]["tasks"]) == 1:
            for metric, value in test.items():
                baseline[run["optimizer"]["name"]][metric].append(value)
    deltas: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for run, test in flat:
        if len(run["dataset"]["tasks"]) == 1:
            continue
        reference = {metric: float(np.mean(values)) for metric, values in baseline[run["optimizer"]["name"]].items()}
        terms = []
        for metric, value in test.items():
            task, name = metric.split("/")
            sign = -1.0 if run["directions"][task][name] == "higher" else 1.0
            terms.append(100.0 * sign * (value - reference[metric]) / reference[metric])
        deltas[run["optimizer"]["name"]][run["method"]["name"]].append((run["seed"], float(np.mean(terms))))
    return {opt: {method: [d for _, d in sorted(values)] for method, values in methods.items()} for opt, methods in deltas.items()}


def _reader_holm(p_values: list[float]) -> list[float]:
    order = np.argsort(p_values)
    m, running, adjusted = len(p_values), 0.0, [0.0] * len(p_values)
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _reader_bootstrap(samples: tuple[list[float], ...]) -> tuple[float, float]:
    """The stated procedure: scipy's percentile bootstrap, 10,000 resamples, default_rng(0)."""

    def statistic(*arrays, axis=-1):
        return arrays[0].mean(axis=axis) - (arrays[1].mean(axis=axis) if len(arrays) > 1 else 0.0)

    result = stats.bootstrap(samples, statistic, n_resamples=10_000, method="percentile", rng=np.random.default_rng(0))
    return result.confidence_interval.low, result.confidence_interval.high


def test_a_reader_recomputes_the_reference_boards_statistics_from_its_records():
    deltas = _reader_delta_m(REFERENCE / "records")
    with (REFERENCE / "leaderboard.csv").open() as stream:
        published = {(row["optimizer"], row["method"]): row for row in csv.DictReader(stream)}
    assert len(published) == 54
    for optimizer, methods in deltas.items():
        ew = methods["EW"]
        names = sorted(name for name in methods if name != "EW")
        welch = [float(stats.ttest_ind(methods[name], ew, equal_var=False).pvalue) for name in names]
        for name, p_value, p_holm in zip(names, welch, _reader_holm(welch), strict=True):
            row, values = published[(optimizer, name)], methods[name]
            wins = sum((x < y) + 0.5 * (x == y) for x in values for y in ew) / (len(values) * len(ew))
            low, high = _reader_bootstrap((values, ew))
            mean_low, mean_high = _reader_bootstrap((values,))
            expected = {
                "delta_m_metric_mean": np.mean(values),
                "difference_vs_ew": np.mean(values) - np.mean(ew),
                "difference_ci_low": low,
                "difference_ci_high": high,
                "delta_m_ci_low": mean_low,
                "delta_m_ci_high": mean_high,
                "p_value_vs_ew": p_value,
                "p_holm_vs_ew": p_holm,
                "probability_of_improvement": wins,
            }
            for column, value in expected.items():
                assert float(row[column]) == pytest.approx(value, rel=1e-5, abs=1e-12), (optimizer, name, column)
            verdict = NOT_SHOWN if p_holm >= ALPHA else (BETTER if np.mean(values) < np.mean(ew) else WORSE)
            assert row["verdict"] == verdict, (optimizer, name)
    counts = {
        opt: sum(published[(opt, name)]["verdict"] != NOT_SHOWN for name in methods if name != "EW") for opt, methods in deltas.items()
    }
    assert counts == {"Adam": 5, "SGD": 10}  # of 13 and 17 uncorrected: what Holm over 26 comparisons keeps


def _shifted_board(shift: float, others: int = 25) -> dict[str, list[float]]:
    ew = [2.1, 3.4, 1.2, 2.9, 1.8]
    board = {"EW": ew, "shifted": [value + shift for value in ew]}
    board.update({f"same{i}": list(ew) for i in range(others)})
    return board


def test_a_known_shift_is_marked_where_the_corrected_test_can_see_it_and_the_detectable_difference_bounds_it():
    """Negative control: a method whose seeds are EW's own plus a shift. Welch's t is then
    shift / (s * sqrt(2 / n)) exactly, so the mark must flip at the Holm level's critical difference;
    every shift at or beyond the minimal detectable difference is marked, none below the critical
    difference is, nor is any unshifted copy."""
    ew = _shifted_board(0.0)["EW"]
    n, spread, family = len(ew), float(np.std(ew, ddof=1)), 26
    detectable = minimal_detectable_difference(spread, n, family)
    critical = stats.t.ppf(1 - ALPHA / family / 2, 2 * n - 2) * spread * math.sqrt(2 / n)
    assert critical < detectable
    board = compare_with_reference(_shifted_board(0.0))
    assert board.detectable == pytest.approx(detectable) and board.family == family
    for factor in (0.5, 0.9, 0.99):
        marked = compare_with_reference(_shifted_board(factor * critical)).comparisons["shifted"].verdict
        assert marked == NOT_SHOWN, factor
    for factor in (1.01, 1.2):
        assert compare_with_reference(_shifted_board(factor * critical)).comparisons["shifted"].verdict == WORSE, factor
    for factor in (1.0, 1.5, 3.0):
        result = compare_with_reference(_shifted_board(factor * detectable))
        assert result.comparisons["shifted"].verdict == WORSE and result.comparisons["same0"].verdict == NOT_SHOWN
        assert compare_with_reference(_shifted_board(-factor * detectable)).comparisons["shifted"].verdict == BETTER
    small = compare_with_reference(_shifted_board(0.5 * critical))
    assert small.too_small and not compare_with_reference(_shifted_board(detectable)).too_small


def test_the_detectable_difference_is_detected_in_about_80_percent_of_noisy_boards():
    """The power behind the detectable difference, measured on the verdict's own functions
    (Welch's test, then Holm over the family): 3000 boards of 26 comparisons with independent
    normal seeds (5 a side), one method's mean shifted by the detectable difference, the other 25
    not. Welch's test has slightly fewer degrees of freedom than the pooled test the power is
    solved for, and Holm's later steps are laxer than its first, so the rate is near 0.80
    (measured 0.813 with this generator); the 25 unshifted methods stay within the level (any false mark in 2.1 % of boards)."""
    rng = np.random.default_rng(1)
    family, boards, detectable = 26, 3000, minimal_detectable_difference(1.0, 5, 26)
    ew = rng.normal(0.0, 1.0, (boards, 1, 5))
    methods = rng.normal(0.0, 1.0, (boards, family, 5))
    methods[:, 0] += detectable
    p_values = stats.ttest_ind(methods, ew, axis=-1, equal_var=False).pvalue  # welch_p_value, all boards at once
    assert welch_p_value(list(methods[0, 3]), list(ew[0, 0])) == pytest.approx(p_values[0, 3], rel=1e-12)
    corrected = np.array([holm(list(board)) for board in p_values])
    power, false_marks = np.mean(corrected[:, 0] < ALPHA), np.mean((corrected[:, 1:] < ALPHA).any(axis=1))
    assert 0.76 <= power <= 0.84, power
    assert false_marks <= 0.05, false_marks  # Holm keeps the family-wise error rate


def test_friedman_and_the_nemenyi_critical_difference_match_demsar():
    """Demšar (JMLR 2006), section 3.2.2: k = 4 methods over N = 14 data sets, q_0.05 = 2.569, so
    CD = 2.569 * sqrt(4 * 5 / (6 * 14)) = 1.25."""
    rng = np.random.default_rng(0)
    boards = {f"b{i}": {m: float(v) for m, v in zip("ABCD", rng.normal(size=4) + np.arange(4), strict=True)} for i in range(14)}
    result = compare_ranks(boards)
    assert result.critical_difference == pytest.approx(2.569 * math.sqrt(20 / 84), abs=2e-3)
    ranks = np.array([stats.rankdata([board[m] for m in "ABCD"]) for board in boards.values()])
    chi2 = 12 * 14 / (4 * 5) * (np.sum(ranks.mean(axis=0) ** 2) - 4 * 25 / 4)  # Friedman's statistic, Demšar eq. (1)
    assert result.statistic == pytest.approx(chi2)
    assert list(result.mean_ranks.values()) == pytest.approx(list(ranks.mean(axis=0)))


def test_bad_boards_reach_the_statistics_as_one_line_each():
    one_seed = compare_with_reference({"EW": [1.0], "A": [2.0]})
    assert one_seed.problems == ["EW has 1 seed: comparisons need at least 2 seeds per method; run more seeds"] and not one_seed.comparisons
    nan = compare_with_reference({"EW": [1.0, 2.0], "A": [1.0, float("nan")], "B": [0.0, 0.5]})
    assert len(nan.problems) == 1 and "'A' has a non-finite Δm (nan) in seed #1" in nan.problems[0]
    assert set(nan.comparisons) == {"B"} and nan.family == 1
    single = compare_with_reference({"EW": [1.0, 2.0], "A": [1.0], "B": [0.0, 0.5]})
    assert single.problems == ["'A' has 1 seed: not compared with EW (at least 2 seeds needed)"]
    assert compare_with_reference({"A": [1.0, 2.0]}).problems[0].startswith("no EW row")
    shared = compare_ranks({"x": {"A": 1, "B": 2, "C": 3, "D": 0}, "y": {"A": 1, "B": 2, "C": 3}, "z": {"A": 2, "B": 1, "C": 3, "E": 1}})
    assert shared.left_out == ["D", "E"] and set(shared.mean_ranks) == {"A", "B", "C"}
    with pytest.raises(StatisticsError, match=r"^mean ranks across boards need at least 3 methods on every board; they share 2$"):
        compare_ranks({"x": {"A": 1, "B": 2, "C": 3}, "y": {"A": 1, "B": 2}, "z": {"A": 2, "B": 1}})
    with pytest.raises(StatisticsError, match="at least 3 boards"):
        compare_ranks({"x": {"A": 1, "B": 2, "C": 3}})


def test_a_leaderboard_of_single_seeds_renders_with_its_reason(tmp_path, capsys):
    runs = write_fixture_runs(tmp_path / "runs")
    for path in runs.glob("*/version_0/results.json"):  # keep seed 0 only
        if json.loads(path.read_text())["seed"] != 0:
            path.unlink()
    text, summary = render_and_summarise(runs, tmp_path / "out", png=False)
    assert "comparisons need at least 2 seeds per method" in text and "comparisons need at least 2 seeds per method" in summary
    findings = (tmp_path / "out" / "findings.md").read_text()
    assert "**Better than EW** (0 of 0)" in findings and "- EW has 1 seed: comparisons need at least 2 seeds" in findings
    assert capsys.readouterr().err == ""


def test_single_task_seeds_are_the_spread_methods_are_judged_against():
    """Each seed's single-task networks taken together have a Δm against the baselines (their mean
    over seeds) that averages to 0, since Δm is linear in the metrics; a method is compared with
    that spread, not with a baseline taken as exact."""
    from mtlbench.leaderboards.records import load_runs
    from mtlbench.leaderboards.tables import build_boards

    runs, _ = load_runs(REFERENCE / "records")
    for board in build_boards(runs):
        seeds = board.single_task_seeds
        assert len(seeds["Δm"]) == 5 and set(seeds) == {"Δm", "segmentation", "depth", "normal"}
        assert np.mean(seeds["Δm"]) == pytest.approx(0.0, abs=1e-9) and np.std(seeds["Δm"]) > 0.1
        ew = next(row for row in board.rows if row.method == "EW")
        comparison = board.against_single_task.comparisons[("EW", "Δm")]
        assert comparison.difference == pytest.approx(np.mean(ew.delta_metric), abs=1e-9)
        assert comparison.p_value == pytest.approx(stats.ttest_ind(ew.delta_metric, seeds["Δm"], equal_var=False).pvalue)
        assert len(board.against_single_task.comparisons) == 27 * 4  # Δm and three tasks for every method: one family
