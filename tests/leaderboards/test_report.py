"""`mtlbench report`: our runs beside a paper's published numbers, from fixture records
(golden files), and the published tables as checked data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from mtlbench.leaderboards.published import PublishedError, load_published
from mtlbench.leaderboards.report import Side, check_claim, data_check, main, paper_side, render_report
from tests.leaderboards.report_runs import write_report_runs

ROOT = Path(__file__).resolve().parents[2]
PAPERS = ROOT / "leaderboards" / "papers"
GOLDEN = ROOT / "tests" / "fixtures" / "golden"


def _spec(path: Path, tables: list[str], test_metrics: str = "selected", stl: dict | None = None) -> Path:
    report = {"published": [str(PAPERS / name) for name in tables], "test_metrics": test_metrics}
    path.write_text(yaml.safe_dump({"base": "unused.yaml", "stl": stl or {"optimizer": "Adam"}, "report": report}))
    return path


def _check_golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{name} differs; rerun with UPDATE_GOLDEN=1 if the change is intended"


def test_report_on_the_papers_dataset_matches_the_golden_file(tmp_path):
    """Cityscapes runs beside Nash-MTL's and Elich et al.'s tables: per-metric differences,
    Delta_m both ways, ranks, and every claim on both sides."""
    runs = write_report_runs(tmp_path / "runs", "CityscapesDataModule", ["segmentation", "depth"])
    spec = _spec(tmp_path / "paper_cityscapes.yaml", ["navon2022_cityscapes.yaml", "elich2024_cityscapes_segnet.yaml"])
    text = render_report(spec, runs)
    _check_golden("report_cityscapes.md", text)
    assert "### Each metric: ours vs the paper's" in text
    assert "Optimizers only in the paper, left out of the comparison: signSGD." in text


def test_report_on_other_data_compares_orders_and_claims_only(tmp_path):
    runs = write_report_runs(tmp_path / "runs", "SyntheticScenesDataModule", ["segmentation", "depth", "normal"])
    spec = _spec(tmp_path / "paper_synthetic.yaml", ["famo2023_nyuv2.yaml"], test_metrics="selected")
    text = render_report(spec, runs)
    _check_golden("report_synthetic.md", text)
    assert "not the paper's NYUv2DataModule" in text and "Each metric" not in text
    # FAMO's own claim, on the common methods: FAMO -4.10 is lowest in the paper; in ours Nash-MTL is
    assert "| holds: FAMO -4.10; next Nash-MTL -4.04 | does not hold: Nash-MTL" in text


def test_the_command_writes_the_report_and_bad_specs_are_one_line(tmp_path, capsys):
    runs = write_report_runs(tmp_path / "runs", "CityscapesDataModule", ["segmentation", "depth"])
    spec = _spec(tmp_path / "spec.yaml", ["navon2022_cityscapes.yaml"])
    assert main([str(spec), str(runs), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.md").read_text().startswith("# spec: our runs beside the published numbers")
    capsys.readouterr()
    (tmp_path / "bare.yaml").write_text("base: x.yaml\n")
    assert main([str(tmp_path / "bare.yaml"), str(runs)]) == 2
    assert main([str(spec), str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"mtlbench report: error: sweep spec {tmp_path / 'bare.yaml'} has no 'report: {{published: [FILE, ...]}}' section "
        "(see configs/sweeps/paper_*.yaml)",
        f"mtlbench report: error: runs folder {tmp_path / 'nowhere'} not found; run `mtlbench sweep {spec}` first",
    ]


def test_strings_from_published_files_are_escaped(tmp_path):
    data = yaml.safe_load((PAPERS / "navon2022_cityscapes.yaml").read_text())
    data["title"] = "<script>alert(1)</script> | x"
    data["rows"][0]["paper_name"] = "[LS](javascript:alert(1))"
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(yaml.safe_dump(data, allow_unicode=True))
    runs = write_report_runs(tmp_path / "runs", "CityscapesDataModule", ["segmentation", "depth"])
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"stl": {"optimizer": "Adam"}, "report": {"published": [str(hostile)]}}))
    text = render_report(spec, runs)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; \\| x" in text
    assert "| \\[LS\\](javascript:alert(1)) |" in text and "| [LS]" not in text  # no link: its brackets are escaped


def test_every_published_table_loads_and_its_printed_delta_m_matches_its_metrics():
    """The stored numbers against themselves: each printed Delta_m equals the one recomputed
    from the printed metrics within rounding, except IMTL-G's in Table 1 of FAMO (and Table 2
    of Nash-MTL, which it copies): printed -0.76, its metrics give -0.60."""
    flagged = {}
    for path in sorted(PAPERS.glob("*.yaml")):
        table = load_published(path)
        assert table.rows and table.claims and table.source["url"].startswith("https://arxiv.org/abs/")
        flagged[path.name] = data_check(table)
    assert flagged.pop("famo2023_nyuv2.yaml") == ["IMTL-G (Adam): printed -0.76, recomputed -0.60"]
    assert all(lines == [] for lines in flagged.values()), flagged


BAD_FIELDS = [
    ({"schema": "other"}, "expected a mapping with schema: mtlbench.published/1"),
    ({"stl": [74.01, 93.16, 0.0125]}, "stl must list 4 numbers, one per column"),
    ({"scale": [100, 100, 1, float("nan")]}, "scale\\[3\\] must be a finite number"),
    ({"higher_is_better": [True, True, False]}, "higher_is_better must list 4 booleans"),
    ({"claims": [{"kind": "vibes", "quote": "x"}]}, "claims\\[0\\].kind must be one of best, best_rank"),
    ({"claims": [{"kind": "best", "method": "UW"}]}, "claims\\[0\\] needs the paper's words as 'quote', or 'read_from: table'"),
    ({"claims": [{"kind": "adam_beats_sgd", "share": "most", "quote": "x"}]}, "claims\\[0\\].share must be one of all, majority"),
    ({"source": {"citation": "c", "url": "http://x", "table": "t", "quote": "q"}}, "source.url must be an https address"),
    ({"stl": [0, 93.16, 0.0125, 27.77]}, "a single-task value of 0 leaves Delta_m undefined"),
]


@pytest.mark.parametrize(("change", "message"), BAD_FIELDS, ids=[message[:30] for _, message in BAD_FIELDS])
def test_a_bad_published_table_is_one_line_naming_the_file_and_field(tmp_path, change, message):
    data = yaml.safe_load((PAPERS / "navon2022_cityscapes.yaml").read_text())
    data.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(PublishedError, match=f"published table {path}: {message}") as error:
        load_published(path)
    assert "\n" not in str(error.value)


def test_a_row_with_an_unknown_field_or_a_bad_number_is_refused(tmp_path):
    data = yaml.safe_load((PAPERS / "navon2022_cityscapes.yaml").read_text())
    data["rows"][1]["values"][2] = "0.0161"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(PublishedError, match=r"rows\[1\].values\[2\] must be a finite number, got '0.0161'"):
        load_published(path)
    data["rows"][1]["values"][2] = 0.0161
    data["rows"][1]["std"] = 1.0
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(PublishedError, match=r"rows\[1\] has unknown fields \['std'\]"):
        load_published(path)


def _side(deltas: dict[tuple[str, str], float], gradients: dict[str, float] | None = None) -> Side:
    from mtlbench.leaderboards.report import Entry

    entries = {key: Entry(key[0], key[1], {}, value, value) for key, value in deltas.items()}
    return Side(entries, gradients or {})


def test_claims_hold_exactly_when_the_numbers_say_so():
    from mtlbench.leaderboards.published import Claim

    table = load_published(PAPERS / "elich2024_cityscapes_segnet.yaml")
    paper = _side({("EW", "Adam"): 5.0, ("UW", "Adam"): 1.0, ("EW", "SGD"): 9.0, ("UW", "SGD"): 8.0})
    ours = _side({("EW", "Adam"): 2.0, ("UW", "Adam"): 3.0, ("EW", "SGD"): 1.0, ("UW", "SGD"): 4.0})
    best = check_claim(Claim("best", "", method="UW"), table, paper, ours)
    assert best.paper.startswith("holds: UW +1.00") and best.ours.startswith("does not hold: EW +2.00 is lowest; UW +3.00 (place 2 of 2)")
    beats = check_claim(Claim("beats", "", method="UW", reference="EW"), table, paper, ours)
    assert beats.paper.startswith("holds") and beats.ours.startswith("does not hold")
    everyone = check_claim(Claim("adam_beats_sgd", "q", share="all"), table, paper, ours)
    assert everyone.paper == "holds: Adam lower for 2 of 2 methods"
    assert everyone.ours == "does not hold: Adam lower for 1 of 2 methods; SGD lower for EW"
    most = check_claim(Claim("adam_beats_sgd", "q", share="majority"), table, paper, ours)
    assert most.ours.startswith("does not hold: Adam lower for 1 of 2")  # a tie is not a majority
    changes = check_claim(Claim("best_changes", "q"), table, paper, ours)
    assert changes.paper == "does not hold: best under Adam UW +1.00, under SGD UW +8.00"
    assert changes.ours == "does not hold: best under Adam EW +2.00, under SGD EW +1.00"
    swapped = _side({**{key: entry.delta_metric for key, entry in ours.entries.items()}, ("UW", "SGD"): 0.5})
    assert check_claim(Claim("best_changes", "q"), table, paper, swapped).ours == "holds: best under Adam EW +2.00, under SGD UW +0.50"
    missing = check_claim(Claim("beats", "", method="FAMO", reference="EW"), table, paper, ours)
    assert missing.ours == "not checked: FAMO or EW is missing"


def test_gradient_claims_read_our_ew_runs_and_say_when_they_cannot():
    from mtlbench.leaderboards.published import Claim

    table = load_published(PAPERS / "elich2024_nyuv2_segnet.yaml")
    paper = paper_side(table)
    ours = _side({}, {"cos": 0.05, "mag_sim": 0.7, "sample_cos": 0.2, "sample_mag_sim": 0.95})
    gap = check_claim(Claim("magnitude_gap", "q"), table, paper, ours)
    assert gap.paper == "stated (the paper shows it in figures only)"
    assert gap.ours == "holds: magnitude similarity inter-task 0.700, inter-sample 0.950 (EW, mean over runs)"
    conflict = check_claim(Claim("sample_conflict", "q"), table, paper, ours)
    assert conflict.ours.startswith("does not hold: cosine similarity inter-task 0.050, inter-sample 0.200")
    bare = check_claim(Claim("sample_conflict", "q"), table, paper, _side({}))
    assert bare.ours.startswith("not checked: the EW runs have no gradient statistics")


def test_suspect_rows_are_shown_but_left_out_of_ranks_and_claims():
    table = load_published(PAPERS / "famo2023_cityscapes.yaml")
    assert ("EW", "Adam") not in paper_side(table).entries  # FAMO prints LS with SI's numbers
    assert next(row for row in table.rows if row.paper_name == "LS").suspect.startswith("prints the SI row's numbers")


def _spec_with(path: Path, key: str, value) -> Path:
    """A valid spec with the value at ``key`` (dotted, ``[0]`` for a list's first item) replaced."""
    spec = {
        "stl": {"optimizer": "Adam", "args": ["--trainer.max_epochs=1"]},
        "report": {"published": [str(PAPERS / "navon2022_cityscapes.yaml")], "test_metrics": "selected"},
    }
    *parents, last = key.replace("[0]", ".0").split(".")
    holder = spec
    for part in parents:
        holder = holder[int(part) if part.isdigit() else part]
    holder[int(last) if last.isdigit() else last] = value
    path.write_text(yaml.safe_dump(spec))
    return path


WRONG = {"a list": ["Adam"], "a mapping": {"name": "Adam"}, "an integer": 3, "null": None, "an empty list": []}
SPEC_KEYS = {  # key -> the kind it takes
    "report": "a mapping",
    "report.published": "a list",
    "report.published[0]": "a string",
    "report.test_metrics": "a string",
    "stl": "a mapping",
    "stl.optimizer": "a string",
    "stl.args": "a list",
    "stl.args[0]": "a string",
}
OPTIONAL = {("stl", "null"), ("stl.optimizer", "null"), ("stl.args", "an empty list")}  # the default: each board's own baselines
NO_SECTION = {("report", "null"), ("report.published", "null")}  # a report without published tables
SPEC_CASES = [(key, kind) for key, takes in SPEC_KEYS.items() for kind in WRONG if kind != takes and (key, kind) not in OPTIONAL]


@pytest.mark.parametrize(("key", "kind"), SPEC_CASES, ids=[f"{key}={kind}" for key, kind in SPEC_CASES])
def test_a_report_spec_key_of_the_wrong_type_is_one_line_naming_it(tmp_path, capsys, key, kind):
    runs = write_report_runs(tmp_path / "runs", "CityscapesDataModule", ["segmentation", "depth"])
    spec = _spec_with(tmp_path / "spec.yaml", key, WRONG[kind])
    assert main([str(spec), str(runs), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    if (key, kind) in NO_SECTION:
        expected = f"sweep spec {spec} has no 'report: {{published: [FILE, ...]}}' section"
    else:
        expected = f"sweep spec {spec}: {key} must be "
    assert captured.err.startswith(f"mtlbench report: error: {expected}"), captured.err
    assert (key, kind) in NO_SECTION or captured.err.rstrip().endswith(f", got {kind}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["runs", "spec.yaml"]  # nothing written


@pytest.mark.parametrize(("key", "kind"), sorted(OPTIONAL))
def test_a_report_spec_without_baselines_of_its_own_is_read(tmp_path, key, kind):
    runs = write_report_runs(tmp_path / "runs", "CityscapesDataModule", ["segmentation", "depth"])
    assert main([str(_spec_with(tmp_path / "spec.yaml", key, WRONG[kind])), str(runs), "--out", str(tmp_path / "out")]) == 0
