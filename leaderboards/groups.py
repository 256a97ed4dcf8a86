"""``mtlbench groups RUNS --networks B``: which tasks to train together, from recorded inter-task affinity.

Fifty et al. (NeurIPS 2021), "Efficiently Identifying Task Groupings for Multi-Task Learning"
(TAG): the ``task_affinity`` of run records (written by the ``TaskAffinity`` callback) holds
``Z[i][j] = 1 - L_j(after i's lookahead) / L_j(before)``, row i the task whose update is taken,
column j the task whose loss changes. Averaged over the runs (seeds), it scores a partition of
the tasks into groups: in a group G of two or more tasks each member j receives the mean
affinity onto it from the others, ``sum_{i in G, i != j} Z[i][j] / (|G| - 1)``; a task alone
receives nothing (0); a partition's score is the sum over all tasks. For T <= 10 tasks every
partition into at most B groups is scored; beyond, a deterministic hill climbing (below). A search
longer than :data:`MAX_SEARCH` task steps (64 tasks: B above 9) is refused before it starts.

This objective is the suite's, not TAG's own: here the groups are disjoint and a task alone
scores 0, while TAG's network selection picks up to B groups that may overlap, serves each task
by the chosen group giving it the highest affinity, and scores a task alone -1e6
(``docs/affinity.md`` works an example where the two choose differently).

With ``--spec TEMPLATE.yaml --out GROUPS.yaml`` it writes a sweep spec that trains the chosen
groups (``axes: {tasks: [...]}``) and every task alone (``stl: true``): ``mtlbench sweep GROUPS.yaml``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlbench.leaderboards.atomic_write import write_text_atomic
from mtlbench.leaderboards.escape import markdown_text
from mtlbench.leaderboards.folder_names import folder_name_problem
from mtlbench.leaderboards.records import read_record, record_paths
from mtlbench.leaderboards.schema import MAX_MAGNITUDE, RecordError, validate_record
from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, load_yaml

EXHAUSTIVE_MAX = 10  # tasks up to which every partition is scored (Bell(10) = 115,975 partitions)
MAX_TASKS = 64
MAX_SEARCH = 2_000_000  # task steps of one search (search_steps): 64 tasks into 9 groups, 1.8e6, took 7 s on one busy core
RESTARTS = 8  # seeded random starts of the hill climbing, besides the all-in-one and the b-1 best
EPS = 1e-12  # scores closer than this tie
HILL_CLIMBING = (
    f"hill climbing (one task moved at a time; best of the all-in-one, the next smaller budget's best and {RESTARTS} seeded random starts)"
)
NO_AFFINITY = (
    "no run record under {root} holds task_affinity; train with the TaskAffinity callback"
    " (trainer.callbacks: mtlbench.bench.run.callbacks.TaskAffinity)"
)

Matrix = Sequence[Sequence[float]]
Partition = tuple[tuple[int, ...], ...]  # blocks of task indices, each sorted, ordered by their first task


@dataclass(frozen=True)
class Affinities:
    """The mean and per-entry std over runs of the records' affinity matrices."""

    tasks: tuple[str, ...]
    mean: tuple[tuple[float, ...], ...]
    std: tuple[tuple[float, ...], ...]
    runs: tuple[Path, ...]
    direction: str | None


@dataclass(frozen=True)
class Grouping:
    groups: Partition
    score: float


@dataclass(frozen=True)
class Search:
    """``best[b - 1]``: the best partition into at most b groups, b = 1 .. min(B, T)."""

    best: tuple[Grouping, ...]
    method: str
    all_in_one: float
    singletons: float = 0.0

    @property
    def chosen(self) -> Grouping:
        return self.best[-1]


def _affinity_of(record: dict, path: Path, root: Path) -> tuple[tuple[str, ...], list[list[float]], Any] | None:
    """The checked ``(tasks, affinity, direction)`` of one record; None without the section."""
    section = record.get("task_affinity")
    if section is None or record.get("status") in ("diverged", "failed"):  # a broken run's lookaheads say nothing
        return None
    fix = f"rerun it with the TaskAffinity callback or move it out of {root}"
    tasks = section.get("tasks") if isinstance(section, dict) else None
    declared = {entry["name"] for entry in record["dataset"]["tasks"]}
    if not isinstance(tasks, list) or not 2 <= len(tasks) <= MAX_TASKS or len(set(map(str, tasks))) != len(tasks):
        raise ValueError(f"run record {path}: task_affinity.tasks must list 2 to {MAX_TASKS} distinct task names; {fix}")
    if not all(isinstance(task, str) and task in declared for task in tasks):
        raise ValueError(f"run record {path}: task_affinity.tasks names a task dataset.tasks does not declare; {fix}")
    matrix, size = section.get("affinity"), len(tasks)
    square = isinstance(matrix, list) and len(matrix) == size and all(isinstance(row, list) and len(row) == size for row in matrix)
    numbers = square and all(
        isinstance(z, (int, float)) and not isinstance(z, bool) and math.isfinite(z) and abs(z) <= MAX_MAGNITUDE
        for row in matrix
        for z in row
    )
    if not numbers:
        raise ValueError(f"run record {path}: task_affinity.affinity must be a {size} x {size} list of finite numbers; {fix}")
    return tuple(tasks), [[float(z) for z in row] for row in matrix], section.get("direction")


def read_affinities(runs: Path | str | Sequence[Path | str]) -> Affinities:
    """The affinity of every record under ``runs`` (folders searched recursively, run folders, or
    ``results.json`` files; one or several) that holds ``task_affinity``: mean and std
    (population) per entry over the records. Every record must read and fit the schema; the
    affinities must share one task list and direction. Records of diverged or failed runs are
    passed over."""
    sources = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(run) for run in runs]
    found: list[tuple[Path, tuple[str, ...], list[list[float]], Any]] = []
    for source in sources:
        found.extend(_affinities_under(source))
    if not found:
        raise ValueError(NO_AFFINITY.format(root=" ".join(str(source) for source in sources)))
    first = found[0]
    for other in found[1:]:
        for index, what in ((1, "tasks"), (3, "direction")):
            if other[index] != first[index]:
                raise ValueError(
                    f"run records {first[0]} and {other[0]} hold task_affinity over different {what} ({first[index]} vs {other[index]});"
                    " pass only the runs that share them (e.g. the multi-task runs of one task set)"
                )
    size = len(first[1])
    cells = [[[entry[2][i][j] for entry in found] for j in range(size)] for i in range(size)]
    mean = tuple(tuple(statistics.fmean(cell) for cell in row) for row in cells)
    std = tuple(tuple(statistics.pstdev(cell) for cell in row) for row in cells)
    return Affinities(first[1], mean, std, tuple(entry[0] for entry in found), first[3])


def _affinities_under(runs: Path) -> list[tuple[Path, tuple[str, ...], list[list[float]], Any]]:
    """``(record, tasks, matrix, direction)`` of the records under ``runs`` that hold an affinity."""
    if not runs.exists():
        raise FileNotFoundError(f"runs folder {runs} not found; pass the folder that holds the runs' results.json files")
    root, paths = (runs.parent, [runs]) if runs.is_file() else (runs, record_paths(runs))
    found = []
    for path in paths:
        record = read_record(path, root)  # UntrustedFileError: one line naming the file
        try:
            validate_record(record)
        except RecordError as error:
            raise ValueError(f"run record {path} does not fit the schema ({error}); fix it or move it out of {root}") from None
        entry = _affinity_of(record, path, root)
        if entry is not None:
            found.append((path, *entry))
    return found


def group_score(affinity: Matrix, group: Sequence[int]) -> float:
    """What ``group`` adds to a partition's score: each member's mean affinity from the others.

    Example: task 0 gets (.1 + .6) / 2, task 1 (.2 + .5) / 2, task 2 (.4 + .3) / 2; alone, nothing.
        >>> z = [[0, .2, .4], [.1, 0, .3], [.6, .5, 0]]
        >>> round(group_score(z, (0, 1, 2)), 2), group_score(z, (1,))
        (1.05, 0.0)
    """
    if len(group) < 2:
        return 0.0
    return sum(affinity[i][j] for i in group for j in group if i != j) / (len(group) - 1)


def partition_score(affinity: Matrix, partition: Sequence[Sequence[int]]) -> float:
    """The sum of :func:`group_score` over the blocks (all singletons: 0)."""
    return sum(group_score(affinity, group) for group in partition)


def partition_count(count: int, most: int) -> int:
    """How many partitions :func:`partitions` enumerates: the sum over b <= ``most`` of the
    Stirling numbers of the second kind S(count, b), by their recurrence (no enumeration).

    Example:
        >>> partition_count(7, 3), partition_count(10, 10), partition_count(64, 2)
        (365, 115975, 9223372036854775808)
    """
    most = min(most, count)
    row = [1] + [0] * most  # S(0, b)
    for _ in range(count):
        row = [0] + [b * row[b] + row[b - 1] for b in range(1, most + 1)]
    return sum(row[1:])


def search_steps(count: int, networks: int) -> int:
    """The work of :func:`best_groupings` in task steps (one task of one partition scored):
    up to :data:`EXHAUSTIVE_MAX` tasks every partition into at most ``networks`` groups; beyond,
    one round of the hill climbing, every task moved to each of up to b groups from each start,
    for every budget b (a climb takes a few rounds: the bound is set on measured times)."""
    most = min(networks, count)
    if count <= EXHAUSTIVE_MAX:
        return count * partition_count(count, most)
    return (RESTARTS + 2) * count * count * most * (most + 1) // 2


def check_steps(steps: Callable[[int], int], count: int, networks: int, what: str, limit: int = MAX_SEARCH) -> None:
    """Refuse in one line, before any work, ``--networks`` whose ``steps(networks)`` (task steps:
    one task of one partition scored or enumerated) exceed ``limit``, naming the largest value
    within it."""
    needed = steps(networks)
    if needed > limit:
        fits = [budget for budget in range(1, min(networks, count) + 1) if steps(budget) <= limit]
        fix = f"give --networks {fits[-1]} or less" if fits else "pass the records of fewer tasks"
        raise ValueError(
            f"--networks {networks} over {count} tasks makes {what} of {needed:.2g} task steps, more than the {limit:.0e} allowed; {fix}"
        )


def check_search(count: int, networks: int) -> None:
    """Refuse in one line a search of ``count`` tasks into at most ``networks`` groups beyond
    :data:`MAX_SEARCH` (:func:`search_steps`), before it starts.

    Example:
        >>> check_search(64, 9)
        >>> check_search(64, 64)
        Traceback (most recent call last):
        ...
        ValueError: --networks 64 over 64 tasks makes a search of 8.5e+07 task steps, more than the 2e+06 allowed; give --networks 9 or less
    """
    check_steps(lambda budget: search_steps(count, budget), count, networks, "a search")


def check_sweep_tasks(tasks: Sequence[str], record: Path) -> None:
    """Refuse in one line naming ``record`` a task name no sweep takes
    (:func:`~mtlbench.leaderboards.folder_names.folder_name_problem`), before a spec is written with it."""
    for task in tasks:
        if problem := folder_name_problem(task):
            what = f"run record {record}: task {task!r} cannot name a sweep's run folder ({problem})"
            raise ValueError(f"{what}; rename the task or leave the record out")


def partitions(count: int, most: int) -> Iterator[Partition]:
    """Every partition of ``range(count)`` into at most ``most`` blocks, in restricted-growth order
    (item k joins block 0 .. len(blocks) - 1, or opens a new one): sum_{b <= most} S(count, b)."""
    blocks: list[list[int]] = []

    def grow(item: int) -> Iterator[Partition]:
        if item == count:
            yield tuple(tuple(block) for block in blocks)
            return
        for block in blocks:
            block.append(item)
            yield from grow(item + 1)
            block.pop()
        if len(blocks) < most:
            blocks.append([item])
            yield from grow(item + 1)
            blocks.pop()

    yield from grow(0)


def _better(a: Grouping, b: Grouping | None) -> bool:
    """Higher score; on a tie (within EPS) fewer groups, then the lexicographically smaller."""
    if b is None or a.score > b.score + EPS:
        return True
    return a.score >= b.score - EPS and (len(a.groups), a.groups) < (len(b.groups), b.groups)


def _canonical(labels: Sequence[int]) -> Partition:
    blocks: dict[int, list[int]] = {}
    for task, label in enumerate(labels):
        blocks.setdefault(label, []).append(task)
    return tuple(sorted(tuple(block) for block in blocks.values()))


def _climb(labels: list[int], most: int, score: Callable[[list[int]], float]) -> list[int]:
    """First-improvement hill climbing: move one task to another group (or a new one while fewer
    than ``most``) while that raises the score by more than EPS; tasks and groups in index order."""
    improved, current = True, score(labels)
    while improved:
        improved = False
        for task in range(len(labels)):
            used = sorted(set(labels))
            targets = used + ([max(used) + 1] if len(used) < most else [])
            for target in targets:
                if target != labels[task]:
                    moved = [*labels[:task], target, *labels[task + 1 :]]
                    if score(moved) > current + EPS:
                        labels, current, improved = moved, score(moved), True
                        break
    return labels


def best_groupings(affinity: Matrix, networks: int) -> Search:
    """The best partition of the tasks into at most b groups for b = 1 .. min(networks, T): every
    partition for T <= EXHAUSTIVE_MAX, else :data:`HILL_CLIMBING` (deterministic). Ties: fewer
    groups, then the lexicographically smaller partition. Refused beyond :data:`MAX_SEARCH`
    (:func:`check_search`)."""
    if networks < 1:
        raise ValueError(f"--networks must be at least 1 (the number of networks to train), got {networks}")
    count = len(affinity)
    check_search(count, networks)
    most = min(networks, count)
    cache: dict[Partition, float] = {}

    def score(partition: Partition) -> float:
        return sum(cache.setdefault(group, group_score(affinity, group)) for group in partition)

    per_size: dict[int, Grouping] = {}
    if count <= EXHAUSTIVE_MAX:
        enumerated = 0
        for partition in partitions(count, most):
            enumerated += 1
            candidate = Grouping(partition, score(partition))
            if _better(candidate, per_size.get(len(partition))):
                per_size[len(partition)] = candidate
        method = f"exhaustive over the {enumerated} partitions into at most {most} groups"
        best: list[Grouping] = []
        for size in range(1, most + 1):
            top = best[-1] if best else None
            best.append(per_size[size] if size in per_size and _better(per_size[size], top) else top)
    else:
        method, best = HILL_CLIMBING, []
        for size in range(1, most + 1):
            starts = [[0] * count] + [[random.Random(seed).randrange(size) for _ in range(count)] for seed in range(RESTARTS)]
            if best:
                starts.append([next(k for k, g in enumerate(best[-1].groups) if t in g) for t in range(count)])
            top = None
            for start in starts:
                labels = _climb(start, size, lambda labels: score(_canonical(labels)))
                candidate = Grouping(_canonical(labels), score(_canonical(labels)))
                top = candidate if _better(candidate, top) else top
            best.append(top)
    return Search(tuple(best), method, all_in_one=score((tuple(range(count)),)))


def _names(tasks: Sequence[str], group: Sequence[int]) -> list[str]:
    return [tasks[i] for i in group]


def render(affinities: Affinities, search: Search, networks: int) -> str:
    """The mean affinity matrix and the best partition per number of networks, as plain Markdown."""
    tasks = [markdown_text(task) for task in affinities.tasks]
    how = f", lookahead {markdown_text(affinities.direction)}" if affinities.direction else ""
    lines = [f"Inter-task affinity Z(from -> onto), mean over {len(affinities.runs)} run(s){how}", ""]
    lines += ["| from \\ onto | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    lines += [f"| {task} | " + " | ".join(f"{z:.3f}" for z in row) + " |" for task, row in zip(tasks, affinities.mean, strict=True)]
    spread = max(max(row) for row in affinities.std)
    lines += [f"(largest std of an entry across the runs: {spread:.3f})"] if len(affinities.runs) > 1 else []
    lines += ["", f"Task groupings ({search.method}; all singletons score {search.singletons:.3f})", ""]
    lines += ["| networks | groups | score | partition | chosen |", "|---|---|---|---|---|"]
    for size, grouping in enumerate(search.best, start=1):
        shown = " ".join("{" + ", ".join(_names(tasks, group)) + "}" for group in grouping.groups)
        mark = "*" if size == len(search.best) else ""
        lines.append(f"| {size} | {len(grouping.groups)} | {grouping.score:.3f} | {shown} | {mark} |")
    if networks > len(search.best):
        lines.append(f"(--networks {networks} > {len(tasks)} tasks: at most one network per task)")
    return "\n".join(lines) + "\n"


def _moved(value: Any, source: Path, target: Path) -> Any:
    """A relative path of the template (relative to ``source``) as one relative to ``target``."""
    if not isinstance(value, str) or Path(value).is_absolute():
        return value
    return os.path.relpath((source / value).resolve(), target.resolve())


def write_spec(template: Path, out: Path, tasks: Sequence[str], chosen: Grouping, command: str) -> dict:
    """A sweep spec at ``out``: the template's keys, its config paths made relative to ``out``'s
    folder, ``axes: {tasks: [groups of 2 or more]}``, ``tasks``: every task, ``stl`` on. Returns it."""
    groups = [_names(tasks, group) for group in chosen.groups if len(group) > 1]
    if not groups:
        raise ValueError("the chosen partition trains every task alone (no group gains from sharing); there is no multi-task run to write")
    spec = template_spec(template, out, tasks, groups)
    shown = " ".join("{" + ", ".join(_names(tasks, group)) + "}" for group in chosen.groups)
    header = [f"# Written by: {command}", f"# Chosen partition (score {chosen.score:.4f}): {shown}"]
    write_text_atomic(out, spec_text(spec, header, out))
    return spec


def spec_text(spec: dict, header: Sequence[str], out: Path) -> str:
    """``header`` (comment lines), a line saying how to run ``out``, then ``spec`` as YAML."""
    import yaml

    run = " ".join(str(out).splitlines())
    return "\n".join([*header, f"# Run it: mtlbench sweep {run}"]) + "\n" + yaml.safe_dump(spec, sort_keys=False, default_flow_style=None)


def template_spec(template: Path, out: Path, tasks: Sequence[str], groups: Sequence[Sequence[str]]) -> dict:
    """The sweep spec :func:`write_spec` writes, for the task sets ``groups``: the template's keys,
    its config paths made relative to ``out``'s folder, ``axes: {tasks: groups}``, ``tasks``:
    every task, ``stl`` on."""
    spec = load_yaml(Path(template), limit=MAX_SPEC_BYTES, what="sweep spec template")
    if not isinstance(spec, dict) or not isinstance(spec.get("base"), str):
        raise ValueError(f"sweep spec template {template} needs a mapping with base, methods, optimizers, seeds (see configs/sweeps/)")
    source, target = Path(template).parent, Path(out).parent
    spec["base"] = _moved(spec["base"], source, target)
    for key in ("methods", "optimizers"):  # (what is not a mapping is left for load_spec to name)
        entries = spec.get(key) if isinstance(spec.get(key), dict) else {}
        for name, entry in entries.items():
            if isinstance(entry, dict) and "config" in entry:
                entry["config"] = _moved(entry["config"], source, target)
            elif key == "methods":
                entries[name] = _moved(entry, source, target)
    if isinstance(spec.get("perf"), list):
        spec["perf"] = [_moved(item, source, target) for item in spec["perf"]]
    stl = spec.get("stl")
    if isinstance(stl, dict) and isinstance(stl.get("args"), list):
        for index, arg in enumerate(stl["args"]):
            key, sep, value = str(arg).partition("=")
            stl["args"][index] = f"{key}={_moved(value, source, target)}" if sep and value.endswith((".yaml", ".yml")) else arg
    spec["stl"] = stl if isinstance(stl, dict) else True
    spec["tasks"], spec["axes"] = list(tasks), {"tasks": [list(group) for group in groups]}
    return spec


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mtlbench groups",
        description="Which tasks to train together (at most B networks), from the runs' recorded inter-task affinity (Fifty et al. 2021).",
        epilog="Score: each task's mean affinity from the others of its group (0 alone), summed. Then: mtlbench sweep GROUPS.yaml",
    )
    parser.add_argument(
        "runs",
        type=Path,
        nargs="+",
        metavar="RUNS",
        help="folders of run records with task_affinity (searched recursively), or run folders",
    )
    parser.add_argument("--networks", type=int, required=True, metavar="B", help="the most networks (task groups) to train")
    parser.add_argument("--spec", type=Path, metavar="TEMPLATE.yaml", help="a sweep spec whose methods, optimizers and seeds to keep")
    parser.add_argument("--out", type=Path, metavar="GROUPS.yaml", help="where to write the sweep spec of the chosen groups")
    args = parser.parse_args(list(argv))
    if args.networks < 1:
        raise ValueError(f"--networks must be at least 1 (the number of networks to train), got {args.networks}")
    if (args.spec is None) != (args.out is None):
        raise ValueError("--spec and --out go together: give the template sweep spec and where to write the groups' spec")
    if args.spec is not None and not args.spec.is_file():
        raise FileNotFoundError(f"sweep spec template {args.spec} not found; give a sweep spec, e.g. configs/sweeps/study_tasks.yaml")
    affinities = read_affinities(args.runs)
    if args.out is not None:
        check_sweep_tasks(affinities.tasks, affinities.runs[0])
    search = best_groupings(affinities.mean, args.networks)
    print(render(affinities, search, args.networks), end="")
    if args.out is not None:
        command = " ".join(shlex.quote(arg) for arg in ("mtlbench", "groups", *argv)).replace("\n", " ")
        write_spec(args.spec, args.out, affinities.tasks, search.chosen, command)
        print(f"\nwrote {args.out}; run it with: mtlbench sweep {args.out}")
    return 0
