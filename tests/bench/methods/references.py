"""Float64 references of the Gramian-based aggregators, written from their papers' formulas.

Independent of torchjd and of ``mtlbench.bench.run.methods``: numpy only, exact solutions by enumerating
active sets (T <= 10 tasks; beyond, an active-set search, the answer resting on the same KKT
certificate), Newton's method for the bargaining equations, the SVD of the Jacobian itself, and
GradVac's alterations on the gradients themselves. Every linear solve is equilibrated: with ``G = D C D`` (``D`` the task-gradient
norms, ``C`` their cosines), systems in ``G`` are solved through ``C``, whose conditioning
depends on the angles only, so norm ratios of 10^6 cost no accuracy.

Each function takes the Jacobian ``J`` (``[T, n]``, float64) and returns the update ``d``
(``[n]``, float64) the paper defines, or raises :class:`Undefined` where it defines none.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

SINGULAR = 1e-10  # a cosine matrix with a smaller eigenvalue (relative) is treated as singular
ENUMERABLE = 10  # up to this many tasks every support is enumerated; beyond, an active-set search finds it


class Undefined(ValueError):
    """The paper's formula defines no update for this Jacobian (e.g. a zero task gradient)."""


def norms(jacobian: np.ndarray) -> np.ndarray:
    return np.linalg.norm(jacobian, axis=1)


def cosines(jacobian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, D)``: the Gramian is ``D C D``; zero rows get ``D = 1`` and a zero row of ``C``."""
    scale = norms(jacobian)
    scale = np.where(scale > 0, scale, 1.0)
    units = jacobian / scale[:, None]
    return units @ units.T, scale


def solve_equilibrated(cos: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """``C^{-1} rhs`` or ``None`` when ``C`` is (numerically) singular."""
    values = np.linalg.eigvalsh(cos)
    if values.min() <= SINGULAR * max(values.max(), 1.0):
        return None
    return np.linalg.solve(cos, rhs)


Step = tuple[np.ndarray | None, int | None]


def active_set_search(tasks: int, start: tuple[int, ...], step: Callable[[tuple[int, ...]], Step]) -> np.ndarray:
    """The solution on the support that ``step`` certifies, found as a primal active-set method
    does: ``step(support)`` returns ``(solution, None)`` when the support meets every KKT
    condition, ``(None, i)`` with the task to move in or out of it otherwise (a negative weight,
    a violated constraint), ``(None, None)`` when the support's system is singular. The answer
    rests on the certificate, not on the path; a search that cycles is an error."""
    support, seen = tuple(sorted(start)), set()
    while support not in seen:
        seen.add(support)
        solution, toggle = step(support)
        if toggle is None:
            if solution is None:
                raise Undefined("the active-set search met a singular support")
            return solution
        support = tuple(sorted(set(support) ^ {toggle}))
    raise AssertionError(f"the active-set search cycled over {tasks} tasks")


def hull_holds_zero(cos: np.ndarray, scale: np.ndarray, support: list[int]) -> bool:
    """Whether a singular ``C_SS`` has a null vector of one sign: then 0 is a convex combination
    of the gradients of S (the tasks are Pareto-stationary)."""
    values, vectors = np.linalg.eigh(cos[np.ix_(support, support)])
    if values[0] > SINGULAR * max(values[-1], 1.0):
        return False
    weights = vectors[:, 0] / scale[support]
    weights = weights * np.sign(weights[np.argmax(np.abs(weights))])
    return bool(np.all(weights >= -1e-9 * weights.max()))


def mgda_step(jacobian: np.ndarray, cos: np.ndarray, scale: np.ndarray, support: tuple[int, ...]) -> Step:
    """MGDA's KKT conditions on a support S: ``w_S ~ G_SS^{-1} 1 >= 0`` and ``<g_i, d> >= |d|^2``."""
    s = list(support)
    if not s:
        return None, int(np.argmin(scale))  # start from the shortest gradient
    y = solve_equilibrated(cos[np.ix_(s, s)], 1.0 / scale[s])
    if y is None:
        return (np.zeros(jacobian.shape[1]), None) if hull_holds_zero(cos, scale, s) else (None, None)
    w_s = y / scale[s]
    w_s = w_s / w_s.sum()
    if np.any(w_s < 0):
        return None, s[int(np.argmin(w_s))]
    weights = np.zeros(len(jacobian))
    weights[s] = w_s
    update = weights @ jacobian
    slack = (jacobian @ update - update @ update) / scale  # >= 0 at the optimum
    if np.all(slack >= -1e-9 * (update @ update) / scale):
        return update, None
    return None, int(np.argmin(slack))


def mgda(jacobian: np.ndarray) -> np.ndarray:
    """Sener & Koltun 2018 (Désidéri 2012): the minimum-norm point of the convex hull of the
    task gradients. Enumerates the supports S: on S, ``w ~ G_SS^{-1} 1``; the optimum is the
    feasible (w >= 0) candidate with ``<g_i, d> >= |d|^2`` for every task (its KKT condition).
    """
    tasks = len(jacobian)
    if not np.any(norms(jacobian) > 0):
        return np.zeros(jacobian.shape[1])
    if np.any(norms(jacobian) == 0):
        return np.zeros(jacobian.shape[1])  # a zero gradient is in the hull: its norm is 0
    cos, scale = cosines(jacobian)
    if tasks > ENUMERABLE:
        return active_set_search(tasks, (), lambda support: mgda_step(jacobian, cos, scale, support))
    best: np.ndarray | None = None
    for size in range(1, tasks + 1):
        for support in itertools.combinations(range(tasks), size):
            s = list(support)
            # w_S = D^{-1} C_SS^{-1} D^{-1} 1 / normaliser (G_SS = D C_SS D)
            y = solve_equilibrated(cos[np.ix_(s, s)], 1.0 / scale[s])
            if y is None:
                if hull_holds_zero(cos, scale, s):
                    return np.zeros(jacobian.shape[1])  # Pareto-stationary: the minimum norm is 0
                continue
            w_s = y / scale[s]
            if np.any(w_s < 0):
                continue
            weights = np.zeros(tasks)
            weights[s] = w_s / w_s.sum()
            update = weights @ jacobian
            if np.all(jacobian @ update >= update @ update * (1 - 1e-9)) and (best is None or update @ update < best @ best):
                best = update
    assert best is not None, "MGDA: no support satisfies the optimality conditions"
    return best


def cagrad(jacobian: np.ndarray, c: float) -> np.ndarray:
    """Liu et al. 2021: ``d = argmax_{|d - g0| <= c|g0|} min_i <g_i, d>`` with ``g0`` the mean
    gradient (no 1/(1+c^2) rescale). Its dual is ``min_{w in simplex} <g_w, g0> + c|g0| |g_w|``
    and ``d = g0 + c|g0| g_w / |g_w|``; on an active set S the KKT conditions ``<g_i, d> = lam``
    (i in S) give lam in closed form; the optimum is the candidate with ``w >= 0`` and
    ``<g_i, d> >= lam`` elsewhere.
    """
    tasks = len(jacobian)
    if np.any(norms(jacobian) == 0):
        raise Undefined("a zero task gradient makes every d optimal that keeps the others' improvement >= 0")
    mean = jacobian.mean(axis=0)
    radius = c * np.linalg.norm(mean)
    if radius == 0:
        return mean
    cos, scale = cosines(jacobian)
    b = jacobian @ mean  # <g_i, g0>
    best: tuple[float, np.ndarray] | None = None
    for size in range(1, tasks + 1):
        for support in itertools.combinations(range(tasks), size):
            s = list(support)
            inv_one = solve_equilibrated(cos[np.ix_(s, s)], 1.0 / scale[s])
            inv_b = solve_equilibrated(cos[np.ix_(s, s)], b[s] / scale[s])
            if inv_one is None or inv_b is None:
                continue
            inv_one, inv_b = inv_one / scale[s], inv_b / scale[s]  # G_SS^{-1} 1, G_SS^{-1} b
            q, p, r = inv_one.sum(), inv_b.sum(), b[s] @ inv_b
            discriminant = p * p - q * (r - radius**2)
            if discriminant < 0:
                continue
            mu = np.sqrt(discriminant)
            level = (p + mu) / q
            w_s = (level * inv_one - inv_b) / mu
            if np.any(w_s < -1e-12 * np.abs(w_s).max()):
                continue
            direction = np.clip(w_s, 0, None) @ jacobian[s]
            update = mean + radius * direction / np.linalg.norm(direction)
            improvements = jacobian @ update
            if np.all(improvements >= level - 1e-9 * np.abs(improvements).max()) and (best is None or level > best[0]):
                best = (level, update)
    assert best is not None, "CAGrad: no support satisfies the optimality conditions"
    return best[1]


def cagrad_objective(jacobian: np.ndarray, update: np.ndarray) -> float:
    """CAGrad's objective, the worst task's first-order improvement ``min_i <g_i, d>``."""
    return float((jacobian @ update).min())


def imtl_g(jacobian: np.ndarray) -> np.ndarray:
    """Liu et al. 2021 (IMTL-G): ``d = sum_i a_i g_i`` with ``sum a = 1`` and equal projections
    ``<u_i, d>`` onto every unit task gradient. With ``b = a * |g|``, ``d = sum b_i u_i`` and
    the condition is ``C b = k 1``: ``b ~ C^+ 1``. Zero gradients take no weight; duplicated
    tasks share theirs equally (the minimum-norm b); where only ``k = 0`` solves it (exactly
    opposite tasks), ``|d|^2 = b^T C b = 0``."""
    live = norms(jacobian) > 0
    if not live.any():
        return np.zeros(jacobian.shape[1])
    cos, scale = cosines(jacobian[live])
    beta = np.linalg.lstsq(cos, np.ones(len(cos)), rcond=SINGULAR)[0]
    if np.abs(cos @ beta - 1).max() > 1e-6:  # C b = k 1 only for k = 0 (e.g. exactly opposite tasks): d = 0
        return np.zeros(jacobian.shape[1])
    alpha = beta / scale
    return (alpha / alpha.sum()) @ jacobian[live]


def projection_spread(jacobian: np.ndarray, update: np.ndarray) -> float:
    """IMTL-G's defining property: the spread of ``<u_i, d>`` over the non-zero tasks, relative."""
    live = norms(jacobian) > 0
    projections = (jacobian[live] / norms(jacobian[live])[:, None]) @ update
    return float((projections.max() - projections.min()) / np.abs(projections).mean())


def _newton(gradient_hessian, start: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Damped Newton's method for a strictly convex function on the positive orthant."""
    x = start
    for _ in range(iterations):
        gradient, hessian, value = gradient_hessian(x)
        scale = np.sqrt(np.diag(hessian))
        step = np.linalg.solve(hessian / np.outer(scale, scale), -gradient / scale) / scale
        t = 1.0
        while np.any(x + t * step <= 0) or gradient_hessian(x + t * step)[2] > value + 0.25 * t * (gradient @ step):
            t /= 2
            if t < 1e-20:
                return x
        x = x + t * step
        if abs(gradient @ step) < 1e-30:
            break
    return x


def nash_mtl(jacobian: np.ndarray) -> np.ndarray:
    """Navon et al. 2022: ``d = sum a_i g_i`` with ``G a = 1/a`` (the bargaining solution),
    the minimiser of ``a^T G a / 2 - sum log a_i``; with ``a = b / |g|`` that is
    ``C b = 1/b``, solved by Newton's method. Unclipped."""
    if np.any(norms(jacobian) == 0):
        raise Undefined("a zero task gradient has no bargaining solution (G a = 1/a has none)")
    cos, scale = cosines(jacobian)

    def gradient_hessian(beta):
        value = 0.5 * beta @ cos @ beta - np.log(beta).sum()
        return cos @ beta - 1 / beta, cos + np.diag(1 / beta**2), value

    beta = _newton(gradient_hessian, np.ones(len(cos)))
    return (beta / scale) @ jacobian


def bargaining_residual(jacobian: np.ndarray, update: np.ndarray, weights: np.ndarray) -> float:
    """Nash-MTL's defining condition ``a_i <g_i, d> = 1``: its worst relative violation."""
    return float(np.abs(weights * (jacobian @ update) - 1).max())


def fairgrad(jacobian: np.ndarray, alpha: float) -> np.ndarray:
    """Ban & Ji 2024: ``d = sum w_i g_i`` with ``G w = w^(-1/alpha)`` (alpha-fair utility), the
    minimiser of ``w^T G w / 2 - sum h(w_i)`` with ``h' = w^(-1/alpha)``, by Newton's method."""
    if np.any(norms(jacobian) == 0):
        raise Undefined("a zero task gradient has no alpha-fair solution")
    gramian = jacobian @ jacobian.T
    power = -1.0 / alpha

    def h(w):
        return np.log(w) if alpha == 1 else w ** (1 + power) / (1 + power)

    def gradient_hessian(w):
        value = 0.5 * w @ gramian @ w - h(w).sum()
        return gramian @ w - w**power, gramian + np.diag(-power * w ** (power - 1)), value

    start = 1 / norms(jacobian)  # the solution's scale when the gradients are orthogonal
    return _newton(gradient_hessian, start) @ jacobian


def _cone_projection_weights(gramian: np.ndarray, cos: np.ndarray, scale: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """``argmin_{v >= lower} v^T G v``: the weights of the projection of ``J^T lower`` onto the dual
    cone of the rows (Quinton & Rey 2024, Prop. 1), by enumerating the free set F: on F,
    ``G_FF v_F = -G_FB v_B``; optimal when ``v_F >= lower_F`` and ``(G v)_B >= 0``."""
    tasks = len(gramian)
    if tasks > ENUMERABLE:
        return active_set_search(tasks, (), lambda free: cone_step(cos, scale, lower, free))
    best: np.ndarray | None = None
    for size in range(tasks + 1):
        for free in itertools.combinations(range(tasks), size):
            f, b = list(free), [i for i in range(tasks) if i not in free]
            v = lower.copy()
            if f:
                # y = D v: C_FF y_F = -C_FB y_B
                y_b = scale[b] * lower[b]
                y_f = solve_equilibrated(cos[np.ix_(f, f)], -cos[np.ix_(f, b)] @ y_b)
                if y_f is None:
                    continue
                v[f] = y_f / scale[f]
                if np.any(v[f] < lower[f] - 1e-12 * np.abs(v).max()):
                    continue
            pressure = cos @ (scale * v)  # D^{-1} G v, against the size of its terms (G v = 0 when 0 is in the hull)
            optimal = np.all(pressure[b] >= -1e-9 * np.abs(scale * v).sum())
            if optimal and (best is None or v @ gramian @ v < best @ gramian @ best):
                best = v
    assert best is not None, "dual-cone projection: no free set satisfies the optimality conditions"
    return best


def cone_step(cos: np.ndarray, scale: np.ndarray, lower: np.ndarray, free: tuple[int, ...]) -> Step:
    """The dual-cone projection's KKT conditions on a free set F (those of the enumeration)."""
    tasks = len(cos)
    f, b = list(free), [i for i in range(tasks) if i not in free]
    v = lower.copy()
    if f:
        y_f = solve_equilibrated(cos[np.ix_(f, f)], -cos[np.ix_(f, b)] @ (scale[b] * lower[b]))
        if y_f is None:
            return None, None
        v[f] = y_f / scale[f]
        below = (v[f] - lower[f]) * scale[f]
        if np.any(below < -1e-12 * np.abs(scale * v).max()):
            return None, f[int(np.argmin(below))]
    pressure = cos @ (scale * v)  # D^{-1} G v
    if not b or np.all(pressure[b] >= -1e-9 * np.abs(scale * v).sum()):
        return v, None
    return None, b[int(np.argmin(pressure[b]))]


def _live_cosines(jacobian: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cos, scale = cosines(jacobian)
    live = norms(jacobian) > 0
    cos = cos + np.diag(np.where(live, 0.0, 1.0))  # a zero row constrains nothing: unit, uncoupled
    return jacobian @ jacobian.T, cos, scale


def cone_generators(jacobian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(R, M)``: the distinct non-zero task directions R (first occurrences) and ``J = M R``.
    Zero rows and positive multiples of a row leave the dual cone as it is, so the enumeration
    runs on R; ``J^T u = R^T (M^T u)``. Dependent directions are fine: the projection is unique
    and some optimal weights free only independent rows (a vertex of the optimal set), which
    the enumeration finds with its singular free sets skipped."""
    rows: list[np.ndarray] = []
    mixing = np.zeros((len(jacobian), len(jacobian)))
    for i, row in enumerate(jacobian):
        if not np.any(row):
            continue
        for k, kept in enumerate(rows):
            if row @ kept >= (1 - 1e-12) * np.linalg.norm(row) * np.linalg.norm(kept):
                mixing[i, k] = np.linalg.norm(row) / np.linalg.norm(kept)
                break
        else:
            mixing[i, len(rows)] = 1.0
            rows.append(row)
    if not rows:
        raise Undefined("every task gradient is zero")
    return np.array(rows), mixing[:, : len(rows)]


def upgrad(jacobian: np.ndarray) -> np.ndarray:
    """Quinton & Rey 2024: the mean of the projections of every task gradient onto the dual cone
    ``{x : <g_i, x> >= 0 for all i}`` (a zero gradient's projection is 0)."""
    generators, mixing = cone_generators(jacobian)
    gramian, cos, scale = _live_cosines(generators)
    tasks = len(jacobian)
    weights = sum(_cone_projection_weights(gramian, cos, scale, mixing[i] / tasks) for i in range(tasks))
    return weights @ generators


def dualproj(jacobian: np.ndarray) -> np.ndarray:
    """Quinton & Rey 2024 (after GEM, Lopez-Paz & Ranzato 2017): the mean gradient projected onto
    the dual cone of the task gradients."""
    generators, mixing = cone_generators(jacobian)
    gramian, cos, scale = _live_cosines(generators)
    return _cone_projection_weights(gramian, cos, scale, mixing.mean(axis=0)) @ generators


def pcgrad_two_tasks(jacobian: np.ndarray) -> np.ndarray:
    """Yu et al. 2020 for T = 2: each gradient loses its component along the other when they
    conflict; the two are summed (no random order matters with two tasks)."""
    g1, g2 = jacobian
    dot = g1 @ g2
    if dot >= 0:
        return g1 + g2
    return (g1 - dot / (g2 @ g2) * g2) + (g2 - dot / (g1 @ g1) * g1)


def aligned_mtl(jacobian: np.ndarray) -> np.ndarray:
    """Senushkin et al. 2023: the task gradients replaced by the closest system with condition
    number 1, ``s_min U V^T`` for ``J = U S V^T`` (non-zero singular values only), then averaged
    (torchjd's 1/T; the paper sums). Computed from the SVD of J, not from its Gramian."""
    left, singular, right = np.linalg.svd(jacobian, full_matrices=False)
    rank = int((singular > singular.max() * SINGULAR).sum())  # float64 noise is ~1e-15 of the largest
    if rank == 0:
        return np.zeros(jacobian.shape[1])
    aligned = singular[rank - 1] * left[:, :rank] @ right[:rank]
    return aligned.mean(axis=0)


def gradvac(jacobian: np.ndarray, targets: np.ndarray, orders: list[list[int]], beta: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Wang et al. 2021 (Algorithm 1, on the whole gradient): each task i visits the others j in
    ``orders[i]``; with ``phi`` the cosine of g_i (as altered so far) and g_j and ``t`` the
    pair's target, where ``phi < t``, ``g_i += |g_i| (t sqrt(1 - phi^2) - phi sqrt(1 - t^2)) /
    (|g_j| sqrt(1 - t^2)) g_j`` (Eq. 3); every pair's target then moves to ``(1 - beta) t + beta phi``.
    Returns the sum of the altered gradients and the new targets (``targets`` is left as it is)."""
    if np.any(norms(jacobian) == 0):
        raise Undefined("the cosine with a zero gradient is undefined")
    targets = targets.copy()
    altered = []
    for i, order in enumerate(orders):
        g_i = jacobian[i].copy()
        for j in order:
            g_j = jacobian[j]
            if np.linalg.norm(g_i) <= 1e-12 * np.linalg.norm(jacobian[i]):
                raise Undefined("an altered gradient vanished (exactly opposite tasks): its cosine is undefined")
            phi = (g_i @ g_j) / (np.linalg.norm(g_i) * np.linalg.norm(g_j))
            t = targets[i, j]
            if phi < t:
                coefficient = (t * np.sqrt(1 - phi**2) - phi * np.sqrt(1 - t**2)) / np.sqrt(1 - t**2)
                g_i = g_i + coefficient * np.linalg.norm(g_i) / np.linalg.norm(g_j) * g_j
            targets[i, j] = (1 - beta) * t + beta * phi
        altered.append(g_i)
    return np.sum(altered, axis=0), targets
