"""``mtlbench leaderboard RUNS --html DIR``: a static site of the leaderboard, from run records only.

- ``index.html``: every page (dataset x model, per study setting), with its optimizers and
  the runs left out of the tables;
- one page per dataset x model: the table of methods (sortable by any column, an optimizer
  toggle, mean ± std over seeds, the marks of the Markdown table: ≈ not significantly
  different from EW, † worse than single-task), the Adam-vs-SGD ranks, the Pareto grid;
- one page per method of a page: its per-seed runs (test metrics, Δm, W&B link where the
  record names an online run), their configs, and a figure of their gradient statistics.

Self-contained: CSS and script are inline, figures are PNG files beside the pages, nothing is
fetched, so it works from a file URL and on any static host. Deterministic: the same records
give the same bytes. Every string from a record is HTML-escaped (:func:`html_text`), file names
are derived from names by :func:`slug`, and a W&B link is written only when it has the exact
shape of a W&B run URL.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

from mtlbench.leaderboards.atomic_write import write_png, write_text_atomic
from mtlbench.leaderboards.escape import html_text, plot_text
from mtlbench.leaderboards.findings import METHOD_NOTE, detectable_line, interval_text, p_text
from mtlbench.leaderboards.records import Run, read_record
from mtlbench.leaderboards.render import GENERATED, _fmt, _pm, pareto_png
from mtlbench.leaderboards.site_folder import SiteFolder
from mtlbench.leaderboards.tables import NEGATIVE_TRANSFER, NOT_SIGNIFICANT, Board, Row, _mean_std, optimizer_comparison

WANDB_RUN_URL = re.compile(r"https://wandb\.ai/[A-Za-z0-9_.-]{1,128}/[A-Za-z0-9_.-]{1,128}/runs/[A-Za-z0-9]{1,64}")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1400px; padding: 0 1rem; color: #222; }
h1, h2, h3 { font-weight: 600; } table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } thead th { background: #f0f0f0; }
table.sortable th { cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
.toggle button { font: inherit; padding: 0.3rem 0.9rem; border: 1px solid #888; background: #fff; cursor: pointer; }
.toggle button[aria-pressed="true"] { background: #333; color: #fff; }
.note { color: #555; font-size: 0.85rem; } img { max-width: 100%; } pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
""".strip()

SCRIPT = """
function sortTable(table, column, header) {
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach((th) => th.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const key = (row) => {
    const value = row.cells[column].dataset.value;
    if (value === undefined || value === "") return null;
    return isNaN(Number(value)) ? value : Number(value);
  };
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null && y === null) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
}
function showOptimizer(name) {
  document.querySelectorAll("[data-optimizer]").forEach((section) => { section.hidden = section.dataset.optimizer !== name; });
  document.querySelectorAll(".toggle button").forEach((button) => {
    button.setAttribute("aria-pressed", String(button.dataset.show === name));
  });
  if (location.hash !== "#optimizer=" + encodeURIComponent(name)) history.replaceState(null, "", "#optimizer=" + encodeURIComponent(name));
}
document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("th").forEach((header, column) => header.addEventListener("click", () => sortTable(table, column, header)));
});
const buttons = Array.from(document.querySelectorAll(".toggle button"));
buttons.forEach((button) => button.addEventListener("click", () => showOptimizer(button.dataset.show)));
if (buttons.length) {
  const asked = decodeURIComponent((location.hash.match(/optimizer=([^&]*)/) || [])[1] || "");
  showOptimizer(buttons.some((button) => button.dataset.show === asked) ? asked : buttons[0].dataset.show);
}
""".strip()


def slug(name: str) -> str:
    """A file-name-safe, collision-free stem for a name from a record.

    Example:
        >>> slug("Nash-MTL"), slug("a/b") == slug("a_b")
        ('Nash-MTL-7d2eae', False)
    """
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:48].strip("_") or "x"
    return f"{readable}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def _page(title: str, body: list[str], root: str = "") -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            f"<!-- {GENERATED} -->",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html_text(title)}</title><style>{STYLE}</style></head><body>",
            f'<p class="note"><a href="{root}index.html">mtlbench leaderboard</a></p>',
            *body,
            f"<script>{SCRIPT}</script></body></html>",
            "",
        ]
    )


def _cell(text: str, value: object = None) -> str:
    sort = "" if value is None else f' data-value="{html_text(value)}"'
    return f"<td{sort}>{text}</td>"


def _number(value: float | None) -> str | None:
    return None if value is None or value != value else repr(float(value))


def _board_table(board: Board, method_pages: dict[str, str]) -> list[str]:
    tasks = sorted({metric.split("/")[0] for metric in board.metrics})
    headers = [
        "method",
        *[f"{metric} ({'↑' if board.higher_is_better.get(metric, True) else '↓'})" for metric in board.metrics],
        "Δm% metric (↓)",
        "Δm% task (↓)",
        "mean rank",
        "seeds",
        *[f"Δ {task} vs STL %" for task in tasks],
        "cost vs EW",
        "peak MB",
    ]
    lines = ['<table class="sortable">', "<thead><tr>" + "".join(f"<th>{html_text(header)}</th>" for header in headers) + "</tr></thead>"]
    lines.append("<tbody>")
    for row in board.rows:
        mark = f" {NOT_SIGNIFICANT}" if row.not_different_from_ew else ""
        cells = [_cell(f'<a href="{method_pages[row.method]}">{html_text(row.label)}</a>{mark}', row.label)]
        for metric in board.metrics:
            mean, std = row.metrics[metric]
            cells.append(_cell(f"{_fmt(mean)} ± {_fmt(std, 2)}", _number(mean)))
        for deltas in (row.delta_metric, row.delta_task):
            cells.append(_cell(_pm(deltas), _number(_mean_std(deltas)[0]) if deltas else None))
        cells += [_cell(_fmt(row.rank, 3), _number(row.rank)), _cell(str(len(row.seeds)), len(row.seeds))]
        for task in tasks:
            change = row.task_change.get(task)
            text = "-" if change is None else f"{change:+.2f}{NEGATIVE_TRANSFER if change > 0 else ''}"
            cells.append(_cell(text, _number(change)))
        cells += [
            _cell(_fmt(row.relative_cost, 3), _number(row.relative_cost)),
            _cell(_fmt(row.peak_memory_mb, 5), _number(row.peak_memory_mb)),
        ]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines += ["</tbody></table>"]
    cost = f"mtlbench perf ({board.cost_source})" if board.cost_from_perf else board.cost_source
    lines.append(f'<p class="note">Cost columns: {html_text(cost)}.</p>')
    return lines


def _against_ew_table(board: Board) -> list[str]:
    """Every method against EW: intervals, Holm-corrected test, probability of improvement."""
    statistics = board.statistics
    lines = []
    if statistics.comparisons:
        headers = ["method", "seeds", "Δm% [95 % CI]", "Δm - EW [95 % CI]", "P(better)", "p", "p (Holm)", "verdict"]
        lines += [
            f"<h3>Against EW ({statistics.family} comparisons, Holm-corrected)</h3>",
            '<table class="sortable">',
            "<thead><tr>" + "".join(f"<th>{html_text(header)}</th>" for header in headers) + "</tr></thead>",
            "<tbody>",
        ]
        for row in board.rows:
            comparison, mean = row.comparison, _mean_std(row.delta_metric)[0]
            cells = [_cell(html_text(row.label), row.label), _cell(str(len(row.seeds)), len(row.seeds))]
            cells.append(_cell(html_text(f"{mean:+.2f} {interval_text(row.interval)}"), _number(mean)))
            if comparison is None:
                cells += [_cell("-"), _cell("-"), _cell("-"), _cell("-"), _cell("reference" if row.method == "EW" else "-")]
            else:
                cells += [
                    _cell(html_text(f"{comparison.difference:+.2f} {interval_text(comparison.interval)}"), _number(comparison.difference)),
                    _cell(f"{comparison.probability_of_improvement:.2f}", _number(comparison.probability_of_improvement)),
                    _cell(p_text(comparison.p_value), _number(comparison.p_value)),
                    _cell(p_text(comparison.p_holm), _number(comparison.p_holm)),
                    _cell(html_text(comparison.verdict), comparison.verdict),
                ]
            lines.append("<tr>" + "".join(cells) + "</tr>")
        lines.append("</tbody></table>")
    detectable = detectable_line(statistics)
    notes = [*([detectable] if detectable else []), *statistics.problems]
    lines += [f'<p class="note">{html_text(note)}</p>' for note in notes]
    return lines


def _against_single_task_table(board: Board) -> list[str]:
    """Each method's Δm and task changes against the single-task networks."""
    against = board.against_single_task
    lines = []
    if against.comparisons:
        headers = ["method", "quantity", "seeds", "difference [95 % CI]", "p", "p (Holm)", "verdict"]
        lines += [
            f"<h3>Against the single-task networks ({against.seeds} seeds; {len(against.comparisons)} comparisons, Holm-corrected)</h3>",
            '<table class="sortable">',
            "<thead><tr>" + "".join(f"<th>{html_text(header)}</th>" for header in headers) + "</tr></thead>",
            "<tbody>",
        ]
        for (method, quantity), comparison in sorted(against.comparisons.items()):
            cells = [_cell(html_text(method), method), _cell(html_text(quantity), quantity), _cell(str(comparison.seeds), comparison.seeds)]
            difference = f"{comparison.difference:+.2f} {interval_text(comparison.interval)}"
            cells += [_cell(html_text(difference), _number(comparison.difference))]
            cells += [
                _cell(p_text(comparison.p_value), _number(comparison.p_value)),
                _cell(p_text(comparison.p_holm), _number(comparison.p_holm)),
            ]
            lines.append("<tr>" + "".join([*cells, _cell(html_text(comparison.verdict), comparison.verdict)]) + "</tr>")
        lines.append("</tbody></table>")
    return lines + [f'<p class="note">{html_text(problem)}</p>' for problem in against.problems]


def _page_key(board: Board) -> tuple:
    return (board.dataset, board.model, board.setting, board.tasks if board.name_tasks else ())


def _page_title(board: Board) -> str:
    parts = [board.dataset, board.model, *([board.setting] if board.setting else [])]
    return " / ".join(parts) + (f" / tasks {'+'.join(board.tasks)}" if board.name_tasks else "")


def _within_runs(record: dict) -> object:
    """The record's config with the absolute runs folder it was made in (``run_dir`` less its
    ``<id>/version_0``) written relative to that folder, which readers have as ``records/``:
    the pages name no path of the machine that built them."""
    run_dir = record.get("run_dir")
    if not isinstance(run_dir, str) or not run_dir.startswith("/") or len(PurePosixPath(run_dir).parts) < 4:
        return record.get("config")
    root = str(PurePosixPath(run_dir).parent.parent)

    def relative(value: object) -> object:
        if isinstance(value, dict):
            return {key: relative(item) for key, item in value.items()}
        if isinstance(value, list):
            return [relative(item) for item in value]
        if isinstance(value, str) and (value == root or value.startswith(root + "/")):
            return "." + value[len(root) :]
        return value

    return relative(record.get("config"))


def _wandb_link(record: dict) -> str:
    url = (record.get("wandb") or {}).get("url") if isinstance(record.get("wandb"), dict) else None
    return f'<a href="{html_text(url)}">W&amp;B</a>' if isinstance(url, str) and WANDB_RUN_URL.fullmatch(url) else "-"


def _drawable(entry: object) -> bool:
    """A probe summary with a finite mean and 2.5 / 97.5 % quantiles."""
    values = [entry.get(key) for key in ("mean", "p2_5", "p97_5")] if isinstance(entry, dict) else []
    return len(values) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) < 1e300 for v in values)


def _gradient_figure(runs: list[Run], records: dict[Path, dict], path: Path) -> bool:
    """Per seed: inter-task against inter-sample cosine and magnitude similarity (mean with the
    2.5 to 97.5 % range of the probes). False (nothing written) without gradient statistics."""
    rows = [(run, records[run.path].get("gradient_statistics") or {}) for run in runs]
    if not any(_drawable(stats.get("inter_task/cos")) for _, stats in rows):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for axis, stat, label in ((axes[0], "cos", "cosine similarity"), (axes[1], "mag_sim", "magnitude similarity")):
        for offset, (kind, colour) in enumerate((("inter_task", "tab:blue"), ("inter_sample", "tab:orange"))):
            for index, (_, stats) in enumerate(rows):
                entry = stats.get(f"{kind}/{stat}")
                if not _drawable(entry):
                    continue
                low, high = entry["mean"] - entry["p2_5"], entry["p97_5"] - entry["mean"]
                axis.errorbar(index + 0.15 * (2 * offset - 1), entry["mean"], yerr=[[low], [high]], fmt="o", color=colour, capsize=3)
            axis.plot([], [], "o", color=colour, label=kind.replace("_", "-"))
        axis.set_xticks(range(len(rows)), [plot_text(f"{run.optimizer} s{run.seed}") for run, _ in rows], fontsize=7)
        axis.set_ylabel(label, fontsize=8)
        axis.axhline(0, color="grey", linewidth=0.6)
        axis.legend(fontsize=7)
    figure.suptitle("Gradient statistics per seed: mean and 2.5-97.5 % of the probes", fontsize=9)
    figure.tight_layout()
    write_png(path, figure, 90)
    return True


def _method_page(title: str, method: str, rows: list[tuple[Board, Row]], records: dict[Path, dict], folder: SiteFolder, page: str) -> None:
    body = [f"<h1>{html_text(method)}</h1>", f'<p class="note">{html_text(title)}</p>']
    runs = [run for _, row in rows for run in row.runs]
    for board, row in rows:
        metrics = board.metrics
        body += [f"<h2>{html_text(board.optimizer)}{'' if row.lr is None else f' (lr {row.lr:g})'}</h2>", '<table class="sortable">']
        headers = ["seed", "lr", *metrics, "Δm% metric", "W&B", "record"]
        body.append("<thead><tr>" + "".join(f"<th>{html_text(header)}</th>" for header in headers) + "</tr></thead><tbody>")
        for index, run in enumerate(row.runs):
            delta = row.delta_metric[index] if index < len(row.delta_metric) else None
            cells = [_cell(html_text(run.seed), run.seed), _cell(html_text(_fmt(run.lr)), _number(run.lr))]
            cells += [_cell(_fmt(run.test.get(metric)), _number(run.test.get(metric))) for metric in metrics]
            cells += [_cell("-" if delta is None else f"{delta:+.2f}", _number(delta)), _cell(_wandb_link(records[run.path]))]
            cells.append(_cell(html_text(run.path.as_posix())))
            body.append("<tr>" + "".join(cells) + "</tr>")
        body.append("</tbody></table>")
    figure = folder.claim(f"{page.removesuffix('.html')}-gradients", ".png")
    if _gradient_figure(runs, records, folder.path(figure)):
        body += ["<h2>Gradient statistics</h2>", f'<img src="{figure}" alt="gradient statistics of {html_text(method)}">']
    body.append("<h2>Configs</h2>")
    body.append('<p class="note">Paths inside the runs folder are relative to it: the published <code>records/</code>.</p>')
    for run in runs:
        config = json.dumps(_within_runs(records[run.path]), indent=1, sort_keys=True)
        body.append(f"<details><summary>{html_text(run.path.as_posix())}</summary><pre>{html_text(config)}</pre></details>")
    write_text_atomic(folder.path(page), _page(f"{method}: {title}", body))


def _summary(boards: list[Board]) -> str:
    """One line per page for the index: per optimizer, the methods and the lowest mean Δm."""
    parts = []
    for board in boards:
        scored = [(_mean_std(row.delta_metric)[0], row.label) for row in board.rows if row.delta_metric]
        best = f", lowest Δm {min(scored)[1]} ({min(scored)[0]:+.2f} %)" if scored else ""
        runs = sum(len(row.runs) for row in board.rows)
        parts.append(f"{board.optimizer}: {len(board.rows)} methods, {runs} runs{best}")
    return "; ".join(parts)


def _optimizer_table(members: list[Board]) -> list[str]:
    """Each method's mean Δm and rank under each optimizer of one page ([] with one optimizer)."""
    optimizers = [board.optimizer for board in members]
    per_method = next(iter(optimizer_comparison(members).values()), {})
    if len(optimizers) < 2 or not per_method:
        return []
    header = "".join(f"<th>Δm {html_text(name)}</th><th>rank {html_text(name)}</th>" for name in optimizers)
    lines = ["<h2>Optimizers compared</h2>", f'<table class="sortable"><thead><tr><th>method</th>{header}</tr></thead><tbody>']
    for method, results in sorted(per_method.items()):
        cells = [_cell(html_text(method), method)]
        for name in optimizers:
            value, rank = results.get(name, (None, None))
            cells += [_cell("-" if value is None else f"{value:+.2f}", _number(value)), _cell("-" if rank is None else str(rank), rank)]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return [*lines, "</tbody></table>"]


def _dataset_page(members: list[Board], stem: str, method_pages: dict[str, str], folder: SiteFolder) -> str:
    """The page of one dataset x model (one study setting): a section per optimizer."""
    body = [f"<h1>{html_text(_page_title(members[0]))}</h1>", '<div class="toggle" role="group" aria-label="optimizer">']
    body += [f'<button type="button" data-show="{html_text(b.optimizer)}">{html_text(b.optimizer)}</button>' for b in members]
    body.append("</div>")
    for board in members:
        figure = folder.claim(f"{stem}-{slug(board.optimizer)}-pareto", ".png")
        pareto_png([board], folder.path(figure))
        body += [f'<section data-optimizer="{html_text(board.optimizer)}">', f"<h2>{html_text(board.optimizer)}</h2>"]
        body += _board_table(board, method_pages)
        body += _against_ew_table(board)
        body += _against_single_task_table(board)
        body += ["<h3>Pareto view</h3>", f'<img src="{figure}" alt="change against single-task baselines per pair of tasks">', "</section>"]
    body.append(
        f'<p class="note">{NOT_SIGNIFICANT}: Δm not shown different from EW (Welch t-test over seeds, Holm-corrected over the board, '
        f"p ≥ 0.05); {NEGATIVE_TRANSFER}: the task is worse than its single-task baseline. Click a column to sort. "
        f"{html_text(METHOD_NOTE)}</p>"
    )
    return _page(_page_title(members[0]), [*body, *_optimizer_table(members)])


def render_site(boards: list[Board], runs_dir: Path, left_out: list[str], out_dir: Path | SiteFolder) -> Path:
    """Write the site into ``out_dir``, a new or empty folder or one an earlier render wrote
    (:mod:`mtlbench.leaderboards.site_folder`: the pages and figures that render wrote are replaced,
    nothing else is touched); returns the index page. ``left_out`` lists the runs the tables
    leave out, as plain text."""
    folder = out_dir if isinstance(out_dir, SiteFolder) else SiteFolder(Path(out_dir))
    runs = [run for board in boards for row in board.rows for run in row.runs]
    records = {run.path: read_record(Path(runs_dir) / run.path, Path(runs_dir)) for run in runs}
    pages: dict[tuple, list[Board]] = defaultdict(list)
    for board in boards:
        pages[_page_key(board)].append(board)
    index = [
        "<h1>mtlbench leaderboard</h1>",
        '<p class="note">Generated from run records. Mean ± sample std over seeds; Δm against the',
        "single-task baselines of the same dataset, model and optimizer (lower is better).</p>",
        "<ul>",
    ]
    for key, members in pages.items():
        title, page = _page_title(members[0]), folder.claim(slug(json.dumps(key)), ".html")
        stem = page.removesuffix(".html")
        methods = sorted({row.method for b in members for row in b.rows})
        method_pages = {method: folder.claim(f"{stem}-{slug(method)}", ".html") for method in methods}
        index.append(f'<li><a href="{page}">{html_text(title)}</a>: {html_text(_summary(members))}</li>')
        write_text_atomic(folder.path(page), _dataset_page(members, stem, method_pages, folder))
        for method, method_page in method_pages.items():
            rows = [(board, row) for board in members for row in board.rows if row.method == method]
            _method_page(title, method, rows, records, folder, method_page)
    index.append("</ul>")
    if left_out:
        index += ["<h2>Runs left out</h2>", "<ul>", *(f"<li>{html_text(line)}</li>" for line in left_out), "</ul>"]
    index_page = folder.path(folder.claim("index", ".html"))
    write_text_atomic(index_page, _page("mtlbench leaderboard", index))
    return index_page
