"""Inter-task affinity (Fifty, Amid, Zhao, Yu, Anil & Finn, NeurIPS 2021, "Efficiently
Identifying Task Groupings for Multi-Task Learning"), as pure functions.

At a step with shared parameters theta and batch X, a lookahead update with task i's gradient
alone, ``theta_i = theta - step_i``, and for every task j the relative change of its loss on the
same batch (task-specific parameters unchanged):

    Z_{i->j} = 1 - L_j(X, theta_i) / L_j(X, theta)

Positive: i's update lowers j's loss (i helps j); negative: it raises it. ``Z[i, j]`` below is
``Z_{i->j}``: rows are the task whose update is taken, columns the task whose loss changes.
"""

from __future__ import annotations

import torch

from mtlbench.bench.run import gradient_stats as gs

RULES = ("adam", "sgd")


def lookahead_steps(
    grads: torch.Tensor,
    lr: torch.Tensor,
    rule: str,
    denominator: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    first: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each task's lookahead step ``[T, n]`` from its gradient (rows of ``grads``):

    - ``sgd``: ``lr * g_i``, the paper's rule (Eq. 1) and SGD's step without its momentum;
    - ``adam``: ``lr * g_i / denominator``, the gradient preconditioned as Adam preconditions its
      step, ``denominator = sqrt(v_hat) + eps`` from the optimizer's second-moment estimate.
      Where the optimizer holds no estimate yet (``first``; everywhere when ``denominator`` is
      None: before Adam's first step, or a parameter that has not had one), ``|g_i| + eps``,
      which is Adam's own first step taken with ``g_i`` alone (``m_hat = g_i``,
      ``v_hat = g_i^2``), with the optimizer's ``eps``. Momentum, shared by every task's
      lookahead, is left out.

    ``lr``, ``denominator``, ``eps`` and ``first`` are per coordinate (``[n]``).

    Example:
        >>> g = torch.tensor([[2.0, 0.0], [0.0, -4.0]])
        >>> lookahead_steps(g, torch.tensor([0.1, 0.1]), "sgd")
        tensor([[ 0.2000,  0.0000],
                [ 0.0000, -0.4000]])
        >>> lookahead_steps(g, torch.tensor([0.1, 0.1]), "adam", torch.tensor([2.0, 4.0]))
        tensor([[ 0.1000,  0.0000],
                [ 0.0000, -0.1000]])
        >>> lr, eps = torch.tensor([0.1, 0.1]), torch.tensor([2.0, 2.0])
        >>> lookahead_steps(g, lr, "adam", eps=eps)  # Adam's first step: lr g / (|g| + eps)
        tensor([[ 0.0500,  0.0000],
                [ 0.0000, -0.0667]])
        >>> lookahead_steps(g, lr, "adam", torch.tensor([2.0, 4.0]), eps, first=torch.tensor([False, True]))
        tensor([[ 0.1000,  0.0000],
                [ 0.0000, -0.0667]])
    """
    if rule == "sgd":
        return lr * grads
    if rule != "adam":
        raise ValueError(f"lookahead rule must be one of {RULES}, got {rule!r}")
    if denominator is not None and (first is None or not bool(first.any())):
        return lr * grads / denominator
    if eps is None:
        raise ValueError("the adam rule needs the optimizer's eps where Adam has not stepped yet")
    own = grads.abs() + eps  # Adam's first step
    return lr * grads / (own if denominator is None else torch.where(first, own, denominator))


def affinity(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """``Z[i, j] = 1 - after[i, j] / before[j]`` from the losses before (``[T]``) and after each
    task's lookahead (``[T, T]``: row i holds every loss after i's). A task whose loss is 0 before
    (no valid pixel in the batch, or a perfect fit) has no relative change: its column is 0.

    Example:
        >>> affinity(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([[1.0, 1.5, 0.0], [2.5, 0.5, 0.3], [2.0, 1.0, 0.1]])).tolist()
        [[0.5, -0.5, 0.0], [-0.25, 0.5, 0.0], [0.0, 0.0, 0.0]]
    """
    before = before.double()
    defined = before > 0
    ratio = after.double() / torch.where(defined, before, torch.ones_like(before))
    return torch.where(defined, 1 - ratio, torch.zeros_like(ratio))


def pair_matrix(values: torch.Tensor, count: int, diagonal: float = 1.0) -> torch.Tensor:
    """A symmetric ``[T, T]`` matrix from values of the unordered pairs ``(i, j), i < j``
    (:func:`mtlbench.bench.run.gradient_stats.pairs`), with ``diagonal`` on the diagonal.

    Example:
        >>> pair_matrix(torch.tensor([0.5, -0.25, 0.125]), 3).tolist()
        [[1.0, 0.5, -0.25], [0.5, 1.0, 0.125], [-0.25, 0.125, 1.0]]
    """
    matrix = torch.full((count, count), diagonal, dtype=torch.float64)
    for (i, j), value in zip(gs.pairs(count), values.tolist(), strict=True):
        matrix[i, j] = matrix[j, i] = value
    return matrix
