"""Model selection: validation history, the selected checkpoint, the last-epochs test average."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from mtlbench.bench.run.launch import main
from mtlbench.leaderboards.delta_m import delta_m
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def fit(cache: str, save_dir: Path, *extra: str) -> dict:
    args = [*tiny_cli_args(cache, save_dir, QUICKSTART), "--trainer.max_epochs=3", "--model.lr_scheduler=null", *extra]
    assert main(["fit", *args]) == 0
    return json.loads(next(save_dir.rglob("results.json")).read_text())


@pytest.fixture(scope="module")
def plain_run(tiny_cache, tmp_path_factory) -> tuple[dict, Path]:
    save_dir = tmp_path_factory.mktemp("selection")
    return fit(tiny_cache, save_dir), save_dir


def test_validation_history_holds_each_epochs_own_metrics(plain_run):
    record, save_dir = plain_run
    rows = list(csv.DictReader(next(save_dir.rglob("metrics.csv")).open()))
    logged = {int(row["epoch"]): float(row["val/depth/abs_err"]) for row in rows if row.get("val/depth/abs_err")}
    history = record["metrics"]["val"]
    assert [entry["epoch"] for entry in history] == [0, 1, 2]
    for entry in history:
        assert entry["tasks"]["depth"]["abs_err"] == pytest.approx(logged[entry["epoch"]], rel=1e-6)
        assert entry["select"] == pytest.approx(entry["loss"])  # no baseline: the summed validation loss


def test_the_selected_epoch_is_the_lowest_validation_score_and_is_tested(plain_run):
    record, _ = plain_run
    history = record["metrics"]["val"]
    best = min(history, key=lambda entry: entry["select"])
    selection = record["selection"]
    assert selection["criterion"] == "val_loss" and selection["epoch"] == best["epoch"]
    assert selection["checkpoint"].endswith(f"best-epoch={best['epoch']}.ckpt") and Path(selection["checkpoint"]).is_file()
    assert record["metrics"]["test_weights"] == selection["checkpoint"]
    same_weights = next(entry for entry in record["metrics"]["test_last_epochs"] if entry["epoch"] == best["epoch"])
    assert same_weights["tasks"] == record["metrics"]["test"]


def test_last_epochs_are_each_tested_averaged_and_their_checkpoints_removed(plain_run):
    record, save_dir = plain_run
    last = record["metrics"]["test_last_epochs"]
    assert [entry["epoch"] for entry in last] == [0, 1, 2]
    mean = record["metrics"]["test_last_epochs_mean"]
    assert mean["normal"]["mean_angle"] == pytest.approx(sum(e["tasks"]["normal"]["mean_angle"] for e in last) / 3)
    assert not list(save_dir.rglob("epoch-epoch=*.ckpt"))
    assert (next(save_dir.rglob("checkpoints")) / "last.ckpt").is_file()


def test_the_selected_weights_are_tested_once_with_the_numbers_of_two_tests(tiny_cache, tmp_path, monkeypatch):
    """The selected checkpoint and a last epoch's, written at the same step, hold the same weights:
    one test pass fills both entries (3 passes for 3 epochs, not 4), and the record's numbers are
    those of the same run testing both."""
    from pytorch_lightning import Trainer

    from mtlbench.bench.run.checkpoints import AtomicCheckpointIO

    tested = []
    test = Trainer.test
    monkeypatch.setattr(Trainer, "test", lambda self, *args, **kw: tested.append(kw.get("ckpt_path")) or test(self, *args, **kw))
    once = fit(tiny_cache, tmp_path / "once")
    assert len(tested) == 3 and tested[-1] == once["selection"]["checkpoint"]
    selected_epoch = next(e for e in once["metrics"]["test_last_epochs"] if e["epoch"] == once["selection"]["epoch"])
    assert once["metrics"]["test"] == selected_epoch["tasks"]

    tested.clear()  # negative control: without the steps of the files, every checkpoint is tested
    monkeypatch.setattr(AtomicCheckpointIO, "saved_steps", property(lambda self: {}, lambda self, value: None), raising=False)
    twice = fit(tiny_cache, tmp_path / "twice")
    assert len(tested) == 4
    for key in ("test", "test_last_epochs", "test_last_epochs_mean", "val"):
        assert once["metrics"][key] == twice["metrics"][key], key


def test_last_epochs_keeps_only_k_and_writes_only_theirs(tiny_cache, tmp_path, monkeypatch):
    """k = 2 of 3 epochs: epochs 1 and 2 are tested, and epoch 0's file, which the last two
    cannot hold, is never written; with an early-stopping callback (the run may end sooner)
    every epoch's is."""
    from mtlbench.bench.run.checkpoints import AtomicCheckpointIO

    written = []
    save = AtomicCheckpointIO.save_checkpoint

    def noted(self, checkpoint, path, *rest, **options) -> None:
        written.append(Path(path).name)
        save(self, checkpoint, path, *rest, **options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", noted)
    record = fit(tiny_cache, tmp_path / "known_end", "--last_epochs.save_top_k=2")
    assert [entry["epoch"] for entry in record["metrics"]["test_last_epochs"]] == [1, 2]
    assert sorted(name for name in written if name.startswith("epoch-")) == ["epoch-epoch=1.ckpt", "epoch-epoch=2.ckpt"]
    written.clear()
    stopper = {"class_path": "pytorch_lightning.callbacks.EarlyStopping", "init_args": {"monitor": "val/select", "patience": 9}}
    record = fit(tiny_cache, tmp_path / "may_stop", "--last_epochs.save_top_k=2", f"--trainer.callbacks+={json.dumps(stopper)}")
    assert [entry["epoch"] for entry in record["metrics"]["test_last_epochs"]] == [1, 2]
    assert sorted(name for name in written if name.startswith("epoch-")) == [f"epoch-epoch={epoch}.ckpt" for epoch in range(3)]


def test_with_a_baseline_the_score_is_the_validation_delta_m(tiny_cache, tmp_path, plain_run):
    reference, _ = plain_run
    last = reference["metrics"]["val"][-1]["tasks"]  # any fixed non-zero values do
    baseline = {task: {metric: max(value, 0.01) for metric, value in metrics.items()} for task, metrics in last.items()}
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    record = fit(tiny_cache, tmp_path / "run", f"--model.selection_baseline={path}")
    flat = {f"{task}/{metric}": value for task, metrics in baseline.items() for metric, value in metrics.items()}
    directions = {f"{t}/{m}": way == "higher" for t, metrics in record["directions"].items() for m, way in metrics.items()}
    for entry in record["metrics"]["val"]:
        values = {f"{task}/{metric}": value for task, metrics in entry["tasks"].items() for metric, value in metrics.items()}
        assert entry["select"] == pytest.approx(delta_m(values, flat, directions), rel=1e-5)
    assert record["selection"]["criterion"] == "val_delta_m"
    assert record["selection"]["epoch"] == min(record["metrics"]["val"], key=lambda entry: entry["select"])["epoch"]
    assert math.isfinite(record["selection"]["score"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, r"selection baseline .* not found"),
        ('{"depth": {"abs_err": 1.0}}', r"lacks \['segmentation/miou'"),
        ("[1, 2]", r"not a JSON object"),
        ("ZERO", r"\['normal/within_11_25'\] are 0 or not finite"),
    ],
)
def test_a_bad_baseline_is_one_line(tiny_cache, tmp_path, capsys, content, expected):
    import re

    path = tmp_path / "baseline.json"
    if content == "ZERO":
        metrics = {"segmentation": ["miou", "pix_acc"], "depth": ["abs_err", "rel_err"]}
        metrics["normal"] = ["mean_angle", "median_angle", "within_11_25", "within_22_5", "within_30"]
        content = json.dumps({t: {m: 0.0 if m == "within_11_25" else 1.0 for m in ms} for t, ms in metrics.items()})
    if content is not None:
        path.write_text(content)
    args = [*tiny_cli_args(tiny_cache, tmp_path, QUICKSTART), f"--model.selection_baseline={path}"]
    assert main(["fit", *args]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mtlbench: error:")]
    assert len(lines) == 1 and re.search(expected, lines[0]), lines
