"""The affinity study's analysis (``mtlbench affinity``) on planted records: predictors that order
the pairs as their measured Delta_m does correlate 1, reversed ones -1, and the groupings'
Delta_m takes each task's metric from the network that trained it. Its controls: random
partitions drawn reproducibly with exactly B groups, the leave-one-seed-out choice blind to the
seed it is judged on, and findings that state a verdict only where its test can hold. Its flags
and the records' task count are bounded before any work."""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from mtlbench.bench.cli.entry import main as entry
from mtlbench.leaderboards.affinity_study import (
    GENERATED,
    RANDOM_PARTITIONS,
    RANDOM_SEED,
    Budget,
    Groupings,
    Study,
    chosen_partition,
    findings,
    leave_one_seed_out,
    mean_affinity,
    random_partitions,
    read_study,
    write_study,
)
from mtlbench.leaderboards.groups import partitions
from tests.leaderboards.fixture_runs import record

TASKS = ["segmentation", "depth", "normal", "edges"]
# planted affinity: {segmentation, depth} and {normal, edges} help each other, the rest hurts
Z = [[0.0, 0.04, -0.01, -0.02], [0.03, 0.0, -0.03, -0.005], [-0.02, -0.012, 0.0, 0.05], [-0.018, -0.035, 0.03, 0.0]]
BASE = {"segmentation": 0.5, "depth": 0.4, "normal": 30.0, "edges": 0.2}


def _write(
    root: Path, name: str, tasks: list[str], seed: int, errors: dict[str, float], affinity: bool = False, z: list[list[float]] = Z
) -> None:
    metrics = {task: {"err": errors[task]} for task in tasks}
    payload = record("EW", "Adam", seed, ["segmentation"], {"segmentation": {"miou": 0.5}})  # a valid record, then these tasks
    payload["dataset"]["tasks"] = [{"name": task} for task in tasks]
    payload["directions"] = {task: {"err": "lower"} for task in tasks}
    payload["metrics"] = {"val": [{"epoch": 0, "tasks": metrics, "select": 1.0}], "test": metrics}
    if affinity:
        size = len(tasks)
        cos = [[1.0 if i == j else -(z[i][j] + z[j][i]) for j in range(size)] for i in range(size)]  # ordered against the affinity
        payload["task_affinity"] = {"tasks": tasks, "every_n_steps": 10, "direction": "adam", "lookaheads": 15, "affinity": z}
        payload["task_affinity"] |= {"affinity_std": [[0.0] * size] * size, "cos": cos, "mag_sim": [[1.0] * size] * size}
    folder = root / name / "version_0"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(payload))


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    for seed in (0, 1):
        wobble = 1 + 0.01 * seed
        for task in TASKS:
            _write(root, f"stl-{task}-s{seed}", [task], seed, {task: BASE[task] * wobble})
        for i, j in itertools.combinations(range(4), 2):
            gain = 1 - 5 * (Z[i][j] + Z[j][i]) / 2  # the more affinity, the lower both errors
            pair = [TASKS[i], TASKS[j]]
            _write(root, f"pair-{i}{j}-s{seed}", pair, seed, {task: BASE[task] * gain * wobble for task in pair})
        _write(root, f"all-s{seed}", TASKS, seed, {task: BASE[task] * 1.05 for task in TASKS}, affinity=True)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_predictors_ordering_the_pairs_as_training_does_correlate_one(runs, tmp_path):
    write_study(runs, tmp_path / "out", networks=(2,))
    correlations = {(row["predictor"], row["seed"]): float(row["spearman"]) for row in _rows(tmp_path / "out" / "correlations.csv")}
    assert correlations[("affinity", "0")] == pytest.approx(1.0) and correlations[("affinity", "1")] == pytest.approx(1.0)
    assert correlations[("cos", "0")] == pytest.approx(-1.0)
    assert math.isnan(correlations[("mag_sim", "0")])  # a constant predictor orders nothing
    pairs = _rows(tmp_path / "out" / "pairs.csv")
    assert len(pairs) == 2 * 6
    first = next(row for row in pairs if row["pair"] == "segmentation~depth" and row["seed"] == "0")
    # both errors 1 - 5 * 0.035 of the seed's baseline, which is 0.5 % below the two seeds' mean
    assert float(first["affinity"]) == pytest.approx(0.035) and float(first["delta_m"]) == pytest.approx(
        100 * (0.825 / 1.005 - 1), rel=1e-4
    )


def test_groupings_take_each_task_from_the_network_that_trained_it(runs, tmp_path):
    write_study(runs, tmp_path / "out", networks=(2,))
    rows = {(row["grouping"], row["seed"]): row for row in _rows(tmp_path / "out" / "groupings.csv")}
    assert rows[("groups B=2", "0")]["partition"] == "segmentation+depth | normal+edges"
    assert float(rows[("all-in-one", "0")]["delta_m"]) == pytest.approx(100 * (1.05 / 1.005 - 1), rel=1e-4)
    assert float(rows[("single-task", "1")]["delta_m"]) == pytest.approx(100 * (1.01 / 1.005 - 1), rel=1e-4)
    gains = {"segmentation": 0.035, "depth": 0.035, "normal": 0.04, "edges": 0.04}
    expected = 100 * sum((1 - 5 * gains[task]) / 1.005 - 1 for task in TASKS) / 4
    assert float(rows[("groups B=2", "0")]["delta_m"]) == pytest.approx(expected, rel=1e-4)
    assert (tmp_path / "out" / "affinity_study.png").stat().st_size > 10_000
    assert "| groups B=2 | 2 |" in (tmp_path / "out" / "affinity_study.md").read_text()


def test_a_missing_network_or_affinity_is_one_line(runs, tmp_path, capsys):
    for path in runs.glob("pair-01-s1"):
        for file in path.rglob("results.json"):
            file.unlink()
    with pytest.raises(ValueError, match=r"no complete run of tasks segmentation, depth at seed 1"):
        write_study(runs, tmp_path / "out")
    assert entry(["affinity", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) != 0
    assert capsys.readouterr().err.count("\n") == 1
    for file in runs.glob("all-s*/version_0/results.json"):
        data = json.loads(file.read_text())
        del data["task_affinity"]
        file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="recorded task_affinity"):
        read_study(runs)


# --- the controls: random partitions, leave-one-seed-out, and what the findings may claim ----------


def _subset_gain(members: list[int], task: int) -> float:
    """Each task of a network trained with others: 1 - 5 x its mean symmetrised affinity with them
    (a pair's gain as above)."""
    others = [other for other in members if other != task]
    return 1 - 5 * sum((Z[task][other] + Z[other][task]) / 2 for other in others) / len(others)


@pytest.fixture
def every_network(runs) -> Path:
    """The planted study with every network of three tasks too, so any partition can be judged."""
    for seed in (0, 1):
        wobble = 1 + 0.01 * seed
        for members in itertools.combinations(range(4), 3):
            tasks = [TASKS[i] for i in members]
            errors = {TASKS[i]: BASE[TASKS[i]] * _subset_gain(list(members), i) * wobble for i in members}
            _write(runs, f"triple-{''.join(map(str, members))}-s{seed}", tasks, seed, errors)
    return runs


@pytest.mark.parametrize(("count", "networks"), [(7, 2), (7, 3), (4, 2), (5, 1), (5, 5), (6, 4)])
def test_random_partitions_are_reproducible_and_have_exactly_b_non_empty_groups(count, networks):
    drawn = random_partitions(count, networks, k=6, seed=0)
    assert drawn == random_partitions(count, networks, k=6, seed=0)  # the seed fixes them
    every = [partition for partition in partitions(count, networks) if len(partition) == networks]
    assert len(drawn) == min(6, len(every)) and len(set(drawn)) == len(drawn)  # without replacement
    for partition in drawn:
        assert len(partition) == networks and all(partition)
        assert sorted(task for group in partition for task in group) == list(range(count))
    assert sorted(random_partitions(count, networks, k=len(every), seed=3)) == sorted(every)  # k = S(T, B): all of them


def test_random_partitions_depend_on_the_seed_and_are_drawn_uniformly():
    assert random_partitions(7, 3, k=6, seed=0) != random_partitions(7, 3, k=6, seed=1)
    # the first draw over 2000 seeds: each of the S(4, 2) = 7 partitions about 1/7 of the time
    counts = Counter(random_partitions(4, 2, k=1, seed=seed)[0] for seed in range(2000))
    assert len(counts) == 7 and all(200 <= count <= 380 for count in counts.values())  # 286 expected, sd 16
    with pytest.raises(ValueError, match="exactly 5 non-empty groups"):
        random_partitions(4, 5)


def test_the_published_random_control_trains_the_drawn_partitions():
    """configs/sweeps/study_affinity_control_random.yaml lists the groups of the partitions the
    study's seed and count draw (what `mtlbench affinity --controls` wrote)."""
    import yaml

    spec_path = Path(__file__).resolve().parents[2] / "configs" / "sweeps" / "study_affinity_control_random.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    seven = spec["tasks"]
    drawn = [p for budget in (2, 3) for p in random_partitions(len(seven), budget, RANDOM_PARTITIONS, RANDOM_SEED)]
    wanted = {tuple(seven[i] for i in group) for partition in drawn for group in partition if len(group) > 1}
    assert {tuple(group) for group in spec["axes"]["tasks"]} == wanted and spec["seeds"] == [0, 1, 2]


def _crafted_study(own: list[list[float]]) -> Study:
    """Three seeds of 4 tasks: seeds 1 and 2 favour {0, 1} {2, 3}; seed 0's affinity is ``own``."""
    favour = [[0.0, 0.02, -0.01, -0.01], [0.02, 0.0, -0.01, -0.01], [-0.01, -0.01, 0.0, 0.02], [-0.01, -0.01, 0.02, 0.0]]
    predictors = {0: {"affinity": own}, 1: {"affinity": favour}, 2: {"affinity": favour}}
    return Study(tuple(TASKS), {}, {}, {}, predictors)


def test_leave_one_seed_out_never_uses_the_seed_it_is_judged_on():
    # seed 0's own affinity favours {0, 2} {1, 3}, strongly enough to carry the mean over all seeds
    own = [[0.0, -0.2, 0.2, -0.2], [-0.2, 0.0, -0.2, 0.2], [0.2, -0.2, 0.0, -0.2], [-0.2, 0.2, -0.2, 0.0]]
    study = _crafted_study(own)
    loso = leave_one_seed_out(study, 2)
    assert loso[0] == ((0, 1), (2, 3))  # from seeds 1 and 2 only
    # negative control: with seed 0's own affinity in the mean, the choice for seed 0 changes
    assert chosen_partition(mean_affinity(study, [0, 1, 2]), 2) == ((0, 2), (1, 3)) != loso[0]
    # whatever seed 0 recorded, its own choice stays; the other seeds' choices do follow it
    other = _crafted_study([[0.0, -0.2, -0.2, 0.2], [-0.2, 0.0, 0.2, -0.2], [-0.2, 0.2, 0.0, -0.2], [0.2, -0.2, -0.2, 0.0]])
    assert leave_one_seed_out(other, 2)[0] == loso[0] and leave_one_seed_out(other, 2)[1] != loso[1]


def _rho(predictor: str, seed: int, rho: float, low: float, high: float) -> dict[str, object]:
    return {"predictor": predictor, "seed": seed, "spearman": rho, "p": 0.01, "ci_low": low, "ci_high": high}


def _groupings(seeds: int, chosen: list[float], all_in_one: list[float], random: list[list[float]]) -> Groupings:
    budget = Budget(2, ((0, 1), (2, 3)), chosen, random=[((0, 2), (1, 3))] * len(random), random_delta=random)
    return Groupings(tuple(TASKS), list(range(seeds)), [0.0] * seeds, all_in_one, [budget], k=len(random))


def test_three_seeds_state_no_verdict_the_sign_test_cannot_give():
    # lower than the all-in-one network in 3 of 3 seeds, and than each of 6 random partitions
    text = findings(_groupings(3, [1.0, 2.0, 3.0], [9.0, 8.0, 12.0], [[5.0, 6.0, 7.0]] * 6), [], [])
    shown, not_shown = text.split("## Shown")[1].split("## Not shown")
    assert shown.strip() == "- nothing"
    assert "chosen B=2 vs all-in-one: Delta_m lower in 3 of 3 seeds that differ, exact sign test p = 0.25" in not_shown
    assert "(the smallest 3 seeds can give: 0.25)" in not_shown
    assert "rank 1 of 7" in not_shown and "randomisation p = 0.143 (the smallest 6 random partitions can give: 0.143)" in not_shown
    assert text.startswith(f"<!-- {GENERATED} -->")


def test_a_verdict_is_stated_where_it_holds():
    # 6 seeds, all lower than the all-in-one network: sign test p = 2 / 64 = 0.031
    chosen, all_in_one = [1.0, 2.0, 3.0, 1.5, 2.5, 2.0], [9.0, 8.0, 12.0, 7.0, 10.0, 9.5]
    correlations = [_rho("affinity", seed, 0.6, 0.2, 0.85) for seed in range(6)] + [_rho("cos", 0, 0.3, -0.1, 0.6)]
    text = findings(_groupings(6, chosen, all_in_one, [[5.0 + 0.1 * k] * 6 for k in range(20)]), correlations, [])
    shown = text.split("## Shown")[1].split("## Not shown")[0]
    assert "chosen B=2 vs all-in-one: Delta_m lower in 6 of 6 seeds that differ, exact sign test p = 0.0312" in shown
    # better than each of 20 random partitions: randomisation p = 1 / 21 = 0.048
    assert "chosen B=2 vs 20 random partitions into 2 groups: rank 1 of 21" in shown and "p = 0.0476" in shown
    assert "chosen B=2 vs single-task: Delta_m higher in 6 of 6" in shown  # a verdict goes either way
    assert "affinity (symmetrised): Spearman rho" in shown and "seed 5: +0.60 [+0.20, +0.85], p = 0.01 (positive in every seed)" in shown
    assert "gradient cosine: Spearman rho with the pairs' benefit" in text.split("## Not shown")[1]
    assert "p: seed 0: +0.30 [-0.10, +0.60], p = 0.01 (the interval includes 0 in at least one seed)" in text.split("## Not shown")[1]
    # 19 random partitions can give no less than 1 / 20 = 0.05: not below 0.05, so not shown
    text = findings(_groupings(6, chosen, all_in_one, [[5.0 + 0.1 * k] * 6 for k in range(19)]), [], [])
    assert "vs 19 random partitions into 2 groups: rank 1 of 20" in text.split("## Not shown")[1]


def test_the_controls_are_judged_on_the_records(every_network, tmp_path):
    written = write_study(every_network, tmp_path / "out", networks=(2,))
    rows = _rows(tmp_path / "out" / "groupings.csv")
    names = {row["grouping"] for row in rows}
    assert {"groups B=2 leave-one-seed-out", *(f"random B=2 #{n}" for n in range(1, 7))} <= names
    text = (tmp_path / "out" / "affinity_findings.md").read_text()
    # the planted {segmentation, depth} {normal, edges} is the best of all 7 partitions into 2, at both seeds
    assert "chosen B=2 vs 6 random partitions into 2 groups: rank 1 of 7 on the seed-mean Delta_m (1 = lowest; per seed 1, 1)" in text
    assert "## Shown\n\n- nothing" in text and tmp_path / "out" / "comparisons.csv" in written
    comparison = next(row for row in _rows(tmp_path / "out" / "comparisons.csv") if row["against"] == "all-in-one")
    assert comparison["lower"] == "2" and float(comparison["sign_p"]) == pytest.approx(0.5) and comparison["shown"] == "False"


def test_the_control_specs_are_written_from_the_records(runs, tmp_path):
    template = Path(__file__).resolve().parents[2] / "configs" / "sweeps" / "study_affinity.yaml"
    assert entry(["affinity", str(runs), "--controls", str(template), "--out", str(tmp_path), "--networks", "2", "--random", "3"]) == 0
    import yaml

    random_spec = yaml.safe_load((tmp_path / "study_affinity_control_random.yaml").read_text())
    drawn = random_partitions(4, 2, k=3, seed=0)
    assert {tuple(group) for group in random_spec["axes"]["tasks"]} == {
        tuple(TASKS[i] for i in group) for partition in drawn for group in partition if len(group) > 1
    }
    loso = yaml.safe_load((tmp_path / "study_affinity_control_loso_s1.yaml").read_text())
    assert loso["seeds"] == [1] and loso["axes"]["tasks"] == [["segmentation", "depth"], ["normal", "edges"]]
    assert "--random 3" in (tmp_path / "study_affinity_control_random.yaml").read_text().splitlines()[0]


# --- bounds: the flags, the task count, the search and the draw, refused before any work ----------


@pytest.fixture
def no_work(monkeypatch):
    """Fails a test whose command starts the analysis (or writes a control spec) before refusing."""
    for name in ("pair_rows", "random_partitions", "template_spec"):
        monkeypatch.setattr(f"mtlbench.leaderboards.affinity_study.{name}", lambda *args, name=name: pytest.fail(f"{name} ran"))


def _study(root: Path, tasks: list[str]) -> Path:
    """Seeds 0 and 1 of a study over ``tasks``: every task alone and the all-task run with its affinity."""
    for seed in (0, 1):
        for index, task in enumerate(tasks):
            _write(root, f"stl-{index}-s{seed}", [task], seed, {task: 1.0})
        _write(root, f"all-s{seed}", tasks, seed, dict.fromkeys(tasks, 1.0), affinity=True, z=[[0.0] * len(tasks) for _ in tasks])
    return root


TEMPLATE = Path(__file__).resolve().parents[2] / "configs" / "sweeps" / "study_affinity.yaml"


@pytest.mark.parametrize("controls", [False, True], ids=["analysis", "controls"])
@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--networks", "0", "3"], "--networks takes numbers of networks of at least 1, got 0"),
        (["--networks", "3", "-2"], "--networks takes numbers of networks of at least 1, got -2"),
        (["--random", "0"], "--random takes at least 1 partition per number of networks, got 0"),
        (["--networks", "5"], "--networks 5 is more networks than the study's 4 tasks; give values from 1 to 4"),
        (["--networks", str(10**20)], f"--networks {10**20} is more networks than the study's 4 tasks; give values from 1 to 4"),
    ],
    ids=["networks 0", "networks negative", "random 0", "networks above the tasks", "networks huge"],
)
def test_a_flag_out_of_range_is_one_line_naming_it_before_any_work(runs, tmp_path, capsys, no_work, flags, reason, controls):
    extra = ["--controls", str(TEMPLATE)] if controls else []
    assert entry(["affinity", str(runs), "--out", str(tmp_path / "out"), *flags, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"mtlbench: error: {reason}\n" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("controls", [False, True], ids=["analysis", "controls"])
def test_a_draw_beyond_the_bound_is_one_line_naming_the_largest_budget_within_it(tmp_path, capsys, no_work, controls):
    # 13 tasks into at most 4 groups: 3.6e7 task steps to enumerate (14 tasks took 96 s)
    runs = _study(tmp_path / "runs", [f"task{index}" for index in range(13)])
    extra = ["--controls", str(TEMPLATE)] if controls else []
    assert entry(["affinity", str(runs), "--out", str(tmp_path / "out"), "--networks", "3", "4", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert "--networks 4 over 13 tasks makes a draw of random partitions of 3.6e+07 task steps" in captured.err
    assert "give --networks 3 or less" in captured.err


def test_a_run_of_more_tasks_than_a_study_reads_is_one_line(tmp_path):
    root = tmp_path / "runs"
    _write(root, "all", [f"task{index}" for index in range(65)], 0, {f"task{index}": 1.0 for index in range(65)})
    with pytest.raises(ValueError, match=r"run record .*all.*results\.json trains 65 tasks, more than the 64 a study reads"):
        read_study(root)


@pytest.mark.parametrize("name", ["../up", "a/b", "a\\b"])
def test_the_controls_refuse_a_task_name_no_sweep_takes_before_writing(tmp_path, capsys, name):
    runs = _study(tmp_path / "runs", ["depth", name, "edges"])
    assert entry(["affinity", str(runs), "--controls", str(TEMPLATE), "--out", str(tmp_path / "out"), "--networks", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert f"run record {runs / 'all-s0' / 'version_0' / 'results.json'}: task {name!r} cannot name a sweep's run folder" in captured.err
