"""A sweep names, before any run, the code from outside the suite that its configs would run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mtlbench.bench.sweeps import sweep
from mtlbench.bench.sweeps.foreign_code import announce, foreign_names
from mtlbench.bench.sweeps.sweep import load_spec, plan

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _args(spec_path: Path, runs: Path) -> list[str]:
    return [arg for run in plan(load_spec(spec_path), runs) for arg in run.args]


def test_the_suites_own_sweeps_name_nothing_from_outside(tmp_path):
    for spec_path in sorted((CONFIGS / "sweeps").glob("*.yaml")):
        try:
            spec = load_spec(spec_path)
        except (ValueError, FileNotFoundError):
            continue  # a spec that needs a dataset's files is checked where those exist
        if spec.get("study"):
            continue
        args = [arg for run in plan(spec, tmp_path / spec_path.stem) for arg in run.args]
        assert foreign_names(args) == [], spec_path.name


def _hostile_spec(tmp_path: Path) -> Path:
    net = tmp_path / "net.yaml"
    net.write_text("class_path: this.Anything\ninit_args: {}\n")
    optim = tmp_path / "optim.yaml"
    optim.write_text("class_path: torch.optim.Adam\ninit_args: {lr: 0.001}\n")
    method = tmp_path / "method.yaml"
    method.write_text((CONFIGS / "method" / "ew.yaml").read_text())
    (tmp_path / "spec.yaml").write_text(
        f"base: {CONFIGS / 'quickstart.yaml'}\n"
        "overrides: ['--model.lr_scheduler={class_path: torch.optim.lr_scheduler.LambdaLR, init_args: {lr_lambda: os._exit}}']\n"
        f"methods: {{EW: {{config: method.yaml, args: [--model.net={net}]}}}}\n"
        "optimizers: {Adam: {config: optim.yaml, lr: [0.001]}}\n"
        "seeds: [0]\n"
    )
    return tmp_path / "spec.yaml"


def test_class_paths_and_callables_from_outside_are_named_with_where_they_are(tmp_path):
    found = {name.name: name.where for name in foreign_names(_args(_hostile_spec(tmp_path), tmp_path / "runs"))}
    assert set(found) == {"this.Anything", "os._exit"}
    assert found["this.Anything"] == f"{tmp_path / 'net.yaml'}: model.net.class_path"
    assert found["os._exit"] == "model.lr_scheduler.init_args.lr_lambda"


def test_a_config_inside_the_working_folder_is_named_relative_to_it(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "net.yaml").write_text("class_path: this.Anything\n")
    monkeypatch.chdir(tmp_path)
    found = foreign_names([f"--model.net={tmp_path / 'specs' / 'net.yaml'}"])
    assert [(name.name, name.where) for name in found] == [("this.Anything", "specs/net.yaml: model.net.class_path")]


@pytest.mark.parametrize("text", ["net.yaml", "model.ckpt", "resnet50.a1_in1k", "a.b.c", "torch.optim.SGD", "mtlbench.x.Y", "1.5"])
def test_file_names_model_tags_and_the_suites_own_names_are_not_named(text):
    assert foreign_names([f"--model.x={text}"]) == []


def test_the_sweep_names_them_before_it_runs_anything(tmp_path, monkeypatch, capsys):
    spec_path = _hostile_spec(tmp_path)
    seen_before_runs: list[str] = []

    def no_runs(planned, runs_dir, *rest):
        seen_before_runs.append(capsys.readouterr().out)
        return {"skipped": [], "done": [], "diverged": [], "failed": [], "blocked": [], "submitted": []}

    monkeypatch.setattr(sweep, "_run_planned", no_runs)
    sweep.run_sweep(spec_path, tmp_path / "runs")
    assert len(seen_before_runs) == 1
    lines = seen_before_runs[0].splitlines()
    assert lines[0].startswith("sweep: its configs name code from outside mtlbench")
    assert [line.split()[0] for line in lines[1:]] == ["os._exit", "this.Anything"]


def test_nothing_is_printed_for_a_spec_of_the_suite(tmp_path):
    stream = io.StringIO()
    assert announce(_args(CONFIGS / "sweeps" / "quickstart.yaml", tmp_path / "runs"), stream) == []
    assert stream.getvalue() == ""
