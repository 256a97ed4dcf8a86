"""What a board's seeds can say about each method against EW, and what several boards say together.

Within a board every method has one Δm per seed. Against EW's seeds each method gets

- a 95 % percentile-bootstrap interval of its mean Δm and of its difference to EW's mean
  (``scipy.stats.bootstrap``: seeds resampled with replacement, each sample on its own,
  ``RESAMPLES`` resamples from ``numpy.random.default_rng(BOOTSTRAP_SEED)`` for every interval);
- Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``), whose p-values are corrected
  with Holm's step-down method over the board's family of comparisons (``statsmodels``); a
  verdict ("better" or "worse than EW") is stated only where the corrected p is below 0.05;
- the probability of improvement of Agarwal et al. (NeurIPS 2021, rliable): P(X < Y) + P(X = Y) / 2
  over all pairs of one of its seeds X and one of EW's seeds Y (lower Δm is better).

The board's minimal detectable difference is the smallest difference to EW that its seeds
detect with 80 % power at the strictest level of Holm's procedure (0.05 / family size), from
EW's sample standard deviation (Welch's test with EW's seed count on each side, its power
simulated). Across boards sharing their methods, the methods' mean ranks
are compared by Friedman's test (``scipy.stats.friedmanchisquare``) and the Nemenyi critical
difference (Demšar, JMLR 2006), from ``scipy.stats.studentized_range``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
POWER_DRAWS = 20_000  # simulated boards behind the minimal detectable difference
POWER_SEED = 0
REFERENCE = "EW"
SINGLE_TASK = "single-task"  # the reference of a board's comparisons with its single-task networks
BETTER, WORSE, NOT_SHOWN = "better than EW", "worse than EW", "not shown"


class StatisticsError(ValueError):
    """A board the statistics cannot use, in one line naming the cause and the fix."""


def verdict(difference: float, p_holm: float, reference: str = REFERENCE) -> str:
    """What a comparison states: better or worse than ``reference`` where the corrected p is
    below 0.05 (lower Δm is better), else "not shown".

    Example:
        >>> verdict(-2.0, 0.01), verdict(-2.0, 0.2), verdict(1.0, 0.01, "single-task")
        ('better than EW', 'not shown', 'worse than single-task')
    """
    if p_holm < ALPHA:
        return f"{'better' if difference < 0 else 'worse'} than {reference}"
    return NOT_SHOWN


@dataclass(frozen=True)
class Comparison:
    """One method against EW on one board (Δm in points; lower is better)."""

    method: str
    seeds: int
    difference: float  # the method's mean Δm minus EW's
    interval: tuple[float, float]  # 95 % bootstrap interval of the difference
    p_value: float  # Welch's t-test, uncorrected
    p_holm: float  # Holm-corrected over the board's family
    probability_of_improvement: float  # P(method's Δm < EW's) over seed pairs
    reference: str = REFERENCE  # what the method is compared with: EW, or the single-task networks
    quantity: str = "Δm"  # Δm, or one task's change against its single-task network

    @property
    def verdict(self) -> str:
        return verdict(self.difference, self.p_holm, self.reference)


@dataclass
class BoardStatistics:
    """Every interval and test of one board against EW."""

    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # method -> interval of its mean Δm
    comparisons: dict[str, Comparison] = field(default_factory=dict)  # method -> against EW (EW itself absent)
    family: int = 0  # comparisons corrected together
    detectable: float | None = None  # minimal detectable difference, Δm points
    reference_seeds: int = 0
    problems: list[str] = field(default_factory=list)  # what could not be computed, one line each

    def verdicts(self, kind: str) -> list[Comparison]:
        return [comparison for comparison in self.comparisons.values() if comparison.verdict == kind]

    @property
    def too_small(self) -> bool:
        """No difference on the board reaches what its seeds can detect, and none is shown."""
        if self.detectable is None or not self.comparisons:
            return False
        largest = max(abs(comparison.difference) for comparison in self.comparisons.values())
        return largest < self.detectable and not self.verdicts(BETTER) and not self.verdicts(WORSE)


def _rng() -> np.random.Generator:
    return np.random.default_rng(BOOTSTRAP_SEED)


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of the mean of ``values`` (at least 2).

    Example:
        >>> low, high = mean_interval([1.0, 2.0, 3.0, 4.0])
        >>> 1.0 <= low < 2.5 < high <= 4.0
        True
    """
    from scipy import stats

    if len(values) == 1:
        return (float(values[0]), float(values[0]))
    with warnings.catch_warnings():  # identical seeds: a degenerate, still correct, interval
        warnings.simplefilter("ignore")
        result = stats.bootstrap(
            (np.asarray(values, dtype=float),),
            np.mean,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=_rng(),
        )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def _difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis) - b.mean(axis=axis)


def difference_interval(values: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of mean(values) - mean(reference), each sample
    resampled on its own (seeds of different methods are independent runs).

    Example:
        >>> low, high = difference_interval([0.0, 1.0, 2.0], [5.0, 6.0, 7.0])
        >>> -7.0 <= low < -5.0 < high <= -3.0
        True
    """
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap(
            (np.asarray(values, dtype=float), np.asarray(reference, dtype=float)),
            _difference,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=_rng(),
        )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def probability_of_improvement(values: Sequence[float], reference: Sequence[float]) -> float:
    """P(X < Y) + P(X = Y) / 2 for a seed X of ``values`` and a seed Y of ``reference``, lower
    being better (rliable's probability of improvement, on the negated Δm).

    Example:
        >>> probability_of_improvement([1.0, 2.0], [1.5, 3.0])   # pairs won: (1,1.5) (1,3) (2,3)
        0.75
    """
    from rliable import metrics

    x = -np.asarray(values, dtype=float)[:, None]
    y = -np.asarray(reference, dtype=float)[:, None]
    return float(metrics.probability_of_improvement(x, y))


def welch_p_value(values: Sequence[float], reference: Sequence[float]) -> float:
    """Welch's two-sided t-test; two constant samples give 1 where equal, 0 where not."""
    from scipy import stats

    if np.ptp(values) == 0 and np.ptp(reference) == 0:
        return 1.0 if values[0] == reference[0] else 0.0
    with warnings.catch_warnings():  # equal samples (a method that is EW written otherwise): t = 0, p = 1, and a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(values, reference, equal_var=False).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down correction of a family of p-values: the i-th smallest is multiplied by
    (m - i), then made non-decreasing in that order and capped at 1 (Holm 1979). Written here:
    statsmodels' ``multipletests`` runs a full garbage collection on every Holm call, which cost
    seconds per board in a process holding many objects.

    Example:
        >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    if not p_values:
        return []
    values = np.asarray(p_values, dtype=float)
    order = np.argsort(values, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(values[order] * np.arange(len(values), 0, -1)))
    corrected = np.empty_like(adjusted)
    corrected[order] = adjusted
    return [float(p) for p in corrected]


@functools.lru_cache(maxsize=256)
def _detectable_in_spreads(seeds: int, family: int) -> float:
    """The shift, in standard deviations, that Welch's test at 0.05 / ``family`` detects in 80 %
    of ``POWER_DRAWS`` simulated pairs of normal samples of ``seeds`` each (common random numbers
    from ``default_rng(POWER_SEED)``, so the answer is exact to the bisection's 1e-4)."""
    from scipy import stats

    rng = np.random.default_rng(POWER_SEED)
    method, reference = rng.standard_normal((POWER_DRAWS, seeds)), rng.standard_normal((POWER_DRAWS, seeds))
    level = ALPHA / family

    def power(shift: float) -> float:
        return float(np.mean(stats.ttest_ind(method + shift, reference, axis=1, equal_var=False).pvalue < level))

    low, high = 0.0, 1.0
    while power(high) < POWER:
        low, high = high, 2 * high
    while high - low > 1e-4:
        middle = (low + high) / 2
        low, high = (middle, high) if power(middle) < POWER else (low, middle)
    return high


def minimal_detectable_difference(spread: float, seeds: int, family: int) -> float:
    """The smallest difference of means that Welch's test, with ``seeds`` runs on each side of
    standard deviation ``spread``, detects with 80 % power at level 0.05 / ``family`` (the
    strictest step of Holm's procedure). Welch's test has no closed-form power, so it is
    simulated (:data:`POWER_DRAWS` draws, seeded); the closed form for the pooled t-test would
    promise 80 % where Welch's test reaches about 72 % (5 seeds, 26 comparisons).

    Example (5 seeds a side, one comparison: about two standard deviations):
        >>> round(minimal_detectable_difference(1.0, 5, 1), 2)
        2.08
    """
    if seeds < 2:
        raise StatisticsError(f"the minimal detectable difference needs at least 2 seeds of {REFERENCE}, not {seeds}")
    return _detectable_in_spreads(seeds, max(family, 1)) * spread


def _checked(method: str, values: Sequence[float]) -> list[float]:
    values = [float(value) for value in values]
    bad = [index for index, value in enumerate(values) if not math.isfinite(value)]
    if bad:
        first = bad[0]
        problem = f"method '{method}' has a non-finite Δm ({values[first]}) in seed #{first}"
        raise StatisticsError(f"{problem}: leave that run out or fix its record")
    return values


def compare_with_reference(deltas: Mapping[str, Sequence[float]], reference: str = REFERENCE) -> BoardStatistics:
    """Every method of a board against ``reference`` (EW): intervals, Welch's test with Holm's
    correction over the board, probability of improvement and the board's minimal detectable
    difference. ``deltas``: method -> its seeds' Δm. What cannot be computed (one seed, no EW, a
    non-finite Δm) is a line in ``problems``; the rest is still computed."""
    board = BoardStatistics()
    usable: dict[str, list[float]] = {}
    for method, values in deltas.items():
        try:
            usable[method] = _checked(method, values)
        except StatisticsError as error:
            board.problems.append(str(error))
    for method, values in usable.items():
        if values:
            board.intervals[method] = mean_interval(values)
    if reference not in usable:
        board.problems.append(f"no {reference} row: the board has no reference to compare methods with; add {reference} to the sweep")
        return board
    ew = usable[reference]
    board.reference_seeds = len(ew)
    if len(ew) < 2:
        board.problems.append(f"{reference} has {len(ew)} seed: comparisons need at least 2 seeds per method; run more seeds")
        return board
    tested = {method: values for method, values in usable.items() if method != reference and len(values) >= 2}
    for method in sorted(set(usable) - set(tested) - {reference}):
        board.problems.append(f"'{method}' has {len(usable[method])} seed: not compared with {reference} (at least 2 seeds needed)")
    board.comparisons = _compare({(name, "Δm"): values for name, values in tested.items()}, {"Δm": ew}, reference)
    board.family = len(board.comparisons)
    if board.family:
        board.detectable = minimal_detectable_difference(float(np.std(ew, ddof=1)), len(ew), board.family)
    board.comparisons = {name: comparison for (name, _), comparison in board.comparisons.items()}
    return board


def _compare(tested: Mapping[tuple[str, str], Sequence[float]], references: Mapping[str, Sequence[float]], name: str) -> dict:
    """Each (method, quantity)'s seeds against the reference's seeds of that quantity, corrected
    with Holm's method as one family."""
    keys = sorted(tested)
    p_values = [welch_p_value(tested[key], references[key[1]]) for key in keys]
    return {
        key: Comparison(
            method=key[0],
            seeds=len(tested[key]),
            difference=float(np.mean(tested[key]) - np.mean(references[key[1]])),
            interval=difference_interval(tested[key], references[key[1]]),
            p_value=p_value,
            p_holm=p_holm,
            probability_of_improvement=probability_of_improvement(tested[key], references[key[1]]),
            reference=name,
            quantity=key[1],
        )
        for key, p_value, p_holm in zip(keys, p_values, holm(p_values), strict=True)
    }


@dataclass
class SingleTaskStatistics:
    """Every method of a board against its single-task networks: Δm and each task's change,
    seed by seed against the single-task runs of each seed taken together (whose own Δm against
    their mean is the spread a method's Δm is judged by), as one Holm family."""

    comparisons: dict[tuple[str, str], Comparison] = field(default_factory=dict)  # (method, quantity) -> comparison
    seeds: int = 0  # seeds with a single-task run of every task
    detectable: float | None = None  # for Δm, from the single-task seeds' spread
    problems: list[str] = field(default_factory=list)


def compare_with_single_task(
    rows: Mapping[str, Mapping[str, Sequence[float]]], single_task: Mapping[str, Sequence[float]]
) -> SingleTaskStatistics:
    """``rows``: method -> quantity ("Δm" or a task) -> its seeds' values; ``single_task``: the
    same quantities of the single-task seeds. Quantities the single-task seeds lack are skipped.

    Example (a method 3 points worse on every seed than single-task seeds spread around 0):
        >>> result = compare_with_single_task({"EW": {"Δm": [3.1, 2.9, 3.0]}}, {"Δm": [0.1, -0.1, 0.0]})
        >>> result.comparisons[("EW", "Δm")].verdict, result.seeds
        ('worse than single-task', 3)
    """
    result = SingleTaskStatistics(seeds=len(single_task.get("Δm", [])))
    if result.seeds < 2:
        result.problems.append(f"single-task networks of {result.seeds} seed: comparisons with them need at least 2 seeds")
        return result
    tested = {}
    for method, quantities in rows.items():
        for quantity, values in quantities.items():
            if quantity not in single_task:
                continue
            try:
                values = _checked(method, values)
            except StatisticsError as error:
                result.problems.append(str(error))
                continue
            if len(values) >= 2:
                tested[(method, quantity)] = values
    references = {quantity: _checked(SINGLE_TASK, values) for quantity, values in single_task.items()}
    result.comparisons = _compare(tested, references, SINGLE_TASK)
    if result.comparisons:
        spread = float(np.std(references["Δm"], ddof=1))
        result.detectable = minimal_detectable_difference(spread, result.seeds, len(result.comparisons))
    return result


@dataclass(frozen=True)
class RankComparison:
    """Methods' mean ranks over boards, Friedman's test and the Nemenyi critical difference."""

    boards: list[str]
    mean_ranks: dict[str, float]  # method -> mean rank over the boards (1 = lowest Δm)
    statistic: float
    p_value: float
    critical_difference: float  # mean ranks further apart than this differ (Nemenyi, alpha 0.05)
    left_out: list[str]  # methods not on every board


def compare_ranks(boards: Mapping[str, Mapping[str, float]]) -> RankComparison:
    """Friedman's test over ``boards`` (board name -> method -> mean Δm), on the methods every
    board has. Needs at least three boards sharing at least three methods.

    Example (three boards that agree on A < B < C):
        >>> result = compare_ranks({"b1": {"A": 1, "B": 2, "C": 3}, "b2": {"A": 0, "B": 5, "C": 9}, "b3": {"A": -1, "B": 0, "C": 1}})
        >>> result.mean_ranks, round(result.p_value, 4)
        ({'A': 1.0, 'B': 2.0, 'C': 3.0}, 0.0498)
    """
    from scipy import stats

    if len(boards) < 3:
        raise StatisticsError(f"mean ranks across boards need at least 3 boards sharing their methods, not {len(boards)}")
    every = [set(methods) for methods in boards.values()]
    shared = sorted(set.intersection(*every))
    left_out = sorted(set.union(*every) - set(shared))
    if len(shared) < 3:
        raise StatisticsError(f"mean ranks across boards need at least 3 methods on every board; they share {len(shared)}")
    for name, methods in boards.items():
        for method in shared:
            if not math.isfinite(methods[method]):
                raise StatisticsError(f"board '{name}': method '{method}' has a non-finite Δm; leave it out")
    table = np.array([[boards[name][method] for method in shared] for name in boards])
    ranks = np.vstack([stats.rankdata(row) for row in table])
    result = stats.friedmanchisquare(*table.T)
    k, n = len(shared), len(boards)
    q = stats.studentized_range.ppf(1 - ALPHA, k, np.inf) / math.sqrt(2)
    return RankComparison(
        boards=list(boards),
        mean_ranks={method: float(rank) for method, rank in zip(shared, ranks.mean(axis=0), strict=True)},
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        critical_difference=float(q * math.sqrt(k * (k + 1) / (6 * n))),
        left_out=left_out,
    )
