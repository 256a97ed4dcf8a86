"""Run records from others are data: hostile names render inert, malformed records are rejected
with their reason, and nothing of a rejected record reaches a table."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

import pytest

from mtlbench.leaderboards.cli import main, render_leaderboard
from mtlbench.leaderboards.escape import csv_text, latex_text, markdown_text
from mtlbench.leaderboards.schema import RecordError, validate_record
from tests.leaderboards.fixture_runs import record

SCRIPT = "<script>alert(1)</script>"
ISSUE_NAME = r"EW | x <script>alert(1)</script> \input{/etc/passwd}"  # the name the issue tried
LATEX = r"\input{/etc/passwd}"
PIPE_METRIC = "x | y"
LINK = "[click](javascript:alert(1))"


def write(root: Path, name: str, payload) -> None:
    folder = root / name / "version_0"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(payload if isinstance(payload, str) else json.dumps(payload))


def hostile_world(root: Path) -> Path:
    """EW and three hostile-named methods over two tasks whose metric names are hostile too,
    their single-task baselines, and malformed records."""
    metrics = {"segmentation": PIPE_METRIC, "depth": LATEX}
    directions = {"segmentation": {PIPE_METRIC: "higher"}, "depth": {LATEX: "lower"}}
    for index, method in enumerate(["EW", ISSUE_NAME, SCRIPT, LINK, "=HYPERLINK(1)"]):
        for seed in range(2):
            values = {task: {metric: 0.5 + 0.01 * index + 0.001 * seed} for task, metric in metrics.items()}
            run = record(method, "Adam", seed, list(metrics), values)
            run["directions"] = directions
            write(root, f"m{index}-s{seed}", run)
    for task, metric in metrics.items():
        for seed in range(2):
            run = record("EW", "Adam", seed, [task], {task: {metric: 0.5}})
            run["directions"] = {task: directions[task]}
            write(root, f"stl-{task}-s{seed}", run)
    good = record("UW", "Adam", 0, list(metrics), {task: {metric: 0.5} for task, metric in metrics.items()})
    write(root, "bad-method-string", good | {"method": "EW"})  # the issue's traceback
    write(root, "bad-missing-dataset", {key: value for key, value in good.items() if key != "dataset"})
    write(root, "bad-nan-lr", good | {"optimizer": {"name": "Adam", "lr": float("nan")}})
    write(root, "bad-string-metric", good | {"metrics": {"val": [], "test": {"segmentation": {PIPE_METRIC: "0.9"}}}})
    write(root, "bad-undeclared-task", good | {"metrics": {"val": [], "test": {"edges <b>": {"f1": 0.9}}}})
    write(root, "bad-json", "{not json")
    return root


@pytest.fixture
def rendered(tmp_path) -> tuple[Path, str]:
    out = tmp_path / "out"
    text = render_leaderboard(hostile_world(tmp_path / "runs"), out, png=True)
    return out, text


def tables(markdown: str) -> list[list[list[str]]]:
    """Cells of every row of every table, split on the pipes Markdown splits on (unescaped ones)."""
    found, rows = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|") and not line.startswith("|---"):
            rows.append(re.split(r"(?<!\\)\|", line.strip())[1:-1])
        elif not line.startswith("|") and rows:
            found, rows = [*found, rows], []
    return found


def table_rows(markdown: str) -> list[list[str]]:
    """The rows of the first table."""
    return tables(markdown)[0]


def test_hostile_names_render_inert_in_markdown(rendered):
    _, text = rendered
    assert "<script" not in text and "<" not in text.replace("<!--", "").replace("-->", "")
    assert not re.search(r"(?<!\\)\]\(javascript", text)  # no link: the brackets are escaped
    assert all(len({len(row) for row in table}) == 1 for table in tables(text))  # no row has a column more than its header
    rows = table_rows(text)
    labels = [row[0].strip().removesuffix(" ≈") for row in rows]
    assert markdown_text(ISSUE_NAME) in labels and markdown_text(SCRIPT) in labels
    assert any(f"segmentation/{markdown_text(PIPE_METRIC)} (↑)" in cell for cell in rows[0])


def test_hostile_names_render_inert_in_latex(rendered):
    out, _ = rendered
    tex = (out / "leaderboard.tex").read_text()
    assert r"\input" not in tex and LATEX not in tex
    assert latex_text(ISSUE_NAME) in tex
    assert latex_text(LATEX) in tex  # the metric's column header


def test_hostile_names_stay_text_in_csv(rendered):
    out, _ = rendered
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    methods = {row["method"] for row in rows}
    assert {ISSUE_NAME, SCRIPT, "'=HYPERLINK(1)"} <= methods  # a formula is text with a leading quote
    assert f"segmentation/{PIPE_METRIC}_mean" in rows[0]


def test_malformed_records_are_rejected_with_their_reason_and_never_half_read(rendered):
    _, text = rendered
    left_out = text.split("## Runs left out")[1]
    for folder, reason in [
        ("bad-method-string", "method must be an object"),
        ("bad-missing-dataset", "dataset must be an object"),
        ("bad-nan-lr", "optimizer.lr must be finite"),
        ("bad-string-metric", "must be a number"),
        ("bad-undeclared-task", "which dataset.tasks does not declare"),
        ("bad-json", "unreadable run record: is not JSON (Expecting"),
    ]:
        assert re.search(rf"- {folder}/version_0/results\.json: .*{re.escape(reason)}", left_out), folder
    table = text.split("## Runs left out")[0]
    assert "UW" not in table  # the only UW runs are the rejected ones


def test_the_leaderboard_command_survives_every_hostile_record(tmp_path, capsys):
    runs = hostile_world(tmp_path / "runs")
    assert main([str(runs), "--out", str(tmp_path / "out")]) == 0
    assert "rejected run record" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda r: r.update(seed="1"), "seed must be an integer"),
        (lambda r: r.update(seed=True), "seed must be an integer"),
        (lambda r: r["method"].update(name=""), "method.name must be a name"),
        (lambda r: r["method"].update(name="x" * 201), "method.name must be a name"),
        (lambda r: r.update(status="done"), "status must be one of"),
        (lambda r: r.update(schema="mtlbench.run/0"), "schema must be"),
        (lambda r: r["cost"].update(peak_memory_mb="big"), "cost.peak_memory_mb must be a number"),
        (lambda r: r["directions"]["depth"].update(abs_err="down"), "must be 'higher' or 'lower'"),
        (lambda r: r["dataset"]["tasks"].append({"name": "depth"}), "names a task twice"),
        (lambda r: r.update(divergence={"step": "12", "what": "loss"}), "divergence.step must be an integer"),
        (lambda r: r.update(config={"model": {"net": {"init_args": {"backbone": ["resnet"]}}}}), "backbone must be a name"),
    ],
)
def test_each_schema_rule_rejects_with_a_reason(change, reason):
    run = json.loads(json.dumps(record("EW", "Adam", 0, ["segmentation", "depth"], {"depth": {"abs_err": 0.4}})))  # a copy
    validate_record(run)
    change(run)
    with pytest.raises(RecordError, match=re.escape(reason)):
        validate_record(run)


def test_nan_results_are_data_of_a_diverged_run_not_a_rejection():
    run = record("EW", "Adam", 0, ["depth"], {"depth": {"abs_err": float("nan")}})
    validate_record(run)


def test_escapes_are_inert_for_every_special_character():
    assert markdown_text("a|b`c*d[e]f\\g<h>&\ni") == "a\\|b\\`c\\*d\\[e\\]f\\\\g&lt;h&gt;&amp; i"
    assert latex_text("\\{}$&#^_%~<>|") == r"\textbackslash{}\{\}\$\&\#\^{}\_\%\textasciitilde{}\textless{}\textgreater{}\textbar{}"
    assert csv_text("-1+2") == "'-1+2" and csv_text("EW") == "EW"


def test_a_wandb_run_id_that_is_a_path_is_not_fetched(tmp_path, monkeypatch, capsys):
    """Run ids from a W&B project are folder names; one like '../x' would write outside the folder.
    W&B's server cannot be reached here, so its API object is replaced by one serving two runs."""
    import wandb

    from mtlbench.leaderboards.wandb_source import fetch_records

    class File:
        name = "results.json"

        def __init__(self, run_id):
            self.run_id = run_id
            self.size = 2**40 if run_id == "huge" else 2  # bytes, as W&B's File reports them

        def download(self, root, replace):
            Path(root).mkdir(parents=True, exist_ok=True)
            (Path(root) / "results.json").write_text("{}")

    class Run:
        def __init__(self, run_id):
            self.id = run_id

        def files(self):
            return [File(self.id)]

        def file(self, name):
            return File(self.id)

    class Api:
        def __init__(self, timeout):
            pass

        def runs(self, project, filters):
            return [Run("../escaped"), Run("abc123"), Run("huge")]

    monkeypatch.setattr(wandb, "Api", Api)
    assert fetch_records("team/project", tmp_path / "records") == 1
    assert (tmp_path / "records" / "abc123" / "results.json").is_file()
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "records" / "huge").exists()  # a record the leaderboard would not read is never downloaded
    assert capsys.readouterr().err == (
        "mtlbench leaderboard: W&B run huge: its results.json is 1099511627776 bytes, not 1 to 16777216; not fetched\n"
    )


ADDRESSES = [
    "https://evil.example/x",
    "www.evil.example",
    "WWW.Evil.example",
    "ftp://evil.example",
    "me@evil.example",
    "mailto:a@evil.example",
]
# what GitHub-flavoured Markdown's autolink extension links in text (its spec: extended autolinks)
AUTOLINK = re.compile(r"(?i)(?:https?|ftp)://|(?<![a-z0-9])www\.|[a-z0-9.+_-]+@[a-z0-9_-]+(?:\.[a-z0-9_-]+)+")


def test_names_that_are_addresses_are_text_not_links(tmp_path):
    runs = tmp_path / "runs"
    metrics = {"segmentation": {"miou": 0.5}, "depth": {"abs_err": 0.4}}
    for index, method in enumerate(["EW", *ADDRESSES]):
        for seed in range(2):
            values = {task: {name: value * (1 + 0.01 * index + 0.001 * seed) for name, value in m.items()} for task, m in metrics.items()}
            run = record(method, "Adam", seed, list(metrics), values)
            run["directions"] = {"segmentation": {"miou": "higher"}, "depth": {"abs_err": "lower"}}
            write(runs, f"m{index}-s{seed}", run)
    for task, values in metrics.items():
        for seed in range(2):
            run = record("EW", "Adam", seed, [task], {task: values})
            run["directions"] = {task: {name: "higher" if task == "segmentation" else "lower" for name in values}}
            write(runs, f"stl-{task}-s{seed}", run)
    assert main([str(runs), "--out", str(tmp_path / "out"), "--no-png", "--html", str(tmp_path / "site")]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "runs", "site"]  # nothing written elsewhere
    for name in ("leaderboard.md", "findings.md"):
        text = (tmp_path / "out" / name).read_text()
        assert AUTOLINK.findall(text) == [], name
    markdown = pytest.importorskip("markdown")
    pytest.importorskip("pymdownx.magiclink")  # autolinks as the docs' Markdown would make them (GitHub's rule, and www.)
    rendered = markdown.markdown((tmp_path / "out" / "leaderboard.md").read_text(), extensions=["tables", "pymdownx.magiclink"])
    assert "<a " not in rendered
    shown = html.unescape(re.sub(r"<[^>]*>", "", rendered))  # the text a reader sees: every name as written
    assert all(name in shown for name in ADDRESSES)
    pages = "".join(path.read_text() for path in (tmp_path / "site").glob("*.html"))
    assert not [href for href in re.findall(r'href="([^"]*)"', pages) if "evil" in href.replace("evil_example", "")]


def test_the_markdown_escape_breaks_every_autolink_and_keeps_the_text():
    for name in ADDRESSES:
        escaped = markdown_text(name)
        assert AUTOLINK.findall(escaped) == [] and html.unescape(escaped.replace("<!-- -->", "")) == name
    assert [markdown_text(name) for name in ("EW", "a@", "upgrad@4")] == ["EW", "a@", "upgrad@4"]  # nothing to link, nothing added
