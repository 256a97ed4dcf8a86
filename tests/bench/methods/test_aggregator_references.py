"""Every Gramian-based aggregator against a float64 reference written from its paper
(:mod:`tests.bench.methods.references`), at any task scale.

Cases: random task gradients with norm ratios 1 to 10^6 (T = 2, 3, 5, 10, 20), correlated ones
(T = 10, 20 at 10^6), all norms near 10^-6 or 10^6, nearly parallel (cos 0.9999), nearly opposite
(cos -0.99), and the degenerate ones, exact in float32 (:func:`degenerate_cases`): duplicated,
exactly opposite and zero task gradients, Pareto-stationary tasks, more tasks than dimensions.
The Jacobian is float32, as in training; the reference sees the same numbers in float64. Both
paths a method is called by are checked: ``forward(J)`` and the training step's ``combine``
(weights from the Gramian, then ``w @ J``), each after seeding torch's global generator.

``python -m tests.bench.methods.test_aggregator_references`` prints, per method, the worst
relative error ``|d - d_ref| / |d_ref|`` over all cases.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mtlbench.bench.run.jacobian import combine
from mtlbench.bench.run.methods import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    DualProj,
    FairGrad,
    GradientAggregator,
    GradVac,
    NashMTL,
    PCGrad,
    UPGrad,
)
from tests.bench.methods import references as ref

warnings.filterwarnings("ignore", message=".*not DPP.*")

WIDTH = 1000


def _directions(tasks: int, generator: torch.Generator) -> torch.Tensor:
    rows = torch.randn(tasks, WIDTH, generator=generator, dtype=torch.float64)
    return rows / rows.norm(dim=1, keepdim=True)


def _with_norms(rows: torch.Tensor, norms: list[float]) -> torch.Tensor:
    return (rows * torch.tensor(norms, dtype=torch.float64)[:, None]).float()


def _pair_at(cosine: float, generator: torch.Generator) -> torch.Tensor:
    base = _directions(2, generator)
    other = base[1] - (base[1] @ base[0]) * base[0]
    other = other / other.norm()
    return torch.stack([base[0], cosine * base[0] + math.sqrt(1 - cosine**2) * other])


def _integer_rows(count: int, generator: torch.Generator) -> torch.Tensor:
    """Random rows of small integers: their sums, differences and power-of-two multiples are exact
    in float32, so a dependence built from them is exact in the Jacobian the methods see."""
    return torch.randint(-64, 65, (count, WIDTH), generator=generator).double()


def _powers_of_two(count: int, ratio: float) -> torch.Tensor:
    return 2.0 ** torch.linspace(0, round(math.log2(ratio)), count).round()[:, None].double()


def jacobian_cases() -> dict[str, torch.Tensor]:
    """The float32 Jacobians of the battery, by name."""
    cases: dict[str, torch.Tensor] = {}
    for tasks in (2, 3, 5, 10, 20):
        for ratio in (1.0, 1e2, 1e4, 1e6):
            generator = torch.Generator().manual_seed(tasks * 100 + int(math.log10(ratio)))
            spread = np.logspace(0, math.log10(ratio), tasks).tolist()
            cases[f"T{tasks}-ratio{ratio:.0e}"] = _with_norms(_directions(tasks, generator), spread)
    # directions drawn in tasks + 2 dimensions: cosines far from 0, so the Gramian is far from diagonal
    # (draws on which LAPACK's eigh loses the smallest eigenvalues at this ratio)
    for tasks, seed in ((10, 6), (20, 20)):
        generator = torch.Generator().manual_seed(seed)
        mixed = torch.randn(tasks, tasks + 2, generator=generator, dtype=torch.float64) @ _directions(tasks + 2, generator)
        cases[f"T{tasks}-correlated-ratio1e+06"] = _with_norms(mixed / mixed.norm(dim=1, keepdim=True), np.logspace(0, 6, tasks).tolist())
    for tasks in (3, 5):  # one task 1.01 x 10^4 times larger: the others are 9.9e-5 of the Frobenius norm
        generator = torch.Generator().manual_seed(7 + tasks)
        cases[f"T{tasks}-one-large"] = _with_norms(_directions(tasks, generator), [1.0] * (tasks - 1) + [1.01e4])
    for scale in (1e-6, 1e6):  # the whole problem small or large: no threshold may be absolute
        generator = torch.Generator().manual_seed(5)
        cases[f"T3-scaled{scale:.0e}"] = _with_norms(_directions(3, generator), [scale, 3 * scale, 0.5 * scale])
    generator = torch.Generator().manual_seed(11)
    third = _directions(1, generator)
    cases["T3-parallel"] = _with_norms(torch.cat([_pair_at(0.9999, generator), third]), [1.0, 3.0, 2.0])
    cases["T2-opposite"] = _with_norms(_pair_at(-0.99, generator), [1.0, 2.0])
    cases["T3-opposite-ratio1e4"] = _with_norms(torch.cat([_pair_at(-0.99, generator), third]), [1.0, 1e2, 1e4])
    rows = _directions(3, generator)
    cases["T3-duplicated"] = _with_norms(torch.stack([rows[0], rows[1], rows[0]]), [1.0, 2.0, 1.0])
    cases["T3-zero-task"] = _with_norms(torch.stack([rows[0], rows[1], torch.zeros(WIDTH, dtype=torch.float64)]), [1.0, 2.0, 0.0])
    cases.update(degenerate_cases())
    return cases


def degenerate_cases() -> dict[str, torch.Tensor]:
    """Jacobians where a solver has no clean answer, each exactly so in float32: duplicated,
    exactly opposite or zero task gradients, Pareto-stationary tasks (0 in the convex hull of
    the gradients), more tasks than dimensions; norm ratios 2^20 ~ 10^6 (powers of two)."""
    generator = torch.Generator().manual_seed(13)
    u, v, w = _integer_rows(3, generator)
    zero = torch.zeros(WIDTH, dtype=torch.float64)
    big = 2.0**20
    found = {
        "T2-exactly-opposite": torch.stack([u, -u]),
        "T2-exactly-opposite-ratio1e+06": torch.stack([u, -big * u]),
        "T3-exactly-opposite-and-third": torch.stack([u, -2 * u, v]),
        "T3-stationary": torch.stack([u, v, -(u + v)]),
        "T4-duplicated-ratio1e+06": torch.stack([u, 2.0**10 * v, big * w, big * w]),
        "T3-zero-task-ratio1e+06": torch.stack([u, big * v, zero]),
        "T3-two-zero-tasks": torch.stack([u, zero, zero]),
    }
    # more tasks than the dimensions they span: positive mixtures of the directions keep 0 out of
    # the hull; mixtures of either sign put it in (Pareto-stationary)
    for tasks, rank, ratio, low, kind in ((5, 3, 1e6, 1, ""), (20, 10, 1e4, 1, ""), (20, 10, 1e4, -3, "-stationary")):
        mixing = torch.randint(low, 4, (tasks, rank), generator=generator).double()
        found[f"T{tasks}-rank{rank}{kind}-ratio{ratio:.0e}"] = _powers_of_two(tasks, ratio) * (mixing @ _integer_rows(rank, generator))
    return {name: jacobian.float() for name, jacobian in found.items()}


SEED = 0  # torch's global generator is seeded with it before every call of a method (GradVac's order)


def visiting_orders(tasks: int) -> list[list[int]]:
    """The order in which GradVac visits the other tasks, drawn as it draws them after ``SEED``."""
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        orders = []
        for i in range(tasks):
            others = [j for j in range(tasks) if j != i]
            orders.append([others[k] for k in torch.randperm(tasks - 1).tolist()])
    return orders


def preset_targets(tasks: int) -> np.ndarray:
    """GradVac targets between -0.5 and 0.8, as after earlier steps: most pairs are altered."""
    return np.linspace(-0.5, 0.8, tasks * tasks).reshape(tasks, tasks)


class GradVacWithTargets(GradVac):
    """GradVac whose targets start at :func:`preset_targets` instead of 0."""

    def bind(self, num_tasks: int) -> None:
        super().bind(num_tasks)
        self.load_state_values({"phi": torch.from_numpy(preset_targets(num_tasks))})


@dataclass(frozen=True)
class Checked:
    """One aggregator of the battery: how to build it and its float64 reference."""

    build: Callable[[], GradientAggregator]
    reference: Callable[[np.ndarray], np.ndarray]
    tolerance: float  # worst relative error |d - d_ref| / |d_ref| allowed (measured, with margin)
    tasks: tuple[int, ...] = (2, 3, 5, 10, 20)
    left_out: tuple[str, ...] = ()  # degenerate cases the method does not meet yet


# degenerate cases some methods do not meet yet (their answer there is being defined), left out for them
PARETO_STATIONARY = (
    "T2-exactly-opposite",
    "T2-exactly-opposite-ratio1e+06",
    "T3-exactly-opposite-and-third",
    "T3-stationary",
    "T20-rank10-stationary-ratio1e+04",
)
MORE_TASKS_THAN_RANK = ("T3-exactly-opposite-and-third", "T3-stationary", "T5-rank3-ratio1e+06", "T20-rank10-ratio1e+04")

CHECKED: dict[str, Checked] = {
    "MGDA": Checked(MGDA, ref.mgda, 1e-6),
    "CAGrad": Checked(CAGrad, lambda j: ref.cagrad(j, 0.4), 1e-6, tasks=(2, 3, 5, 10)),  # its reference enumerates 2^T supports
    "IMTL-G": Checked(IMTLG, ref.imtl_g, 1e-6),
    "Nash-MTL": Checked(lambda: NashMTL(max_norm=0.0), ref.nash_mtl, 1e-6, left_out=PARETO_STATIONARY),
    "UPGrad": Checked(UPGrad, ref.upgrad, 1e-6),
    "DualProj": Checked(DualProj, ref.dualproj, 1e-6),
    "Aligned-MTL": Checked(AlignedMTL, ref.aligned_mtl, 3e-6),  # 1.2e-6 with cos 0.9999: w @ J in float32
    "FairGrad-2": Checked(lambda: FairGrad(alpha=2.0), lambda j: ref.fairgrad(j, 2.0), 1e-6, left_out=PARETO_STATIONARY),
    "PCGrad": Checked(PCGrad, ref.pcgrad_two_tasks, 1e-6, tasks=(2,)),
    "GradVac": Checked(GradVac, lambda j: ref.gradvac(j, np.zeros((len(j), len(j))), visiting_orders(len(j)))[0], 1e-6),
    "GradVac-targets": Checked(GradVacWithTargets, lambda j: ref.gradvac(j, preset_targets(len(j)), visiting_orders(len(j)))[0], 1e-6),
}


@functools.cache
def cases() -> dict[str, torch.Tensor]:
    return jacobian_cases()


@functools.cache
def method_updates(name: str) -> dict[str, dict[str, torch.Tensor]]:
    """``{case: {path: update}}`` of a method of ``CHECKED`` over its cases, computed once."""
    checked = CHECKED[name]
    return {
        case: updates(checked.build, jacobian)
        for case, jacobian in cases().items()
        if len(jacobian) in checked.tasks and case not in checked.left_out
    }


def updates(build: Callable[[], GradientAggregator], jacobian: torch.Tensor) -> dict[str, torch.Tensor]:
    """The update by ``forward(J)`` and by the training step's path, each from a fresh method."""
    losses = torch.ones(len(jacobian))
    found = {}
    for path in ("forward", "training"):
        method = build()
        method.bind(len(jacobian))
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
            found[path] = method(jacobian, losses) if path == "forward" else combine(method, jacobian, losses)[0]
    return found


def relative_error(update: torch.Tensor, reference: np.ndarray, jacobian: torch.Tensor | None = None) -> float:
    """``|d - d_ref| / |d_ref|``; where ``d_ref`` is zero (below 10^-10 of the largest task gradient
    of ``jacobian``, float64 rounding), relative to that gradient instead."""
    scale = float(np.linalg.norm(reference))
    largest = 0.0 if jacobian is None else float(jacobian.double().norm(dim=1).max())
    if scale <= 1e-10 * largest:
        scale = largest
    return float(np.linalg.norm(update.double().numpy() - reference) / (scale if scale > 0 else 1.0))


def errors(name: str) -> dict[str, float]:
    """Worst relative error of ``name`` over its paths, per case (``nan`` where undefined)."""
    found: dict[str, float] = {}
    for case, paths in method_updates(name).items():
        try:
            reference = CHECKED[name].reference(cases()[case].double().numpy())
        except ref.Undefined:
            continue
        found[case] = max(relative_error(update, reference, cases()[case]) for update in paths.values())
    return found


@pytest.mark.parametrize("name", list(CHECKED))
def test_aggregator_equals_its_float64_reference_in_every_case(name):
    measured = errors(name)
    worst = max(measured, key=measured.get)
    assert measured[worst] <= CHECKED[name].tolerance, f"{name}: {measured[worst]:.2e} on {worst} ({measured})"


@pytest.mark.parametrize("name", list(CHECKED))
def test_aggregator_update_is_finite_where_its_paper_defines_none(name):
    for case, paths in method_updates(name).items():
        for path, update in paths.items():
            assert bool(torch.isfinite(update).all()), f"{name} on {case}, {path}: {update}"


@pytest.mark.parametrize("case", ["T5-ratio1e+06", "T10-ratio1e+04", "T10-ratio1e+06", "T5-rank3-ratio1e+06"])
def test_reference_active_set_search_finds_the_enumerated_optimum(case):
    jacobian = cases()[case].double().numpy()
    tasks = len(jacobian)
    cos, scale = ref.cosines(jacobian)
    searched = ref.active_set_search(tasks, (), lambda support: ref.mgda_step(jacobian, cos, scale, support))
    np.testing.assert_allclose(searched, ref.mgda(jacobian), rtol=0, atol=1e-12 * np.abs(jacobian).max())
    if case != "T5-rank3-ratio1e+06":  # the cone enumeration needs independent gradients
        lower = np.full(tasks, 1 / tasks)
        weights = ref.active_set_search(tasks, (), lambda free: ref.cone_step(cos, scale, lower, free))
        np.testing.assert_allclose(weights @ jacobian, ref.dualproj(jacobian), rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", ["T3-ratio1e+06", "T10-ratio1e+04", "T20-ratio1e+06"])
def test_gradvac_moves_its_targets_as_the_paper(case):
    jacobian = cases()[case]
    tasks = len(jacobian)
    method = GradVacWithTargets()
    method.bind(tasks)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        combine(method, jacobian, torch.ones(tasks))
    _, targets = ref.gradvac(jacobian.double().numpy(), preset_targets(tasks), visiting_orders(tasks))
    found = method.state_values()["phi"]
    assert isinstance(found, torch.Tensor)
    off_diagonal = ~np.eye(tasks, dtype=bool)
    np.testing.assert_allclose(found.numpy()[off_diagonal], targets[off_diagonal], rtol=0, atol=1e-7)


def test_mgda_puts_every_weight_on_a_zero_task_whatever_the_other_scales():
    method = MGDA()
    method.bind(3)
    weights = method.weights(cases()["T3-zero-task-ratio1e+06"], torch.ones(3))  # its ridge gave the 1e-6 task 0.5
    assert weights.tolist() == [0.0, 0.0, 1.0]


def ratio_cases(ratio: float) -> dict[str, torch.Tensor]:
    return {name: jacobian for name, jacobian in jacobian_cases().items() if name.split("-", 1)[1] == f"ratio{ratio:.0e}"}


@pytest.mark.parametrize("case", list(ratio_cases(1e6)))
def test_imtl_g_projects_equally_onto_every_task_at_a_norm_ratio_of_a_million(case):
    jacobian = ratio_cases(1e6)[case]
    for path, update in updates(IMTLG, jacobian).items():
        spread = ref.projection_spread(jacobian.double().numpy(), update.double().numpy())
        assert spread < 1e-5, f"{case}, {path}: projections spread by {spread:.2e}"


@pytest.mark.parametrize("tasks", [3, 5])
def test_cagrad_updates_where_the_small_tasks_are_below_its_old_absolute_threshold(tasks):
    jacobian = jacobian_cases()[f"T{tasks}-one-large"]  # torchjd's norm_eps 1e-4 zeroed this update
    reference = ref.cagrad(jacobian.double().numpy(), 0.4)
    for path, update in updates(CAGrad, jacobian).items():
        assert update.norm() > 0.1 * np.linalg.norm(reference), path
        assert relative_error(update, reference) < 1e-6, path
        worst = ref.cagrad_objective(jacobian.double().numpy(), update.double().numpy())
        assert worst >= ref.cagrad_objective(jacobian.double().numpy(), reference) * (1 - 1e-5), path


@pytest.mark.parametrize("case", ["T3-ratio1e+04", "T5-ratio1e+04", "T3-opposite-ratio1e4", "T10-ratio1e+06"])
def test_nash_mtl_training_path_is_forward_and_meets_the_bargaining_condition_unclipped(case):
    jacobian = jacobian_cases()[case]
    found = updates(lambda: NashMTL(max_norm=0.0), jacobian)
    torch.testing.assert_close(found["training"], found["forward"], rtol=0, atol=0)
    method = NashMTL(max_norm=0.0)
    method.bind(len(jacobian))
    weights = method.weights(jacobian, torch.ones(len(jacobian))).numpy()
    residual = ref.bargaining_residual(jacobian.double().numpy(), weights @ jacobian.double().numpy(), weights)
    assert residual < 1e-12, f"alpha_i <g_i, d> - 1 off by {residual:.2e}"  # measured 7e-14 at most


def test_nash_mtl_clips_the_bargaining_update_to_max_norm():
    jacobian = jacobian_cases()["T3-ratio1e+04"]
    reference = ref.nash_mtl(jacobian.double().numpy())
    for update in updates(NashMTL, jacobian).values():  # max_norm 1
        assert relative_error(update, reference / np.linalg.norm(reference)) < 1e-6


@pytest.mark.parametrize("name", ["UPGrad", "DualProj", "MGDA", "Nash-MTL"])
def test_non_conflicting_methods_conflict_with_no_task_at_any_scale(name):
    for case, paths in method_updates(name).items():
        jacobian = cases()[case]
        for update in paths.values():
            if update.double().norm() <= 1e-6 * jacobian.double().norm(dim=1).max():
                continue  # the update is 0 to float32 rounding (Pareto-stationary tasks): it conflicts with nothing
            dots = jacobian.double() @ update.double()
            tolerance = 1e-6 * jacobian.double().norm(dim=1) * update.double().norm()
            assert bool((dots >= -tolerance).all()), f"{name} on {case}: {dots.tolist()}"


def main() -> None:
    print("| method | worst relative error | on | cases |")
    print("|---|---|---|---|")
    for name in CHECKED:
        measured = errors(name)
        worst = max(measured, key=measured.get)
        print(f"| {name} | {measured[worst]:.1e} | {worst} | {len(measured)} |")


if __name__ == "__main__":
    main()
