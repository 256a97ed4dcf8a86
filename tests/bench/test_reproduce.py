"""``mtlbench reproduce``'s spec: the user's sweep spec restricted to the chosen runs, loadable
from where it is written, and a one-line refusal for a name the spec does not have."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtlbench.bench.sweeps.reproduce import main, restricted_spec
from mtlbench.bench.sweeps.sweep import load_spec, plan

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "configs" / "sweeps" / "reference.yaml"


def test_the_restricted_spec_keeps_ew_and_the_baselines_and_loads_where_it_is_written(tmp_path):
    out = tmp_path / "board" / "reproduce"
    out.mkdir(parents=True)
    spec = restricted_spec(SPEC, out, ["SI", "PCD"], ["SGD"], [0, 2])
    (out / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    loaded = load_spec(out / "spec.yaml")
    assert list(loaded["methods"]) == ["EW", "SI", "PCD"] and list(loaded["optimizers"]) == ["SGD"] and loaded["seeds"] == [0, 2]
    assert loaded["base"] == str((REPO / "configs" / "reference.yaml").resolve())
    ids = [run.run_id for run in plan(loaded, tmp_path / "runs")]
    original = {run.run_id for run in plan(load_spec(SPEC), tmp_path / "runs")}
    assert set(ids) <= original and len(ids) == 3 * 2 + 3 * 2  # the baselines of both seeds, then EW, SI, PCD
    assert "stl-depth-SGD-lr0.05-s2" in ids and "PCD-SGD-lr0.05-s0" in ids


def test_names_the_spec_lacks_are_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"^reproduce: method UPGrad-typo not in .*reference.yaml \(it has EW, Fixed, "):
        restricted_spec(SPEC, tmp_path, ["UPGrad-typo"], None, None)
    with pytest.raises(ValueError, match=r"^reproduce: seed 9 not in "):
        restricted_spec(SPEC, tmp_path, None, None, [9])
    with pytest.raises(FileNotFoundError, match=r"has no records/"):
        main([str(tmp_path), "--spec", str(SPEC)])


def test_a_published_board_rerun_on_its_machine_reproduces_bit_for_bit(tiny_cache, tmp_path, capsys):
    """The user's path end to end: a sweep, its board published with its records, then
    ``mtlbench reproduce`` of one method on the same machine: the same bits, no configuration
    difference, one machine fingerprint on both sides."""
    from mtlbench.bench.sweeps.sweep import run_sweep
    from mtlbench.leaderboards.cli import main as leaderboard
    from tests.bench.test_sweep import tiny_spec

    spec_path = tiny_spec(tmp_path, tiny_cache)
    spec = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**spec, "seeds": [0, 1]}))
    run_sweep(spec_path, tmp_path / "runs")
    board = tmp_path / "board"
    assert leaderboard([str(tmp_path / "runs"), "--keep-records", "--out", str(board), "--no-png"]) == 0
    assert main([str(board), "--spec", str(spec_path), "--methods", "UW", "--runs", str(tmp_path / "rerun")]) == 0
    assert "8 reruns: 8 bit-identical" in capsys.readouterr().out
    report = (board / "reproduce" / "report.md").read_text()
    assert "8 of 8 reruns give their published test metrics bit for bit" in report
    assert "All 8 reruns have their published run's configuration" in report
    machines = [line for line in report.splitlines() if line.startswith("- `")]
    assert len(machines) == 2 and machines[0] == machines[1] and "not recorded" not in machines[0]
    assert yaml.safe_load((board / "reproduce" / "spec.yaml").read_text())["methods"].keys() == {"EW", "UW"}
