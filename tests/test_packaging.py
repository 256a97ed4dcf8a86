"""The install adds one import name, ``mtlbench``: its packages map onto the top-level folders,
every package folder is listed, and ``bench``, ``models``, ``datamodules`` and ``leaderboards``
are not importable outside the checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
FOLDERS = ("bench", "tasks", "models", "datamodules", "leaderboards")
COLLIDING = ("bench", "tasks", "models", "datamodules", "leaderboards")


def folder_of(package: str) -> Path:
    """The folder setuptools takes ``package`` from (the longest mapped prefix of package-dir)."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        mapped = SETUPTOOLS["package-dir"].get(".".join(parts[:cut]))
        if mapped is not None:
            return REPO / mapped / Path(*parts[cut:])
    raise AssertionError(f"{package} has no folder in package-dir")


def test_every_package_folder_is_installed_under_mtlbench():
    listed = {folder_of(package) for package in SETUPTOOLS["packages"]}
    on_disk = {init.parent for folder in FOLDERS for init in (REPO / folder).rglob("__init__.py")}
    assert listed == on_disk
    assert all(package.startswith("mtlbench.") for package in SETUPTOOLS["packages"])


def imports_from_outside(tmp_path: Path, code: str) -> str:
    """Run ``code`` in this venv's Python from a folder outside the checkout (no cwd on the path)."""
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_outside_the_checkout_only_mtlbench_is_importable(tmp_path):
    found = imports_from_outside(
        tmp_path,
        "import importlib.util as u; print([n for n in " + repr(COLLIDING) + " if u.find_spec(n)])",
    )
    assert found == "[]"


def test_a_whole_import_of_the_suite_loads_no_module_by_a_bare_name_and_finds_the_checkout(tmp_path):
    """One process (an import of everything takes seconds): every module of the five packages, by
    its installed name, loads no bare top-level name, and the installed names are this checkout's files."""
    code = (
        "import sys, importlib, pkgutil\n"
        "for root in ('mtlbench.bench', 'mtlbench.tasks', 'mtlbench.models', 'mtlbench.datamodules', 'mtlbench.leaderboards'):\n"
        "    package = importlib.import_module(root)\n"
        "    [importlib.import_module(i.name) for i in pkgutil.walk_packages(package.__path__, root + '.')]\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({COLLIDING!r})))\n"
        "print(sys.modules['mtlbench.bench.run.module'].__file__, sys.modules['mtlbench.leaderboards'].__file__)\n"
    )
    bare, where = imports_from_outside(tmp_path, code).splitlines()
    assert bare == "[]"
    assert where.split() == [str(REPO / "bench" / "run" / "module.py"), str(REPO / "leaderboards" / "__init__.py")]
