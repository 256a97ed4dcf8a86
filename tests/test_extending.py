"""docs/extending.md's worked example runs as written: its code block is the method a user
would save as a file, trained here for one epoch through the command line by its class path."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from bench.cli import main
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[1]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)


def test_the_method_example_trains_from_its_own_file(tiny_cache, tmp_path, monkeypatch):
    (code,) = python_blocks(REPO / "docs" / "extending.md")
    (tmp_path / "my_methods.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_methods", raising=False)
    args = [*tiny_cli_args(tiny_cache, tmp_path / "runs", str(REPO / "configs" / "quickstart.yaml")), "--trainer.max_epochs=1"]
    method = ["--model.method=my_methods.SoftmaxLossWeighting", "--model.method.init_args.temperature=2.0"]
    assert main(["fit", *args, *method]) == 0
    (record,) = [json.loads(path.read_text()) for path in (tmp_path / "runs").rglob("results.json")]
    assert record["status"] == "complete" and record["method"]["name"] == "SoftmaxLW"
    import doctest

    import my_methods

    assert doctest.testmod(my_methods).failed == 0  # its docstring's example holds too
