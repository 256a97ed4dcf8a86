"""No code path of the package turns data into code: a scan of its source for the calls that do.

Fails on a new ``pickle``/``dill``/``marshal``/``shelve`` use (the exception types aside),
``torch.load`` without ``weights_only=True``, ``yaml.load`` and its unsafe cousins, ``eval``,
``exec``, ``compile`` and ``__import__``, ``numpy.load(allow_pickle=True)``, ``pandas.read_pickle``
and ``torch.hub.load``. A use that is needed is added to ``ALLOWED`` with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "models", "datamodules", "leaderboards")
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
HARMLESS_ATTRIBUTES = {"UnpicklingError", "PicklingError"}  # error types, caught, never loading anything
BUILTINS_THAT_RUN_CODE = {"eval", "exec", "compile", "__import__"}
ALLOWED: dict[tuple[str, str], str] = {}  # (file, finding) -> why it is safe


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def findings(source: str) -> list[str]:
    """What in ``source`` can turn data into code, one short line each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {alias.name}" for alias in node.names if alias.name.split(".")[0] in UNPICKLERS - {"pickle"}]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS:
            found += [f"from {node.module} import {alias.name}" for alias in node.names if alias.name not in HARMLESS_ATTRIBUTES]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in UNPICKLERS:
            if node.attr not in HARMLESS_ATTRIBUTES:
                found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in BUILTINS_THAT_RUN_CODE:
                found.append(f"{name}()")
            elif name.endswith("torch.load"):
                if not _keyword_is(node, "weights_only", True):
                    found.append("torch.load without weights_only=True")
            elif name in {"yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"}:
                found.append(f"{name}()")
            elif name.endswith(("np.load", "numpy.load")) and _keyword_is(node, "allow_pickle", True):
                found.append("numpy.load(allow_pickle=True)")
            elif name.endswith(("read_pickle", "torch.hub.load")):
                found.append(f"{name}()")
    return found


def package_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


@pytest.mark.parametrize(
    "source",
    [
        "import pickle\npickle.loads(b'')",
        "from pickle import loads",
        "import dill",
        "import torch\ntorch.load('x.ckpt')",
        "import torch\ntorch.load('x.ckpt', weights_only=False)",
        "import yaml\nyaml.load(text, Loader=yaml.Loader)",
        "eval('1')",
        "exec('x = 1')",
        "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
        "import pandas as pd\npd.read_pickle('x')",
    ],
)
def test_the_scan_finds_each_kind_of_code_loading(source):
    assert findings(source)


def test_the_scan_lets_the_safe_forms_through():
    safe = "import pickle\nimport torch, yaml\ntry:\n    torch.load(f, weights_only=True)\nexcept pickle.UnpicklingError:\n    pass\n"
    safe += "yaml.safe_load(text)\nmodel.eval()\nnp.load('x.npy')\n"
    assert findings(safe) == []


def test_the_package_turns_no_data_into_code():
    new = [
        f"{path.relative_to(REPO)}: {finding}"
        for path in package_files()
        for finding in findings(path.read_text())
        if (str(path.relative_to(REPO)), finding) not in ALLOWED
    ]
    assert not new, "code that can run what a file holds (add it to ALLOWED with a reason only if it cannot):\n" + "\n".join(new)
