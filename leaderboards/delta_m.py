"""Delta_m: the overall multi-task performance relative to single-task baselines (PROTOCOL.md).

    Delta_m % = 100 / K * sum_k (-1)^{s_k} (M_m,k - M_b,k) / M_b,k,   s_k = 1 if higher is better

Lower is better; negative means the multi-task model beats its single-task baselines. This is
the convention of Nash-MTL, CAGrad, FAMO, Aligned-MTL and Elich et al. (2024).

- metric-weighted (default): K runs over all metrics (9 on NYUv2, 4 on Cityscapes), comparable
  with those papers' tables;
- task-weighted (``task_of`` given): each task's metric terms are averaged first, then the
  tasks (Aligned-MTL's second column; LibMTL's Delta_p is minus this).
"""

from __future__ import annotations

from collections.abc import Mapping


def relative_changes(method: Mapping[str, float], baseline: Mapping[str, float], higher_is_better: Mapping[str, bool]) -> dict[str, float]:
    """Per-metric signed relative change in percent, positive = worse than the baseline.

    Example:
        >>> changes = relative_changes({"miou": 0.44, "abs_err": 0.55}, {"miou": 0.40, "abs_err": 0.50}, {"miou": True, "abs_err": False})
        >>> {metric: round(change, 6) for metric, change in changes.items()}
        {'miou': -10.0, 'abs_err': 10.0}
    """
    changes = {}
    for metric, value in method.items():
        if metric not in baseline:
            raise ValueError(f"Delta_m: metric '{metric}' has no baseline value; baselines: {sorted(baseline)}")
        if metric not in higher_is_better:
            raise ValueError(f"Delta_m: metric '{metric}' has no direction (higher or lower is better)")
        reference = baseline[metric]
        if reference == 0:
            raise ValueError(f"Delta_m: baseline of '{metric}' is 0, the relative change is undefined")
        sign = -1.0 if higher_is_better[metric] else 1.0
        changes[metric] = 100.0 * sign * (value - reference) / abs(reference)
    return changes


def delta_m(
    method: Mapping[str, float],
    baseline: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
    task_of: Mapping[str, str] | None = None,
) -> float:
    """Delta_m in percent over the metrics of ``method`` (lower is better).

    Args:
        method: metric id -> value of the multi-task model.
        baseline: metric id -> value of the single-task baseline(s).
        higher_is_better: metric id -> direction.
        task_of: metric id -> task; when given, the task-weighted variant.

    Example (hand-worked: mIoU +10 % and pixel accuracy +10 % are improvements, depth error
    +10 % is a degradation):
        >>> values = {"seg/miou": 0.44, "seg/pix_acc": 0.66, "depth/abs_err": 0.55}
        >>> base = {"seg/miou": 0.40, "seg/pix_acc": 0.60, "depth/abs_err": 0.50}
        >>> up = {"seg/miou": True, "seg/pix_acc": True, "depth/abs_err": False}
        >>> round(delta_m(values, base, up), 4)                  # (-10 - 10 + 10) / 3
        -3.3333
        >>> tasks = {"seg/miou": "seg", "seg/pix_acc": "seg", "depth/abs_err": "depth"}
        >>> round(delta_m(values, base, up, task_of=tasks), 4)   # (-10 + 10) / 2
        0.0
    """
    changes = relative_changes(method, baseline, higher_is_better)
    if not changes:
        raise ValueError("Delta_m: no metrics given")
    if task_of is None:
        return sum(changes.values()) / len(changes)
    per_task: dict[str, list[float]] = {}
    for metric, change in changes.items():
        if metric not in task_of:
            raise ValueError(f"Delta_m: metric '{metric}' has no task in task_of")
        per_task.setdefault(task_of[metric], []).append(change)
    return sum(sum(terms) / len(terms) for terms in per_task.values()) / len(per_task)
