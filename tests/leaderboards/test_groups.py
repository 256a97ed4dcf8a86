"""Task groupings from recorded inter-task affinity (Fifty et al. 2021): the score, the searches
and their bound, reading records, the written sweep spec (only of task names a sweep takes) and
the command."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import yaml

from mtlbench.bench.sweeps.run_ids import check_name
from mtlbench.leaderboards.groups import (
    HILL_CLIMBING,
    MAX_SEARCH,
    NO_AFFINITY,
    best_groupings,
    check_sweep_tasks,
    group_score,
    main,
    partition_count,
    partition_score,
    partitions,
    read_affinities,
    search_steps,
)
from tests.leaderboards.fixture_runs import record

REPO = Path(__file__).resolve().parents[2]
TASKS = ["segmentation", "depth", "normal", "edges"]


def planted(blocks: list[list[int]], inside: float = 0.5, across: float = -0.3, noise: float = 0.0, seed: int = 0) -> list[list[float]]:
    """Affinity ``inside`` within each block, ``across`` between blocks, plus uniform noise."""
    rng = random.Random(seed)
    block = {task: index for index, members in enumerate(blocks) for task in members}
    size = len(block)
    return [[(inside if block[i] == block[j] else across) + rng.uniform(-noise, noise) for j in range(size)] for i in range(size)]


def write_run(
    root: Path, name: str, affinity: object, tasks: object = TASKS, status: str = "complete", declared: list[str] = TASKS
) -> Path:
    """A minimal valid run record (tests/leaderboards/fixture_runs.py) with a task_affinity section;
    ``declared``: its dataset.tasks (segmentation and depth among them)."""
    metrics = {"segmentation": {"miou": 0.5, "pix_acc": 0.8}, "depth": {"abs_err": 0.4, "rel_err": 0.1}}
    payload = record("EW", "Adam", 0, ["segmentation", "depth"], metrics, status=status)
    payload["dataset"]["tasks"] = [{"name": task} for task in declared]
    if affinity is not None:
        size = len(tasks) if isinstance(tasks, list) else 1
        ones = [[1.0] * size for _ in range(size)]
        payload["task_affinity"] = {"tasks": tasks, "every_n_steps": 10, "direction": "adam", "lookaheads": 3, "affinity": affinity}
        payload["task_affinity"] |= {"affinity_std": [[0.0] * size for _ in range(size)], "cos": ones, "mag_sim": ones}
    folder = root / name / "version_0"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(payload))
    return folder / "results.json"


def test_the_score_of_a_group_is_each_members_mean_affinity_from_the_others():
    z = [[9.0, 0.2, 0.4], [0.1, 9.0, 0.3], [0.6, 0.5, 9.0]]  # the diagonal (self-affinity) never counts
    assert group_score(z, (0, 1, 2)) == pytest.approx((0.1 + 0.6) / 2 + (0.2 + 0.5) / 2 + (0.4 + 0.3) / 2)  # 1.05
    assert group_score(z, (0, 2)) == pytest.approx(0.6 + 0.4)
    assert group_score(z, (1,)) == 0.0
    assert partition_score(z, ((0, 1), (2,))) == pytest.approx(0.1 + 0.2)
    assert partition_score(z, ((0,), (1,), (2,))) == 0.0


def test_the_partitions_enumerated_are_the_stirling_sum():
    assert sum(1 for _ in partitions(7, 3)) == 1 + 63 + 301
    assert sum(1 for _ in partitions(7, 7)) == 877  # Bell(7)
    every = list(partitions(4, 4))
    assert len(set(every)) == len(every) and all(sorted(i for g in p for i in g) == [0, 1, 2, 3] for p in every)


def test_the_partitions_counted_are_those_enumerated():
    for count in range(1, 8):
        for most in range(1, count + 2):
            assert partition_count(count, most) == sum(1 for _ in partitions(count, most)), (count, most)


def test_the_search_bound_admits_every_exhaustive_search_and_64_tasks_into_9_groups():
    assert all(search_steps(10, networks) <= MAX_SEARCH for networks in range(1, 11))  # Bell(10) partitions of 10 tasks
    assert search_steps(64, 9) <= MAX_SEARCH < search_steps(64, 10)


SIXTY_FOUR = ["segmentation", "depth", *(f"task{index}" for index in range(62))]


@pytest.mark.parametrize("networks", ["64", "10", str(10**20)])
def test_a_search_beyond_the_bound_is_one_line_before_it_starts(tmp_path, capsys, monkeypatch, networks):
    from mtlbench.bench.cli.entry import main as mtlbench

    write_run(tmp_path, "s0", [[0.1] * 64 for _ in range(64)], tasks=SIXTY_FOUR, declared=SIXTY_FOUR)
    monkeypatch.setattr("mtlbench.leaderboards.groups._climb", lambda *args: pytest.fail("the search started"))  # it took 469 s
    assert mtlbench(["groups", str(tmp_path), "--networks", networks]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert f"--networks {networks} over 64 tasks makes a search of" in captured.err and "give --networks 9 or less" in captured.err


def test_the_exhaustive_search_finds_the_planted_blocks():
    z = planted([[0, 2, 4], [1, 3, 5]])
    two = best_groupings(z, 2)
    assert two.chosen.groups == ((0, 2, 4), (1, 3, 5)) and two.method.startswith("exhaustive")
    assert two.best[0].groups == ((0, 1, 2, 3, 4, 5),) and two.best[0].score == pytest.approx(two.all_in_one)
    assert best_groupings(z, 1).chosen.groups == ((0, 1, 2, 3, 4, 5),)
    assert best_groupings(z, 6).chosen.groups == ((0, 2, 4), (1, 3, 5))  # more networks than needed: ties go to fewer groups


def brute_force(z: list[list[float]], most: int) -> float:
    """The best score over all labellings of the tasks with at most ``most`` labels (independent of the module)."""
    best = -float("inf")
    for labels in itertools.product(range(most), repeat=len(z)):
        score = 0.0
        for label in set(labels):
            members = [i for i, own in enumerate(labels) if own == label]
            if len(members) > 1:
                score += sum(z[i][j] for i in members for j in members if i != j) / (len(members) - 1)
        best = max(best, score)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_the_exhaustive_search_is_the_best_over_all_partitions(seed):
    rng = random.Random(seed)
    z = [[rng.uniform(-1, 1) for _ in range(5)] for _ in range(5)]
    for most in (1, 2, 3, 5):
        chosen = best_groupings(z, most).chosen
        assert len(chosen.groups) <= most and sorted(i for group in chosen.groups for i in group) == list(range(5))
        assert chosen.score == pytest.approx(partition_score(z, chosen.groups)) == pytest.approx(brute_force(z, most))


def test_the_search_beyond_ten_tasks_recovers_planted_blocks():
    blocks = [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    search = best_groupings(planted(blocks, noise=0.05), 3)
    assert search.method == HILL_CLIMBING and len(search.best) == 3
    assert sorted(i for group in search.chosen.groups for i in group) == list(range(12))
    assert search.chosen.score >= search.all_in_one and search.chosen.groups == tuple(map(tuple, blocks))
    assert search.best == best_groupings(planted(blocks, noise=0.05), 3).best  # deterministic


def test_the_records_affinities_are_averaged_over_runs(tmp_path):
    z = planted([[0, 1], [2, 3]])
    write_run(tmp_path, "s0", z)
    write_run(tmp_path, "s1", [[value + 0.2 for value in row] for row in z])
    write_run(tmp_path, "stl", None)  # no affinity: not counted
    write_run(tmp_path, "broken", [[-5.0] * 4] * 4, status="diverged")  # a diverged run: passed over
    affinities = read_affinities(tmp_path)
    assert affinities.tasks == tuple(TASKS) and len(affinities.runs) == 2 and affinities.direction == "adam"
    assert affinities.mean[0][1] == pytest.approx(z[0][1] + 0.1) and affinities.std[0][1] == pytest.approx(0.1)
    assert read_affinities(tmp_path / "s0").mean[0][1] == pytest.approx(z[0][1])  # one run folder


def test_records_over_different_tasks_are_one_line(tmp_path):
    write_run(tmp_path, "a", planted([[0, 1], [2, 3]]))
    write_run(tmp_path, "b", planted([[0, 1], [2]]), tasks=TASKS[:3])
    with pytest.raises(ValueError, match=r"run records .*a.* and .*b.* different tasks") as error:
        read_affinities(tmp_path)
    assert "\n" not in str(error.value)
    # the runs of one task set, named one by one (the shell's glob of a sweep's folders)
    assert read_affinities([tmp_path / "a"]).tasks == tuple(TASKS)
    write_run(tmp_path, "c", planted([[0, 1], [2, 3]], inside=0.7))
    assert read_affinities([tmp_path / "a", tmp_path / "c"]).mean[0][1] == pytest.approx(0.6)


def test_runs_without_affinity_are_named(tmp_path):
    write_run(tmp_path, "stl", None)
    with pytest.raises(ValueError) as error:
        read_affinities(tmp_path)
    assert str(error.value) == NO_AFFINITY.format(root=tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_affinities(tmp_path / "missing")


@pytest.fixture(params=["schema", "own check"])
def checks(request, monkeypatch):
    """Malformed sections are refused by the record schema, and by the module's own check without it."""
    if request.param == "own check":
        monkeypatch.setattr("mtlbench.leaderboards.groups.validate_record", lambda record: None)
    return request.param


@pytest.mark.parametrize(
    "affinity",
    [[[0.0] * 4] * 3, [[0.0] * 3] * 4, [[float("nan")] * 4] * 4, [[0.0, "x", 0.0, 0.0]] * 4, [[True] * 4] * 4, "matrix"],
)
def test_a_malformed_affinity_is_one_line_naming_the_file(tmp_path, affinity, checks):
    path = write_run(tmp_path, "bad", affinity)
    with pytest.raises(ValueError) as error:
        read_affinities(tmp_path)
    message = str(error.value)
    assert str(path) in message and "task_affinity.affinity" in message and "\n" not in message
    assert checks == "schema" or "4 x 4 list of finite numbers" in message


@pytest.mark.parametrize("tasks", [["depth", "depth"], ["segmentation", "sky"], "depth"])
def test_malformed_affinity_tasks_are_one_line(tmp_path, tasks, checks):
    path = write_run(tmp_path, "bad", [[0.0]], tasks=tasks)
    with pytest.raises(ValueError, match=r"task_affinity\.tasks") as error:
        read_affinities(tmp_path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_the_written_spec_sweeps_the_chosen_groups(tmp_path, capsys):
    from mtlbench.bench.sweeps.sweep import load_spec, plan

    write_run(tmp_path / "runs", "s0", planted([[0, 3], [1, 2]]))
    out = tmp_path / "elsewhere" / "groups.yaml"
    template = REPO / "configs" / "sweeps" / "study_relatedness.yaml"
    assert main([str(tmp_path / "runs"), "--networks", "2", "--spec", str(template), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Written by: mtlbench groups ")
    written = yaml.safe_load(out.read_text())
    assert written["axes"] == {"tasks": [["segmentation", "edges"], ["depth", "normal"]]} and written["stl"] is True
    assert not Path(written["base"]).is_absolute() and (out.parent / written["methods"]["EW"]).resolve() == REPO / "configs/method/ew.yaml"
    spec = load_spec(out)  # relative config paths resolve from the written spec's folder
    assert spec["base"] == str(REPO / "configs" / "study.yaml")
    runs = plan(spec, tmp_path / "sweep")
    assert {run.baseline_of for run in runs if run.baseline_of} == set(TASKS)
    assert any(run.run_id.startswith("EW-Adam") and "tasks-segmentation.edges" in run.run_id for run in runs)


def test_the_command_prints_the_matrix_and_the_groupings(tmp_path, capsys):
    write_run(tmp_path, "s0", planted([[0, 1], [2, 3]]))
    assert main([str(tmp_path), "--networks", "3"]) == 0
    text = capsys.readouterr().out
    assert "| from \\ onto | segmentation | depth | normal | edges |" in text
    assert "| segmentation | 0.500 | 0.500 | -0.300 | -0.300 |" in text
    assert "| 1 | 1 |" in text and "| 2 | 2 | 2.000 | {segmentation, depth} {normal, edges} |  |" in text
    assert "| 3 | 2 | 2.000 | {segmentation, depth} {normal, edges} | * |" in text


def test_the_entry_point_turns_errors_into_one_line(tmp_path, capsys):
    from mtlbench.bench.cli.entry import main as mtlbench

    write_run(tmp_path, "s0", planted([[0, 1], [2, 3]]))
    assert mtlbench(["groups", str(tmp_path), "--networks", "0"]) == 2
    assert capsys.readouterr().err == "mtlbench: error: --networks must be at least 1 (the number of networks to train), got 0\n"
    assert mtlbench(["groups", str(tmp_path), "--networks", "2", "--out", str(tmp_path / "g.yaml")]) == 2
    assert "--spec and --out go together" in capsys.readouterr().err


UNSWEEPABLE = ["../up", "a/b", "a\\b", "..", "x..y"]


@pytest.mark.parametrize("name", UNSWEEPABLE)
def test_a_task_name_no_sweep_takes_is_one_line_before_the_spec_is_written(tmp_path, capsys, name):
    from mtlbench.bench.cli.entry import main as mtlbench

    declared = ["segmentation", "depth", name, "edges"]
    path = write_run(tmp_path / "runs", "s0", planted([[0, 2], [1, 3]]), tasks=declared, declared=declared)
    out = tmp_path / "specs" / "groups.yaml"
    template = REPO / "configs" / "sweeps" / "study_relatedness.yaml"
    assert mtlbench(["groups", str(tmp_path / "runs"), "--networks", "2", "--spec", str(template), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and not out.parent.exists()
    assert f"run record {path}: task {name!r} cannot name a sweep's run folder" in captured.err


@pytest.mark.parametrize("name", [*UNSWEEPABLE, "", "a\x00b", "tab\there", "del\x7f", "Nash-MTL", "a.b", "seg mentation", "ü~x"])
def test_the_task_names_refused_are_the_sweeps_own(name):
    def refuses(check) -> bool:
        try:
            check()
        except ValueError:
            return True
        return False

    assert refuses(lambda: check_sweep_tasks([name], Path("results.json"))) == refuses(lambda: check_name("task", name))
