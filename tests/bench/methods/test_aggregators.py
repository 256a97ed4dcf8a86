"""Property tests over every gradient aggregator (TorchJD style) and a table of expected outputs."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from mtlbench.bench.run.methods import GRADIENT_AGGREGATORS, MGDA, GradientAggregator

warnings.filterwarnings("ignore", message=".*not DPP.*")

IDS = [cls.__name__ for cls in GRADIENT_AGGREGATORS]


def bound(cls: type[GradientAggregator], num_tasks: int = 3) -> GradientAggregator:
    method = cls()
    method.bind(num_tasks)
    return method


def conflicting_jacobian(seed: int = 0, num_tasks: int = 3, dim: int = 12) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    jacobian = torch.randn(num_tasks, dim, generator=generator)
    jacobian[1] = -0.8 * jacobian[0] + 0.3 * torch.randn(dim, generator=generator)  # a real conflict
    return jacobian


@pytest.mark.parametrize("cls", GRADIENT_AGGREGATORS, ids=IDS)
@pytest.mark.parametrize(
    "case",
    ["zero", "huge", "tiny", "rank_deficient", "one_zero_row"],
)
def test_output_is_finite(cls, case):
    torch.manual_seed(0)
    base = conflicting_jacobian()
    jacobian = {
        "zero": torch.zeros(3, 12),
        "huge": base * 1e10,
        "tiny": base * 1e-10,
        "rank_deficient": torch.stack([base[0], base[0], 2 * base[0]]),
        "one_zero_row": torch.stack([base[0], torch.zeros(12), base[2]]),
    }[case]
    out = bound(cls)(jacobian, torch.ones(3))
    assert out.shape == (12,)
    assert torch.isfinite(out).all(), f"{cls.__name__} on {case}: {out}"


SYMMETRIC = [c for c in GRADIENT_AGGREGATORS if not c.randomized and not c.priority_ordered]


@pytest.mark.parametrize("cls", SYMMETRIC, ids=[c.__name__ for c in SYMMETRIC])
def test_permuting_tasks_permutes_nothing_else(cls):
    jacobian, losses = conflicting_jacobian(1), torch.tensor([0.5, 1.0, 2.0])
    reference = bound(cls)(jacobian, losses)
    for permutation in itertools.permutations(range(3)):
        index = torch.tensor(permutation)
        permuted = bound(cls)(jacobian[index], losses[index])
        torch.testing.assert_close(permuted, reference, atol=2e-4, rtol=2e-3)


@pytest.mark.parametrize(
    "cls", [c for c in GRADIENT_AGGREGATORS if c.non_conflicting], ids=[c.__name__ for c in GRADIENT_AGGREGATORS if c.non_conflicting]
)
@pytest.mark.parametrize("seed", range(5))
def test_claimed_non_conflicting_update(cls, seed):
    jacobian = conflicting_jacobian(seed)
    update = bound(cls)(jacobian, torch.ones(3))
    tolerance = 1e-3 * jacobian.norm(dim=1) * update.norm()
    assert (jacobian @ update >= -tolerance).all(), f"{cls.__name__}: dots {jacobian @ update}"


def test_mgda_returns_the_min_norm_point_of_the_convex_hull():
    for seed in range(3):
        jacobian = conflicting_jacobian(seed, num_tasks=3, dim=5)
        update = MGDA()
        update.bind(3)
        found = update(jacobian, torch.ones(3))
        # brute force over a fine grid of the simplex
        steps = torch.linspace(0, 1, 201)
        best = float("inf")
        for a in steps:
            b = steps[steps <= 1 - a + 1e-9]
            weights = torch.stack([a.expand_as(b), b, 1 - a - b], dim=1)
            best = min(best, (weights @ jacobian).norm(dim=1).min().item())
        assert found.norm().item() <= best + 1e-3
        # and the result lies in the hull: non-negative weights summing to one reproduce it
        solution = torch.linalg.lstsq(torch.cat([jacobian.T, torch.ones(1, 3)]), torch.cat([found, torch.ones(1)])).solution
        assert (solution > -1e-2).all()


def test_mgda_two_tasks_closed_form():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 1.0])
    weight = ((g2 - g1) @ g2 / (g1 - g2).norm() ** 2).clamp(0, 1)
    expected = weight * g1 + (1 - weight) * g2
    method = MGDA()
    method.bind(2)
    torch.testing.assert_close(method(torch.stack([g1, g2]), torch.ones(2)), expected, atol=1e-4, rtol=1e-4)


def test_non_conflicting_gradients_are_left_to_the_mean_by_upgrad():
    from mtlbench.bench.run.methods import UPGrad

    jacobian = torch.tensor([[1.0, 0.2, 0.0], [0.8, 1.0, 0.1]])
    method = UPGrad()
    method.bind(2)
    torch.testing.assert_close(method(jacobian, torch.ones(2)), jacobian.mean(0), atol=1e-4, rtol=1e-4)


# Outputs on one fixed Jacobian, recorded from this implementation: a silent change in any
# method (or in the torchjd version it wraps) shows up here.
FIXED_JACOBIAN = torch.tensor([[1.0, 0.0, 0.5], [-0.6, 0.8, 0.0], [0.2, 0.3, 1.5]])
FIXED_LOSSES = torch.tensor([0.5, 1.0, 2.0])
EXPECTED = {
    "MGDA": [0.142, 0.429, 0.2319],  # exact QP; torchjd's Frank-Wolfe stops at [0.1407, 0.4283, 0.2482]
    "CAGrad": [0.1024, 0.6595, 0.7277],
    "NashMTL": [0.2003, 0.6924, 0.6931],
    "AlignedMTL": [0.0936, 0.2181, 0.1652],
    "IMTLG": [0.1874, 0.4165, 0.1187],
    "GradVac": [0.72, 1.58, 2.24],
    "UPGrad": [0.24, 0.5266, 0.7466],
    "DualProj": [0.2, 0.3667, 0.6667],  # the mean: it conflicts with no row, so nothing to project
    "FairGrad": [0.3469, 1.1993, 1.2005],
    "ConFIG": [0.6801, 1.5113, 0.4309],
    "ExcessMTL": [0.2214, 0.3429, 0.8366],
    "DualBalancing": [0.0948, 0.2224, 0.3174],
    "PCD": [0.7424, 0.5899, 0.5924],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_outputs_on_a_fixed_jacobian(name):
    cls = next(c for c in GRADIENT_AGGREGATORS if c.__name__ == name)
    torch.manual_seed(0)  # GradVac visits tasks in a random order
    out = bound(cls)(FIXED_JACOBIAN, FIXED_LOSSES)
    torch.testing.assert_close(out, torch.tensor(EXPECTED[name]), atol=2e-3, rtol=2e-3)


GATHERED = {"GradDrop", "ExcessMTL", "ConFIG", "DualBalancing"}  # not of the form J^T w(J J^T)


@pytest.mark.parametrize("cls", GRADIENT_AGGREGATORS, ids=IDS)
def test_weights_from_the_gramian_give_the_update(cls):
    """What DDP in feature space relies on: w(J J^T) @ J equals the method's update, over several
    steps for stateful methods, with the same draws for randomised ones."""
    by_matrix, by_gramian = bound(cls), bound(cls)
    for step in range(3):
        jacobian, losses = conflicting_jacobian(step), torch.tensor([0.5, 1.0, 2.0])
        with torch.random.fork_rng():
            torch.manual_seed(step)
            expected = by_matrix(jacobian, losses)
        with torch.random.fork_rng():
            torch.manual_seed(step)
            weights = by_gramian.weights_from_gramian(jacobian @ jacobian.T, losses)
        if cls.__name__ in GATHERED:
            assert weights is None
            return
        assert weights is not None and weights.shape == (3,)
        torch.testing.assert_close(weights.to(jacobian.dtype) @ jacobian, expected, rtol=1e-4, atol=1e-5)


def test_a_zero_gramian_gives_no_update():
    from mtlbench.bench.run.methods import UPGrad

    assert bound(UPGrad).weights_from_gramian(torch.zeros(3, 3), torch.ones(3)).abs().sum() == 0


UNWEIGHTED = {"GradDrop", "ConFIG", "DualBalancing"}  # their update is not w @ J


@pytest.mark.parametrize("cls", GRADIENT_AGGREGATORS, ids=IDS)
def test_reported_weights_combine_the_jacobian_into_the_update(cls):
    """``weights`` replaces ``forward`` in the training step (it reports them, refresh_every reuses them)."""
    assert cls.weighted.fget(bound(cls)) == (cls.__name__ not in UNWEIGHTED)
    if cls.__name__ in UNWEIGHTED:
        return
    for seed in range(3):
        jacobian, losses = conflicting_jacobian(seed), torch.rand(3, generator=torch.Generator().manual_seed(seed)) + 0.5
        method, twin = bound(cls), bound(cls)
        for _ in range(2):  # stateful methods advance alike
            torch.manual_seed(seed)
            expected = method(jacobian, losses)
            torch.manual_seed(seed)
            weights = twin.weights(jacobian, losses)
            assert weights.shape == (3,)
            torch.testing.assert_close(weights.to(jacobian.dtype) @ jacobian, expected, atol=1e-6, rtol=1e-5)
