"""mkdocs hook: lay the packages out under their installed names for the API reference.

pyproject.toml installs the top-level folders as ``mtlbench.bench``, ``mtlbench.models``, ... (one
import name, no collisions); griffe, which reads the sources for mkdocstrings, looks for a folder
per name. This hook links ``.cache/api-sources/mtlbench/<package>`` to each folder before the
pages are built.
"""

from __future__ import annotations

from pathlib import Path

import tomllib
from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]


@event_priority(100)  # before mkdocstrings reads its paths
def on_config(config):
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    namespace = ROOT / ".cache" / "api-sources" / "mtlbench"
    namespace.mkdir(parents=True, exist_ok=True)
    for name, folder in package_dirs.items():
        link = namespace / name.split(".", 1)[1]
        target = ROOT / folder
        if link.is_symlink() and link.resolve() != target:
            link.unlink()
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return config
