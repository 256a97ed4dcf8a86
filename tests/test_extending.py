"""docs/extending.md's worked examples run as written: each code block is the file a user would
save (named by its first line, or the page's text for the YAML), trained here for one epoch
through the command line by its class path or file."""

from __future__ import annotations

import doctest
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from mtlbench.bench.run.launch import main
from mtlbench.datamodules.fake_release import write_release
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "extending.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def python_file(name: str) -> str:
    """The page's Python block whose first line is ``# name``."""
    (code,) = [block for block in code_blocks("python") if block.startswith(f"# {name}\n")]
    return code


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """A folder of the user's own files, importable as the page says (on PYTHONPATH)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    for name in ("my_methods", "my_tasks", "my_datasets"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return folder


def records(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in folder.rglob("results.json")]


def fit(tiny_cache: str, runs: Path, *extra: str) -> int:
    args = [*tiny_cli_args(tiny_cache, runs, str(REPO / "configs" / "quickstart.yaml")), "--trainer.max_epochs=1"]
    return main(["fit", *args, *extra])


def test_the_page_has_one_example_each_for_a_method_a_backbone_a_dataset_and_a_task_kind():
    heads = [block.splitlines()[0] for block in code_blocks("python")]
    assert heads == ["# my_methods.py", "# my_datasets.py", "# my_tasks.py"]
    assert len(code_blocks("yaml")) == 1


def test_the_method_example_trains_from_its_own_file(tiny_cache, tmp_path, user_folder):
    (user_folder / "my_methods.py").write_text(python_file("my_methods.py"))
    method = ["--model.method=my_methods.SoftmaxLossWeighting", "--model.method.init_args.temperature=2.0"]
    assert fit(tiny_cache, tmp_path / "runs", *method) == 0
    (record,) = records(tmp_path / "runs")
    assert record["status"] == "complete" and record["method"]["name"] == "SoftmaxLW"
    import my_methods

    assert doctest.testmod(my_methods).failed == 0  # its docstring's example holds too


def test_the_backbone_example_trains_from_its_model_file(tiny_cache, tmp_path, user_folder):
    (block,) = code_blocks("yaml")
    (user_folder / "my_model.yaml").write_text(block)
    assert yaml.safe_load(block)["init_args"]["backbone"] == "convnext_atto"
    assert fit(tiny_cache, tmp_path / "runs", f"--model.net={user_folder / 'my_model.yaml'}") == 0
    (record,) = records(tmp_path / "runs")
    assert record["status"] == "complete" and record["config"]["model"]["net"]["init_args"]["backbone"] == "convnext_atto"


def test_the_dataset_example_trains_on_a_release_in_its_layout(tiny_cache, tmp_path, user_folder):
    (user_folder / "my_datasets.py").write_text(python_file("my_datasets.py"))
    root = write_release(tmp_path / "nyu40", "nyuv2", num_train=12, num_test=4, height=32, width=48)
    data = [
        "--data=my_datasets.NYUv2Labels40",
        f"--data.init_args.root={root}",
        "--data.init_args.num_val=4",
        "--data.init_args.batch_size=4",
    ]
    assert fit(tiny_cache, tmp_path / "runs", *data) == 0
    (record,) = records(tmp_path / "runs")
    assert record["status"] == "complete"
    assert [(task["name"], task["channels"]) for task in record["dataset"]["tasks"]] == [("segmentation", 40), ("depth", 1), ("normal", 3)]


def test_the_task_kind_example_trains_a_toy_kind_end_to_end(tiny_cache, tmp_path, user_folder):
    (user_folder / "my_tasks.py").write_text(python_file("my_tasks.py"))
    assert fit(tiny_cache, tmp_path / "runs", "--data=my_tasks.ShadedScenes", "--data.init_args.tasks=[segmentation, shading]") == 0
    (record,) = records(tmp_path / "runs")
    assert record["status"] == "complete"
    assert record["dataset"]["tasks"][1] == {"name": "shading", "kind": "shading", "channels": 1}
    shading = record["metrics"]["test"]["shading"]
    assert set(shading) >= {"l1"} and 0 < shading["l1"] < 1  # grey levels lie in [0, 1]
    assert record["directions"]["shading"] == {"l1": "lower"}
