"""The theory's own setting, exactly: double descent of minimum-norm least squares, STL vs MTL.

T tasks share a component: ``beta_t = sqrt(rho) * beta_0 + sqrt(1 - rho) * delta_t`` with
``beta_0, delta_t ~ N(0, (signal^2 / p) I_p)`` (so ``E |beta_t|^2 = signal^2``; ``rho`` is the
relatedness), and each task has ``n`` samples ``x ~ N(0, I_p)``, ``y = x . beta_t + N(0, noise^2)``.
For isotropic x the test risk of an estimate is exact, with no test set:
``E (y - x . b)^2 = |b - beta_t|^2 + noise^2``.

Estimators, all minimum-norm least squares (the limit of gradient descent from zero):

- **STL**: ``b_t = X_t^+ y_t``, task by task. Its expected risk is known in closed form
  (Hastie, Montanari, Rosset & Tibshirani 2022; Belkin, Hsu & Xu 2020):
  ``noise^2 (1 + p / (n - p - 1))`` for ``p < n - 1`` and
  ``signal^2 (1 - n / p) + noise^2 (1 + n / (p - n - 1))`` for ``p > n + 1``: a peak at ``p = n``.
- **MTL, shared + task-specific** (``scale`` s > 0): ``b_t = w_0 + s u_t``, the minimum-norm
  ``(w_0, u_1..u_T)`` fitting all tasks (hard sharing with a linear representation). For
  ``p <= n`` each task fits its own least-squares solution, as STL; for ``p > n`` the
  interpolating solution is ``b_t = sum_s X_s^T a_s + s^2 X_t^T a_t`` with ``K a = y``,
  ``K_ts = X_t X_s^T (1 + s^2 [t = s])``: the norm penalty pulls the tasks toward a common
  part (the smaller s, the harder).
- **MTL, pooled** (``scale`` 0): one predictor for all tasks, ``b = X^+ y`` on the ``T n``
  stacked samples: the interpolation threshold moves to ``p = T n``.

Closed forms are computed by solving the normal or kernel equations (:func:`mtl_solution`);
the tests check them against ``numpy.linalg.lstsq`` on the stacked design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Curve:
    """One curve of the study: an estimator, its number of tasks, relatedness and scale. STL
    over T tasks fits each alone; its risk is the mean over the T tasks, as for MTL, and a curve
    of the same T and relatedness sees the same draws."""

    estimator: str  # "stl", "mtl" (shared + specific) or "pooled"
    tasks: int
    relatedness: float
    scale: float = 1.0

    @property
    def label(self) -> str:
        if self.estimator == "stl":
            return "STL" if self.tasks == 1 else f"STL, T={self.tasks}, rho={self.relatedness:g}"
        name = "MTL pooled" if self.estimator == "pooled" else f"MTL shared+specific (s={self.scale:g})"
        return f"{name}, T={self.tasks}, rho={self.relatedness:g}"


@dataclass(frozen=True)
class LinearStudy:
    """The grid: ``n`` samples per task, ``p = ratio * n`` features for each ratio, ``draws``
    independent datasets per point; ``curves`` lists the estimators to compare."""

    n: int = 20
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0)
    curves: tuple[Curve, ...] = field(default_factory=lambda: (Curve("stl", 1, 0.0), Curve("mtl", 4, 0.8)))
    signal: float = 1.0
    noise: float = 0.5
    draws: int = 100
    seed: int = 0

    def features(self) -> list[int]:
        """The distinct p of the grid (``round(ratio * n)``, at least 1)."""
        return sorted({max(1, round(ratio * self.n)) for ratio in self.ratios})


def min_norm_least_squares(design: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``design^+ targets`` for a design of full rank: the normal equations when it has no more
    columns than rows, the kernel equations (the interpolating solution) otherwise."""
    rows, cols = design.shape
    if cols <= rows:
        return np.linalg.solve(design.T @ design, design.T @ targets)
    return design.T @ np.linalg.solve(design @ design.T, targets)


def mtl_solution(inputs: np.ndarray, targets: np.ndarray, scale: float) -> np.ndarray:
    """The per-task coefficients (T, p) of minimum-norm MTL least squares (module docstring).

    ``inputs`` is (T, n, p), ``targets`` (T, n); ``scale`` 0 pools the tasks into one predictor."""
    tasks, n, p = inputs.shape
    if scale == 0:
        shared = min_norm_least_squares(inputs.reshape(tasks * n, p), targets.reshape(tasks * n))
        return np.tile(shared, (tasks, 1))
    if p <= n:  # each task can fit its own least-squares solution exactly; the split does not matter
        return np.stack([min_norm_least_squares(inputs[t], targets[t]) for t in range(tasks)])
    stacked = inputs.reshape(tasks * n, p)
    kernel = stacked @ stacked.T
    for t in range(tasks):
        block = slice(t * n, (t + 1) * n)
        kernel[block, block] *= 1 + scale**2
    dual = np.linalg.solve(kernel, targets.reshape(tasks * n)).reshape(tasks, n)
    common = np.einsum("tnp,tn->p", inputs, dual)
    return common + scale**2 * np.einsum("tnp,tn->tp", inputs, dual)


def stacked_design(inputs: np.ndarray, scale: float) -> np.ndarray:
    """The design of the MTL model over ``(w_0, u_1..u_T)``: row block t is ``[X_t, s X_t in
    block t]`` (for the lstsq check); ``b_t = w_0 + s u_t``."""
    tasks, n, p = inputs.shape
    design = np.zeros((tasks * n, (tasks + 1) * p))
    for t in range(tasks):
        design[t * n : (t + 1) * n, :p] = inputs[t]
        design[t * n : (t + 1) * n, (t + 1) * p : (t + 2) * p] = scale * inputs[t]
    return design


def draw_tasks(rng: np.random.Generator, tasks: int, n: int, p: int, relatedness: float, signal: float, noise: float):
    """One dataset: inputs (T, n, p), targets (T, n) and the true coefficients (T, p)."""
    common = rng.normal(0, signal / math.sqrt(p), p)
    own = rng.normal(0, signal / math.sqrt(p), (tasks, p))
    beta = math.sqrt(relatedness) * common + math.sqrt(1 - relatedness) * own
    inputs = rng.standard_normal((tasks, n, p))
    targets = np.einsum("tnp,tp->tn", inputs, beta) + rng.normal(0, noise, (tasks, n))
    return inputs, targets, beta


def exact_risk(estimate: np.ndarray, beta: np.ndarray, noise: float) -> float:
    """Mean over tasks of the exact test risk ``|b_t - beta_t|^2 + noise^2``."""
    return float(np.mean(np.sum((estimate - beta) ** 2, axis=-1)) + noise**2)


def stl_expected_risk(p: int, n: int, signal: float, noise: float) -> float:
    """The closed-form expected STL risk (module docstring); ``inf`` for ``n - 1 <= p <= n + 1``.

    Example:
        >>> round(stl_expected_risk(10, 20, 1.0, 1.0), 4), round(stl_expected_risk(40, 20, 1.0, 1.0), 4)
        (2.1111, 2.5526)
    """
    if p < n - 1:
        return noise**2 * (1 + p / (n - p - 1))
    if p > n + 1:
        return signal**2 * (1 - n / p) + noise**2 * (1 + n / (p - n - 1))
    return math.inf


def run_study(study: LinearStudy) -> list[dict]:
    """One row per (curve, p): the median, quartiles and mean of the risk over the draws (the
    median is the curve: near ``p = n`` the mean has no finite expectation)."""
    rows = []
    for curve in study.curves:
        for p in study.features():
            rng = np.random.default_rng([study.seed, p, curve.tasks, round(curve.relatedness * 1000)])
            risks = []
            for _ in range(study.draws):
                inputs, targets, beta = draw_tasks(rng, curve.tasks, study.n, p, curve.relatedness, study.signal, study.noise)
                if curve.estimator == "stl":
                    estimate = np.stack([min_norm_least_squares(inputs[t], targets[t]) for t in range(curve.tasks)])
                else:
                    estimate = mtl_solution(inputs, targets, 0.0 if curve.estimator == "pooled" else curve.scale)
                risks.append(exact_risk(estimate, beta, study.noise))
            q25, median, q75 = np.quantile(risks, [0.25, 0.5, 0.75])
            rows.append(
                {
                    "curve": curve.label,
                    "estimator": curve.estimator,
                    "tasks": curve.tasks,
                    "relatedness": curve.relatedness,
                    "scale": curve.scale,
                    "p": p,
                    "ratio": p / study.n,
                    "median": float(median),
                    "q25": float(q25),
                    "q75": float(q75),
                    "mean": float(np.mean(risks)),
                    "theory": stl_expected_risk(p, study.n, study.signal, study.noise) if curve.estimator == "stl" else None,
                }
            )
    return rows


ESTIMATORS = ("stl", "mtl", "pooled")
SPEC_KEYS = {"study", "name", "n", "ratios", "signal", "noise", "draws", "seed", "panels"}


def load_linear_spec(path, spec: dict) -> tuple[LinearStudy, dict[str, list[Curve]]]:
    """The study of a ``study: linear_regression`` sweep spec and its figure's panels
    (title -> curves), checked: one line naming the key and the fix."""
    where = f"sweep spec {path}"
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} for a linear_regression study; keys: {', '.join(sorted(SPEC_KEYS))}")
    defaults = LinearStudy()
    n = spec.get("n", defaults.n)
    ratios = spec.get("ratios", list(defaults.ratios))
    if not isinstance(n, int) or isinstance(n, bool) or n < 4:
        raise ValueError(f"{where}: n (samples per task) must be an integer >= 4, got {n!r}")
    if not isinstance(ratios, list) or not ratios or not all(isinstance(r, (int, float)) and r > 0 for r in ratios):
        raise ValueError(f"{where}: ratios must be a non-empty list of p/n > 0, got {ratios!r}")
    numbers = {key: spec.get(key, getattr(defaults, key)) for key in ("signal", "noise", "draws", "seed")}
    if not all(isinstance(value, (int, float)) and value >= 0 for value in numbers.values()) or numbers["draws"] < 1:
        raise ValueError(f"{where}: signal, noise, seed must be numbers >= 0 and draws an integer >= 1, got {numbers}")
    panels = spec.get("panels")
    if not isinstance(panels, dict) or not panels:
        raise ValueError(f"{where}: panels must map a title to a list of curves such as {{estimator: mtl, tasks: 4, relatedness: 0.8}}")
    figure = {}
    for title, entries in panels.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{where}: panel {title!r} needs a non-empty list of curves")
        figure[str(title)] = [_curve(f"{where}: panel {title!r}", entry) for entry in entries]
    curves = tuple(dict.fromkeys(curve for curves in figure.values() for curve in curves))
    study = LinearStudy(n=n, ratios=tuple(ratios), curves=curves, **{k: v for k, v in numbers.items()})
    return study, figure


def _curve(where: str, entry: object) -> Curve:
    if (
        not isinstance(entry, dict)
        or entry.get("estimator") not in ESTIMATORS
        or set(entry) - {"estimator", "tasks", "relatedness", "scale"}
    ):
        raise ValueError(f"{where}: a curve is {{estimator: stl|mtl|pooled, tasks: T, relatedness: rho, scale: s}}, got {entry!r}")
    tasks, relatedness, scale = entry.get("tasks", 1), entry.get("relatedness", 0.0), entry.get("scale", 1.0)
    if not isinstance(tasks, int) or tasks < 1 or not isinstance(relatedness, (int, float)) or not 0 <= relatedness <= 1:
        raise ValueError(f"{where}: tasks must be an integer >= 1 and relatedness in [0, 1], got {entry!r}")
    if not isinstance(scale, (int, float)) or scale <= 0:
        raise ValueError(f"{where}: scale must be > 0 (pooled is its own estimator), got {entry!r}")
    return Curve(entry["estimator"], tasks, float(relatedness), 0.0 if entry["estimator"] == "pooled" else float(scale))


def peaks(rows: list[dict]) -> list[dict]:
    """Per curve: where its median risk peaks and where it is lowest (p/n), with the values."""
    summary = []
    for label in dict.fromkeys(row["curve"] for row in rows):
        mine = [row for row in rows if row["curve"] == label]
        top, low = max(mine, key=lambda row: row["median"]), min(mine, key=lambda row: row["median"])
        summary.append(
            {"curve": label, "peak_ratio": top["ratio"], "peak": top["median"], "best_ratio": low["ratio"], "best": low["median"]}
        )
    return summary
