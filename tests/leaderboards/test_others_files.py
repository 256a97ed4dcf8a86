"""Others' files, round two: every hostile input is one line or one "left out" entry, bounded in
time and memory, and the rest of the board is what it is without it."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from mtlbench.leaderboards import site
from mtlbench.leaderboards.admission import load_admitted_runs
from mtlbench.leaderboards.cli import main, render_leaderboard
from mtlbench.leaderboards.site_folder import MARKER, SiteFolder, SiteFolderError
from mtlbench.leaderboards.tables import build_boards
from mtlbench.leaderboards.untrusted import MAX_YAML_NODES, UntrustedFileError, load_json, parse_yaml
from tests.leaderboards.fixture_runs import write_fixture_runs

TARGET = "UW-Adam-s1"  # the record each case spoils


def record_path(root: Path, name: str = TARGET) -> Path:
    return root / name / "version_0" / "results.json"


def edit(root: Path, name: str, change) -> None:
    path = record_path(root, name)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def deltas(root: Path) -> dict[tuple[str, str], list[float]]:
    """Each board row's per-seed Delta_m, keyed by (optimizer, row label)."""
    runs, _ = load_admitted_runs(root)
    return {(board.optimizer, row.label): row.delta_metric for board in build_boards(runs) for row in board.rows}


def left_out(root: Path) -> list[str]:
    runs, problems = load_admitted_runs(root)
    return [f"{run.path}: {run.exclusion}" for run in runs if run.left_out or run.exclusion.startswith("duplicate")] + problems


@pytest.fixture
def clean(tmp_path) -> tuple[Path, dict]:
    """The fixture board, and its rows without the record the cases spoil (what they must give)."""
    reference = write_fixture_runs(tmp_path / "reference")
    shutil.rmtree(reference / TARGET)
    return write_fixture_runs(tmp_path / "runs"), deltas(reference)


def huge_integer(root, name=TARGET):
    path = record_path(root, name)
    path.write_text(re.sub(r'"lr": [0-9.e-]+', '"lr": ' + "9" * 400, path.read_text()))


def lone_surrogate(root, name=TARGET):
    path = record_path(root, name)
    path.write_text(path.read_text().replace('"name": "UW"', '"name": "UW\\ud800"'))


def fifo(root, name=TARGET):
    record_path(root, name).unlink()
    os.mkfifo(record_path(root, name))


def dev_zero(root, name=TARGET):
    record_path(root, name).unlink()
    record_path(root, name).symlink_to("/dev/zero")


def outside_link(root, name=TARGET):
    secret = root.parent / "private.json"
    secret.write_text(record_path(root, name).read_text())
    record_path(root, name).unlink()
    record_path(root, name).symlink_to(secret)


def long_string(root):
    edit(root, TARGET, lambda record: record["config"]["model"]["net"].update(class_path="x." * 50_000))


def control_characters(root):
    edit(root, TARGET, lambda record: record["method"].update(name="UW\u202e\u0000\n| x"))


def out_of_range(root):
    edit(root, TARGET, lambda record: record["gradient_statistics"]["inter_task/cos"].update(mean=7.0))


def extra_metric(root):
    def change(record):
        record["metrics"]["test"]["depth"]["extra"] = 1.0
        record["directions"]["depth"]["extra"] = "lower"

    edit(root, TARGET, change)


def flipped_direction(root):
    edit(root, TARGET, lambda record: record["directions"]["depth"].update(abs_err="higher"))


def contradicting_tasks(root):
    edit(root, TARGET, lambda record: record["config"].update(data={"init_args": {"tasks": ["segmentation"]}}))


CASES = {
    "huge integer": (huge_integer, "an integer of 400 digits, beyond +-2^64"),
    "lone surrogate": (lone_surrogate, "method.name is not valid Unicode (a lone surrogate)"),
    "FIFO": (fifo, "is not a regular file"),
    "/dev/zero link": (dev_zero, "is a link that leads outside the folder read"),
    "link outside the runs folder": (outside_link, "is a link that leads outside the folder read"),
    "100 kB string": (long_string, "config.model.net.class_path is a string of 100000 characters, more than 4096"),
    "control characters in a name": (control_characters, "method.name must be a name of 1 to 200 printable characters"),
    "cosine out of range": (out_of_range, "gradient_statistics['inter_task/cos'].mean must lie in [-1, 1]"),
    "extra metric": (extra_metric, "depth measured by abs_err (lower), extra (lower), rel_err (lower), the board by abs_err (lower)"),
    "flipped direction": (flipped_direction, "depth/abs_err says higher is better, the board lower (as 4 of its 4 single-task baselines)"),
    "tasks the config contradicts": (contradicting_tasks, "config.data.init_args.tasks differs from dataset.tasks"),
}


@pytest.mark.timeout(30)  # a reader that blocks (a FIFO) or spins (/dev/zero) fails, not hangs
@pytest.mark.parametrize("case", CASES)
def test_a_hostile_record_is_one_left_out_entry_and_the_board_is_as_without_it(clean, case):
    runs, expected = clean
    spoil, reason = CASES[case]
    spoil(runs)
    lines = left_out(runs)
    assert [line for line in lines if reason in line] and len(lines) == 1, lines
    assert lines[0].startswith(f"{TARGET}/version_0/results.json: ")
    assert deltas(runs) == expected


def test_without_the_guards_a_flipped_direction_moves_the_board(clean):
    """Negative control: the same record let in (no admission) changes UW's row; admitted, not."""
    runs, expected = clean
    flipped_direction(runs)
    from mtlbench.leaderboards.records import load_runs

    unguarded, _ = load_runs(runs)
    rows = {(board.optimizer, row.label): row.delta_metric for board in build_boards(unguarded) for row in board.rows}
    assert rows[("Adam", "UW")] != expected[("Adam", "UW")] and deltas(runs) == expected


@pytest.mark.parametrize("how", ["copied folder", "second record of the seed"])
def test_a_board_admits_a_run_once(clean, how):
    runs, _ = clean
    before = deltas(runs)
    shutil.copytree(runs / "EW-Adam-s0", runs / "zz-EW-Adam-s0")
    if how == "second record of the seed":  # other numbers, same run: would pull EW's mean
        edit(runs, "zz-EW-Adam-s0", lambda record: record["metrics"]["test"]["depth"].update(abs_err=0.2))
    duplicate = "duplicate of EW-Adam-s0/version_0/results.json (same method, optimizer, lr, seed and setting)"
    assert left_out(runs) == [f"zz-EW-Adam-s0/version_0/results.json: {duplicate}"]
    assert deltas(runs) == before


@pytest.mark.timeout(30)  # a reader that blocks (a FIFO) or spins (/dev/zero) fails, not hangs
def test_the_leaderboard_command_lists_every_hostile_record_and_writes_whole_files(tmp_path, capsys):
    runs = write_fixture_runs(tmp_path / "runs")
    for name, spoil in (("UW-Adam-s1", lone_surrogate), ("UW-Adam-s2", fifo), ("MGDA-SGD-s0", huge_integer)):
        spoil(runs, name)
    assert main([str(runs), "--out", str(tmp_path / "out"), "--no-png"]) == 0
    table = (tmp_path / "out" / "leaderboard.md").read_text()
    for name in ("UW-Adam-s1", "UW-Adam-s2", "MGDA-SGD-s0"):
        assert f"- {name}/version_0/results.json: unreadable run record: " in table
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "findings.md",
        "leaderboard.csv",
        "leaderboard.md",
        "leaderboard.tex",
    ]
    assert all((path.stat().st_mode & 0o044) == 0o044 for path in (tmp_path / "out").iterdir())  # world-readable, as published


@pytest.mark.timeout(30)  # a reader that blocks (a FIFO) or spins (/dev/zero) fails, not hangs
def test_publishing_copies_only_the_records_inside_the_runs_folder(clean, tmp_path):
    runs, _ = clean
    outside_link(runs)
    os.chmod(runs.parent / "private.json", 0o600)
    assert main([str(runs), "--keep-records", "--out", str(tmp_path / "published"), "--no-png"]) == 0
    kept = tmp_path / "published" / "records"
    assert not (kept / TARGET).exists() and (kept / "UW-Adam-s0" / "version_0" / "results.json").is_file()
    table = (tmp_path / "published" / "leaderboard.md").read_text()
    assert f"- {TARGET}/version_0/results.json: not kept: is a link that leads outside the folder read" in table
    assert "private" not in table


def test_a_linked_run_folder_is_named_not_entered(clean, tmp_path):
    runs, expected = clean
    shutil.move(runs / TARGET, tmp_path / "elsewhere")
    (runs / TARGET).symlink_to(tmp_path / "elsewhere")
    (runs / "EW-Adam-s0" / "wandb").mkdir()
    (runs / "EW-Adam-s0" / "wandb" / "latest-run").symlink_to(tmp_path)  # what W&B writes: not a run folder
    assert left_out(runs) == [f"{TARGET}: a linked folder; its records are not read (copy the runs themselves into the folder)"]
    assert deltas(runs) == expected


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join([*lines, f"report: {{published: *a{levels - 1}}}"]) + "\n"


@pytest.mark.timeout(30)  # a reader that blocks (a FIFO) or spins (/dev/zero) fails, not hangs
def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys):
    spec = tmp_path / "bomb.yaml"
    spec.write_text(alias_bomb())
    from mtlbench.leaderboards.report import main as report_main

    start = time.perf_counter()
    assert report_main([str(spec), str(write_fixture_runs(tmp_path / "runs"))]) == 2
    assert time.perf_counter() - start < 10
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "its aliases expand it to 9.26e+08 nodes, more than 100000" in line
    assert parse_yaml(alias_bomb(levels=2)) is not None  # a few aliases are fine: 1 + 9 * 10 + ... nodes
    small = "a: &a [1, 2]\nb: *a\nc: *a\n"
    assert parse_yaml(small) == {"a": [1, 2], "b": [1, 2], "c": [1, 2]} and MAX_YAML_NODES > 10


def test_a_self_referencing_yaml_alias_is_refused():
    with pytest.raises(ValueError, match="its aliases expand it to inf nodes"):
        parse_yaml("a: &a [*a]\n")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"lr": ' + "1" * 21 + "}", "an integer of 21 digits"),
        ('{"a": "\\udc00"}', "a is not valid Unicode"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"a": 1', "is not JSON (Expecting"),
    ],
)
def test_the_json_reader_bounds(tmp_path, text, reason):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(UntrustedFileError, match=re.escape(reason)):
        load_json(path, tmp_path)
    path.write_text('{"lr": 18446744073709551615, "nan": NaN}')  # 2^64 - 1 and a diverged run's NaN: data
    assert load_json(path, tmp_path)["lr"] == 2**64 - 1


def test_html_refuses_a_folder_it_did_not_write_and_replaces_only_its_own_files(clean, tmp_path, capsys):
    runs, _ = clean
    foreign = tmp_path / "www"
    foreign.mkdir()
    (foreign / "about.html").write_text("mine")
    assert main([str(runs), "--out", str(tmp_path / "t"), "--no-png", "--html", str(foreign)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"mtlbench leaderboard: error: --html {foreign}: the folder holds files mtlbench")
    assert (foreign / "about.html").read_text() == "mine" and not (tmp_path / "t").exists()
    ours = tmp_path / "site"
    assert main([str(runs), "--out", str(tmp_path / "t"), "--no-png", "--html", str(ours)]) == 0
    (ours / "notes.txt").write_text("kept")  # added by hand to a generated folder
    written = sorted(path.name for path in ours.iterdir())
    assert main([str(runs), "--out", str(tmp_path / "t"), "--no-png", "--html", str(ours)]) == 0
    assert sorted(path.name for path in ours.iterdir()) == written and (ours / "notes.txt").read_text() == "kept"


def test_colliding_page_names_get_pages_of_their_own(clean, tmp_path, monkeypatch):
    runs, _ = clean
    monkeypatch.setattr(site, "slug", lambda name: "same")  # every name collides
    render_leaderboard(runs, tmp_path / "t", png=False, html=tmp_path / "site")
    pages = {path.name: path.read_text() for path in (tmp_path / "site").glob("same-same*.html")}
    titles = sorted(re.search(r"<h1>(.*?)</h1>", text).group(1) for text in pages.values())
    assert titles == ["EW", "MGDA", "UW"]  # one page each, none overwritten
    folder = SiteFolder(tmp_path / "again")
    assert [folder.claim("x", ".html") for _ in range(3)] == ["x.html", "x-2.html", "x-3.html"]
    (tmp_path / "again" / "y.html").write_text("not ours")
    with pytest.raises(SiteFolderError, match=r"y\.html is in the folder and mtlbench did not write it"):
        folder.claim("y", ".html")
    assert (tmp_path / "again" / MARKER).read_text().splitlines()[1:] == ["x.html", "x-2.html", "x-3.html"]


def files_under(folder: Path) -> dict[Path, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("name", ["EW-Adam-s0", "stl-seg-Adam-s0"])
def test_a_copy_with_its_seed_edited_counts_once(clean, name):
    """A copied run folder whose record's seed was edited (0 -> 7) is the same run, not one more
    seed: its configuration and every metric are bit for bit the original's."""
    runs, _ = clean
    before = deltas(runs)
    shutil.copytree(runs / name, runs / f"zz-{name}")
    edit(runs, f"zz-{name}", lambda record: record.update(seed=7))
    copy = f"same configuration and metrics as {name}/version_0/results.json (seed 0): a copy with its seed edited, counted once"
    assert left_out(runs) == [f"zz-{name}/version_0/results.json: {copy}"]
    assert deltas(runs) == before


def test_two_seeds_that_differ_in_one_bit_of_one_metric_are_two_runs(clean):
    """The rule is strict: a genuine seed is never merged, however close its metrics are."""
    runs, _ = clean
    shutil.copytree(runs / "EW-Adam-s0", runs / "zz-EW-Adam-s7")

    def other_seed(record):
        record["seed"] = 7
        depth = record["metrics"]["test"]["depth"]
        depth["abs_err"] = math.nextafter(depth["abs_err"], math.inf)

    edit(runs, "zz-EW-Adam-s7", other_seed)
    assert left_out(runs) == []
    assert len(deltas(runs)[("Adam", "EW (lr 0.001)")]) == 4


@pytest.mark.timeout(30)
def test_publishing_keeps_only_the_records_the_table_admits(clean, tmp_path):
    """--keep-records publishes what the table was computed from: a 10 MB file named
    results.json that is no JSON, a record the schema rejects, or a copy of a run with its
    seed edited is listed, not published."""
    runs, _ = clean
    record_path(runs).write_bytes(b"\x00not a record" * 800_000)  # 10.4 MB, below the 16 MB a record may take
    edit(runs, "MGDA-SGD-s0", lambda record: record.update(seed="0"))
    shutil.copytree(runs / "EW-Adam-s0", runs / "zz-EW-Adam-s7")
    edit(runs, "zz-EW-Adam-s7", lambda record: record.update(seed=7))
    outside = files_under(tmp_path)
    out = tmp_path / "published"
    assert main([str(runs), "--keep-records", "--out", str(out), "--no-png"]) == 0
    kept = out / "records"
    assert not (kept / TARGET).exists() and not (kept / "MGDA-SGD-s0").exists()
    dropped = (TARGET, "MGDA-SGD-s0", "zz-EW-Adam-s7")
    assert sorted(files_under(kept)) == sorted(path for path in files_under(runs) if path.parts[0] not in dropped)
    table = (out / "leaderboard.md").read_text()
    left = table.split("## Runs left out")[1]
    assert f"- {TARGET}/version_0/results.json: not kept: unreadable run record: is not JSON (Expecting value at line 1)" in left
    assert "- MGDA-SGD-s0/version_0/results.json: not kept: rejected run record (seed must be an integer" in left
    assert "- zz-EW-Adam-s7/version_0/results.json: not kept: same configuration and metrics as EW-Adam-s0" in left
    assert table.count(TARGET) == 1 and table.count("MGDA-SGD-s0") == 1  # one entry each
    assert {path: data for path, data in files_under(tmp_path).items() if path.parts[0] != "published"} == outside
    reference = write_fixture_runs(tmp_path / "without-both")  # the board without the two records
    for name in (TARGET, "MGDA-SGD-s0"):
        shutil.rmtree(reference / name)
    assert deltas(kept) == deltas(reference)
