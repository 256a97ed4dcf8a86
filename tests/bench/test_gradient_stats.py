"""Each gradient statistic on hand-made gradients with known answers."""

import math

import pytest
import torch

from mtlbench.bench.run import gradient_stats as gs


def test_cosine_and_conflicts_on_known_vectors():
    grads = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    assert gs.cosine_similarity(grads).tolist() == pytest.approx([0.0, -1.0, 0.0])


def test_magnitude_similarity_is_one_for_equal_norms_and_small_for_different_ones():
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0], [100.0, 0.0]])
    values = gs.magnitude_similarity(grads)
    assert values[0] == pytest.approx(1.0)
    assert values[1] == pytest.approx(2 * 100 / (1 + 100**2))


def test_sign_conflict_fraction_ignores_zero_coordinates():
    grads = torch.tensor([[1.0, 2.0, 0.0, -1.0], [-1.0, 3.0, 4.0, -2.0]])
    assert gs.conflicting_coordinates(grads).item() == pytest.approx(1 / 3)


def test_condition_number_of_orthogonal_equal_and_rank_deficient_gradients():
    assert gs.gram_condition_number(torch.eye(3)).item() == pytest.approx(1.0)
    assert gs.gram_condition_number(torch.tensor([[3.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(9.0)
    assert math.isinf(gs.gram_condition_number(torch.tensor([[1.0, 1.0], [2.0, 2.0]])).item())


def test_update_cosine_flags_a_hurt_task():
    grads = torch.tensor([[1.0, 0.0], [-1.0, 0.1]])
    assert (gs.cosine_to(grads, torch.tensor([1.0, 0.0])) < 0).tolist() == [False, True]


def test_realised_weights_recover_a_linear_combination():
    grads = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    weights, residual = gs.realised_weights(grads, 0.25 * grads[0] + 2.0 * grads[1])
    assert weights.tolist() == pytest.approx([0.25, 2.0], abs=1e-5)
    assert residual.item() == pytest.approx(0.0, abs=1e-6)
    _, residual = gs.realised_weights(grads, torch.tensor([1.0, 0.0, 0.0]))  # outside the span
    assert residual.item() > 0.1


def test_principal_angles_of_equal_orthogonal_and_tilted_subspaces():
    plane = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert gs.principal_angle_cosines(plane, 3 * plane).tolist() == pytest.approx([1.0, 1.0])
    assert gs.principal_angle_cosines(plane[:1], torch.tensor([[0.0, 0.0, 1.0]])).tolist() == pytest.approx([0.0], abs=1e-7)
    assert gs.principal_angle_cosines(plane, torch.tensor([[1.0, 0.0, 1.0]])).tolist() == pytest.approx([math.sqrt(0.5)])


def test_summary_statistics():
    summary = gs.summarise([*range(101), float("inf")])
    assert summary["mean"] == pytest.approx(50.0) and summary["n"] == 101 and summary["non_finite"] == 1
    assert summary["p2_5"] == pytest.approx(2.5) and summary["p97_5"] == pytest.approx(97.5)
