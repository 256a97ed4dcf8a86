"""The built-in task kinds by name: the names configs, datamodules and records use.

A kind of one's own needs no entry here: give its instance as the task's ``kind``
(docs/extending.md).
"""

from __future__ import annotations

from mtlbench.tasks.depth import Depth
from mtlbench.tasks.kind import TaskKind
from mtlbench.tasks.normal import Normal
from mtlbench.tasks.segmentation import Segmentation

BUILT_IN_KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (Segmentation(), Depth(), Normal())}


def kind_named(name: str) -> TaskKind:
    """The built-in kind called ``name``, or a one-line error naming the kinds there are.

    Example:
        >>> kind_named("depth").metric_directions
        {'abs_err': False, 'rel_err': False}
    """
    kind = BUILT_IN_KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown task kind '{name}'; built-in kinds: {', '.join(BUILT_IN_KINDS)}, or give a TaskKind instance")
    return kind
