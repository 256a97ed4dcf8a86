"""The static leaderboard site: deterministic, escaped, and working in a real headless browser."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mtlbench.leaderboards.cli import main as leaderboard_main
from mtlbench.leaderboards.cli import render_leaderboard
from tests.leaderboards.browser import Browser, find_browser
from tests.leaderboards.fixture_runs import write_fixture_runs


def _site(records: Path, out: Path) -> Path:
    render_leaderboard(records, out / "tables", png=False, html=out / "site")
    return out / "site"


def _digest(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_the_site_regenerates_byte_identical_and_small(tmp_path):
    records = write_fixture_runs(tmp_path / "runs")
    first, second = _site(records, tmp_path / "a"), _site(records, tmp_path / "b")
    assert _digest(first) == _digest(second)
    assert sum(path.stat().st_size for path in first.iterdir()) < 2_000_000
    pages = sorted(path.name for path in first.glob("*.html"))
    assert "index.html" in pages and len(pages) == 1 + 1 + 3  # index, one dataset x model page, EW / UW / MGDA
    index = (first / "index.html").read_text()
    assert "Runs left out" in index and "diverged" in index  # the fixture's diverged and unfinished runs are named


def test_names_from_records_are_escaped_and_links_need_a_wandb_run_url(tmp_path):
    records = write_fixture_runs(tmp_path / "runs")
    for path, url in (
        (next(records.glob("EW-Adam-s0/**/results.json")), "https://wandb.ai/team/project/runs/abc123"),
        (next(records.glob("EW-Adam-s1/**/results.json")), "javascript:alert(1)"),
    ):
        record = json.loads(path.read_text())
        record["wandb"] = {"url": url}
        path.write_text(json.dumps(record))
    for path in records.glob("UW-*/**/results.json"):
        record = json.loads(path.read_text())
        record["method"]["name"] = "UW<script>alert(1)</script>"
        path.write_text(json.dumps(record))
    site = _site(records, tmp_path)
    text = "".join(path.read_text() for path in site.glob("*.html"))
    assert "<script>alert(1)" not in text and "UW&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count("<script>") == len(list(site.glob("*.html")))  # the site's own script, once per page
    assert 'href="https://wandb.ai/team/project/runs/abc123"' in text and "javascript:alert" not in text
    assert all(set(path.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") for path in site.iterdir())


def test_the_command_writes_the_site(tmp_path, capsys):
    records = write_fixture_runs(tmp_path / "runs")
    assert leaderboard_main([str(records), "--out", str(tmp_path / "t"), "--no-png", "--html", str(tmp_path / "site")]) == 0
    assert f"site written to {tmp_path / 'site' / 'index.html'}" in capsys.readouterr().out


BROWSER = find_browser()


@pytest.mark.skipif(BROWSER is None, reason="no Chromium found: .ci/run installs Debian's chromium as root; elsewhere install it")
def test_in_a_headless_browser_columns_sort_and_the_optimizer_toggles(tmp_path):
    site = _site(write_fixture_runs(tmp_path / "runs"), tmp_path)
    with Browser(BROWSER) as browser:
        browser.open((site / "index.html").as_uri())
        browser.open(browser.evaluate("document.querySelector('ul a').href"))
        shown = "Array.from(document.querySelectorAll('section[data-optimizer]')).filter(s => !s.hidden).map(s => s.dataset.optimizer)"
        assert browser.evaluate(shown) == ["Adam"]
        table = "document.querySelector('section[data-optimizer=\"Adam\"] table')"
        headers = browser.evaluate(f"Array.from({table}.tHead.rows[0].cells).map(c => c.textContent)")
        column = headers.index("Δm% metric (↓)")
        values = f"Array.from({table}.tBodies[0].rows).map(r => Number(r.cells[{column}].dataset.value))"
        methods = f"Array.from({table}.tBodies[0].rows).map(r => r.cells[0].textContent)"
        browser.evaluate(f"{table}.tHead.rows[0].cells[{column}].click()")
        ascending = browser.evaluate(values)
        assert ascending == sorted(ascending) and len(ascending) == 3
        assert browser.evaluate(f"{table}.tHead.rows[0].cells[{column}].getAttribute('aria-sort')") == "ascending"
        browser.evaluate(f"{table}.tHead.rows[0].cells[{column}].click()")
        assert browser.evaluate(values) == sorted(ascending, reverse=True)
        browser.evaluate(f"{table}.tHead.rows[0].cells[0].click()")
        assert browser.evaluate(methods) == sorted(browser.evaluate(methods))  # text columns sort as text

        browser.evaluate("document.querySelector('.toggle button[data-show=\"SGD\"]').click()")
        assert browser.evaluate(shown) == ["SGD"] and browser.evaluate("location.hash") == "#optimizer=SGD"
        assert browser.evaluate("document.querySelector('.toggle button[data-show=\"SGD\"]').getAttribute('aria-pressed')") == "true"
        browser.screenshot(tmp_path / "page.png")
        page = browser.evaluate("location.href").split("#")[0]
        browser.open("about:blank")
        browser.open(page + "#optimizer=SGD")  # a link to one optimizer's table opens on it
        assert browser.evaluate(shown) == ["SGD"]

        browser.open(browser.evaluate("document.querySelector('section[data-optimizer=\"SGD\"] tbody a').href"))
        assert browser.evaluate("document.querySelectorAll('table tbody tr').length") == 6  # 3 seeds under each optimizer
        assert browser.evaluate("document.querySelectorAll('details pre').length") == 6  # each run's config
    assert (tmp_path / "page.png").stat().st_size > 20_000
