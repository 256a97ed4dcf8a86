"""The run record's optional ``task_affinity`` section: a well-formed one passes, and each way of
getting it wrong is refused with a reason naming the field."""

from __future__ import annotations

import json
import re

import pytest

from mtlbench.leaderboards.schema import RecordError, validate_record
from tests.leaderboards.fixture_runs import record

TASKS = ["segmentation", "depth", "normal"]


def with_affinity() -> dict:
    """A valid three-task record holding a valid ``task_affinity`` section (a fresh copy)."""
    run = json.loads(json.dumps(record("EW", "Adam", 0, ["segmentation", "depth"], {"depth": {"abs_err": 0.4}})))
    run["dataset"]["tasks"].append({"name": "normal"})
    run["task_affinity"] = {
        "tasks": list(TASKS),
        "every_n_steps": 10,
        "direction": "adam",
        "lookaheads": 15,
        "affinity": [[0.02, -0.01, 0.005], [-3.5, 0.04, 0.001], [0.0, 0.01, 1.0]],
        "affinity_std": [[0.01, 0.0, 0.02], [0.5, 0.01, 0.001], [0.0, 0.0, 0.0]],
        "cos": [[1.0, -0.2, 0.1], [-0.2, 1.0 + 5e-7, 0.3], [0.1, 0.3, -1.0]],
        "mag_sim": [[1.0, 0.5, 0.0], [0.5, 1.0, 0.9], [0.0, 0.9, 1.0]],
    }
    return run


def test_a_record_with_a_valid_affinity_section_passes():
    validate_record(with_affinity())
    run = with_affinity()
    run["task_affinity"].update(tasks=["depth"], direction="sgd", affinity=[[-1e6]], affinity_std=[[0]], cos=[[1]], mag_sim=[[1]])
    validate_record(run)  # a subset of the tasks, in any order, and a very negative affinity


def test_the_section_is_optional():
    run = with_affinity()
    del run["task_affinity"]
    validate_record(run)


def _set(field: str, value):
    return lambda section: section.update({field: value})


def _entry(field: str, value):
    def change(section):
        section[field][0][1] = value

    return change


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda section: section.clear(), "task_affinity.tasks must be a non-empty list"),
        (_set("tasks", []), "task_affinity.tasks must be a non-empty list"),
        (_set("tasks", "depth"), "task_affinity.tasks must be a non-empty list"),
        (_set("tasks", ["segmentation", "depth", "sky"]), "task_affinity.tasks names task 'sky', which dataset.tasks does not declare"),
        (_set("tasks", ["segmentation", "depth", ["normal"]]), "task_affinity.tasks names task"),
        (_set("tasks", ["segmentation", "depth", "depth"]), "task_affinity.tasks names a task twice"),
        (_set("every_n_steps", 0), "task_affinity.every_n_steps must be an integer >= 1"),
        (_set("every_n_steps", 2.0), "task_affinity.every_n_steps must be an integer >= 1"),
        (_set("lookaheads", 0), "task_affinity.lookaheads must be an integer >= 1"),
        (_set("lookaheads", True), "task_affinity.lookaheads must be an integer >= 1"),
        (_set("direction", "Adam"), "task_affinity.direction must be one of adam, sgd"),
        (_set("direction", None), "task_affinity.direction must be one of adam, sgd"),
        (_set("affinity", None), "task_affinity.affinity must be a 3 x 3 list of numbers"),
        (_set("affinity", [[0.0, 0.0, 0.0], [0.0, 0.0], [0.0, 0.0, 0.0]]), "task_affinity.affinity must be a 3 x 3 list of numbers"),
        (_set("affinity", [[0.0, 0.0], [0.0, 0.0]]), "task_affinity.affinity must be a 3 x 3 list of numbers"),
        (_set("affinity", [[0.0] * 3] * 4), "task_affinity.affinity must be a 3 x 3 list of numbers"),
        (_set("mag_sim", [0.0] * 9), "task_affinity.mag_sim must be a 3 x 3 list of numbers"),
        (_entry("affinity", "0.1"), "task_affinity.affinity[0][1] must be a number"),
        (_entry("affinity_std", True), "task_affinity.affinity_std[0][1] must be a number"),
        (_entry("affinity", float("nan")), "task_affinity.affinity[0][1] must be finite"),
        (_entry("cos", float("inf")), "task_affinity.cos[0][1] must be finite"),
        (_entry("affinity", 1.5), "task_affinity.affinity[0][1] must lie in"),
        (_entry("affinity", -1e300), "task_affinity.affinity[0][1] must lie in"),
        (_entry("affinity_std", -0.1), "task_affinity.affinity_std[0][1] must lie in"),
        (_entry("cos", 1.5), "task_affinity.cos[0][1] must lie in"),
        (_entry("cos", -1.01), "task_affinity.cos[0][1] must lie in"),
        (_entry("mag_sim", -0.2), "task_affinity.mag_sim[0][1] must lie in"),
    ],
)
def test_each_malformed_affinity_section_is_refused_naming_the_field(change, reason):
    run = with_affinity()
    change(run["task_affinity"])
    with pytest.raises(RecordError, match=re.escape(reason)):
        validate_record(run)


def test_an_affinity_section_that_is_no_object_is_refused():
    run = with_affinity()
    run["task_affinity"] = [1, 2]
    with pytest.raises(RecordError, match="task_affinity must be an object"):
        validate_record(run)
