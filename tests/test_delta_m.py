"""Delta_m on hand-worked examples, both weightings and both metric directions."""

import pytest

from mtlbench.leaderboards.delta_m import delta_m, relative_changes

UP = {"miou": True, "pix_acc": True, "abs_err": False, "rel_err": False, "mean_angle": False}


def test_a_better_model_has_negative_delta_m_for_both_directions():
    base = {"miou": 0.40, "abs_err": 0.50}
    assert delta_m({"miou": 0.50, "abs_err": 0.40}, base, UP) == pytest.approx((-25.0 - 20.0) / 2)
    assert delta_m({"miou": 0.30, "abs_err": 0.60}, base, UP) == pytest.approx((25.0 + 20.0) / 2)
    assert delta_m(base, base, UP) == 0.0


def test_metric_and_task_weighting_differ_when_tasks_have_different_metric_counts():
    # NYUv2-like: segmentation has 2 metrics, depth 2, normals 1
    base = {"miou": 0.40, "pix_acc": 0.60, "abs_err": 0.50, "rel_err": 0.20, "mean_angle": 25.0}
    model = {"miou": 0.42, "pix_acc": 0.63, "abs_err": 0.55, "rel_err": 0.21, "mean_angle": 20.0}
    # relative changes: miou -5, pix_acc -5, abs_err +10, rel_err +5, mean_angle -20
    assert relative_changes(model, base, UP) == pytest.approx({"miou": -5, "pix_acc": -5, "abs_err": 10, "rel_err": 5, "mean_angle": -20})
    assert delta_m(model, base, UP) == pytest.approx(-15 / 5)
    tasks = {"miou": "seg", "pix_acc": "seg", "abs_err": "depth", "rel_err": "depth", "mean_angle": "normal"}
    assert delta_m(model, base, UP, task_of=tasks) == pytest.approx((-5 + 7.5 - 20) / 3)


def test_published_nyuv2_stl_vector_against_itself_and_a_uniform_gain():
    # CAGrad's NYUv2 single-task vector (percentages as printed), PROTOCOL.md
    stl = {"miou": 38.30, "pix_acc": 63.76, "abs_err": 0.6754, "rel_err": 0.2780, "mean_angle": 25.01}
    assert delta_m(stl, stl, UP) == 0.0
    improved = {k: v * (1.1 if UP[k] else 0.9) for k, v in stl.items()}
    assert delta_m(improved, stl, UP) == pytest.approx(-10.0)


@pytest.mark.parametrize(
    ("model", "base", "up", "message"),
    [
        ({"miou": 0.5}, {}, UP, "metric 'miou' has no baseline value"),
        ({"iou": 0.5}, {"iou": 0.4}, UP, "metric 'iou' has no direction"),
        ({"miou": 0.5}, {"miou": 0.0}, UP, "baseline of 'miou' is 0"),
        ({}, {}, UP, "no metrics given"),
    ],
)
def test_bad_input_is_named(model, base, up, message):
    with pytest.raises(ValueError, match=message):
        delta_m(model, base, up)
