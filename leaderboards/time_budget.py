"""Where a sweep's time went: the run records' time budgets, summed (``budget`` in each record)."""

from __future__ import annotations

from collections.abc import Sequence

from mtlbench.leaderboards.records import Run

LABELS = {
    "start_up": "start-up (interpreter, imports)",
    "setup": "set-up (config, data, model)",
    "training_steps": "training steps",
    "validation": "validation",
    "probe": "gradient probe",
    "checkpoints": "checkpoints",
    "test": "test passes",
    "record": "run record",
    "other": "other (data loading between steps, the framework)",
}


def sweep_budget(runs: Sequence[Run]) -> tuple[dict[str, float], int]:
    """Seconds per part over every run that carries a budget, and how many do."""
    budgets = [run.budget for run in runs if run.budget]
    return {part: sum(budget.get(part, 0.0) for budget in budgets) for part in LABELS}, len(budgets)


def _share(seconds: float, total: float) -> str:
    return f"{100 * seconds / total:.0f}%" if total > 0 else "-"


def budget_markdown(runs: Sequence[Run]) -> str:
    """The leaderboard's section on where the runs' time went ("" when no record has a budget)."""
    totals, count = sweep_budget(runs)
    total = sum(totals.values())
    if not count:
        return ""
    lines = [
        "",
        "## Where the time went",
        "",
        f"{count} run{'s' if count != 1 else ''}, {total / 3600:.2f} h of run time in all "
        "(each run's own wall time: runs in parallel overlap).",
        "",
        "| part | seconds | share | per run (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {LABELS[part]} | {seconds:.1f} | {_share(seconds, total)} | {seconds / count:.2f} |" for part, seconds in totals.items()]
    return "\n".join(lines) + "\n"


def budget_line(runs: Sequence[Run]) -> str:
    """One line for a terminal: the largest parts of the runs' time ("" without budgets)."""
    totals, count = sweep_budget(runs)
    total = sum(totals.values())
    if not count:
        return ""
    largest = sorted(totals.items(), key=lambda item: -item[1])[:4]
    parts = ", ".join(f"{part.replace('_', ' ')} {_share(seconds, total)}" for part, seconds in largest)
    return f"run time: {total / 60:.1f} min over {count} runs ({total / count:.1f} s each): {parts}"
