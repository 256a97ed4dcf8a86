"""The gradient probe end to end: logged values, run record, figures, and its autograd cost."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from mtlbench.bench.cli.entry import main
from mtlbench.bench.run.callbacks import STATS_FILE, GradientProbe, RunRecord
from mtlbench.bench.run.methods import UPGrad
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.models import MultiTaskNet

warnings.filterwarnings("ignore", message=".*not DPP.*")


def fit(datamodule, method, callbacks, tmp_path, epochs=1, logger=True):
    pl.seed_everything(0)
    module = MultiTaskModule(datamodule.tasks, net=lambda t: MultiTaskNet(t, backbone="test_resnet", decoder_channels=8), method=method)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=callbacks,
        logger=pl.loggers.CSVLogger(tmp_path) if logger else False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=datamodule)
    return trainer, module


class AutogradCounter:
    """Counts autograd.grad and Tensor.backward calls per training step."""

    def __init__(self, monkeypatch):
        self.calls, self.per_step = 0, []
        real_grad, real_backward = torch.autograd.grad, torch.Tensor.backward

        def grad(*args, **kwargs):
            self.calls += 1
            return real_grad(*args, **kwargs)

        def backward(tensor, *args, **kwargs):
            self.calls += 1
            return real_backward(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", grad)
        monkeypatch.setattr(torch.Tensor, "backward", backward)

    def callback(self):
        counter = self

        class Mark(pl.Callback):
            def on_train_batch_start(self, *args):
                counter.calls = 0

            def on_train_batch_end(self, *args):
                counter.per_step.append(counter.calls)

        return Mark()


def test_probe_reuses_an_aggregator_jacobian_at_no_extra_backward(tiny_datamodule, tmp_path, monkeypatch):
    counter = AutogradCounter(monkeypatch)
    fit(tiny_datamodule(), UPGrad(), [counter.callback()], tmp_path / "plain", logger=False)
    plain = counter.per_step
    counter.per_step = []
    probe = GradientProbe(every_n_steps=2, inter_sample=False)
    fit(tiny_datamodule(), UPGrad(), [counter.callback(), probe], tmp_path / "probed", logger=False)
    assert counter.per_step == plain  # probe steps included: zero extra autograd calls
    assert [record["step"] for record in probe.history] == [0, 2, 4]


def test_probe_costs_nothing_on_other_steps(tiny_datamodule, tmp_path, monkeypatch):
    counter = AutogradCounter(monkeypatch)
    fit(tiny_datamodule(), None, [counter.callback()], tmp_path / "plain", logger=False)
    plain = counter.per_step
    counter.per_step = []
    fit(tiny_datamodule(), None, [counter.callback(), GradientProbe(every_n_steps=3)], tmp_path / "probed", logger=False)
    probed = counter.per_step
    for step, (a, b) in enumerate(zip(plain, probed, strict=True)):
        if step % 3:
            assert a == b, f"step {step}: {a} vs {b} autograd calls"
        else:  # T head passes, then T x 2 sub-batch rows through the encoder (one call each on CPU)
            assert b == a + 3 + 3 * 2


def test_probe_restores_batchnorm_statistics(tiny_datamodule, tmp_path):
    _, plain = fit(tiny_datamodule(), None, [], tmp_path / "a", logger=False)
    _, probed = fit(tiny_datamodule(), None, [GradientProbe(every_n_steps=1)], tmp_path / "b", logger=False)
    for (name, a), b in zip(plain.net.named_buffers(), probed.net.buffers(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_logged_values_epoch_summaries_run_record_and_figures(tiny_datamodule, tmp_path, capsys):
    record = RunRecord()
    probe = GradientProbe(every_n_steps=2, principal_angles=True)
    trainer, _ = fit(tiny_datamodule(), None, [probe, record], tmp_path, epochs=2)
    run_dir = trainer.log_dir
    with open(f"{run_dir}/metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    columns = set(rows[0])
    assert {"grad/norm/depth", "grad/inter_task/cos/segmentation~depth", "grad/inter_sample/cos/normal"} <= columns
    assert {"grad/update_cos/segmentation", "grad/weight/depth", "grad/inter_task/cond"} <= columns
    assert "grad/principal_cos/depth~normal" in columns
    assert "grad_epoch/inter_task/cos/mean" in columns and "grad_epoch/inter_sample/mag_sim/p97_5" in columns
    # EW's realised weights are all one, exactly in the span of the task gradients
    for probe_values in probe.history:
        assert [probe_values[f"weight/{t}"] for t in ("segmentation", "depth", "normal")] == pytest.approx([1, 1, 1], abs=1e-3)
        assert probe_values["weight_residual"] < 1e-3
    saved = json.loads(Path(run_dir, STATS_FILE).read_text())
    assert len(saved["probes"]) == len(probe.history) == 6
    summary = json.loads(record.path.read_text())["gradient_statistics"]
    assert summary["probes"] == 6 and summary["inter_task/cos"]["n"] == 18 and 0 <= summary["inter_task/conflict_rate"] <= 1
    assert set(summary["inter_sample/cos"]) == {"mean", "std", "p2_5", "p97_5", "n", "non_finite"}
    assert main(["plot", run_dir, "--out", str(tmp_path / "figures")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert pngs == ["cosine_inter_task_vs_inter_sample.png", "grad_norms.png", "magnitude_similarity_inter_task_vs_inter_sample.png"]


def test_probe_arguments_fail_loudly(tiny_datamodule, tmp_path):
    with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
        fit(tiny_datamodule(), None, [GradientProbe(every_n_steps=0)], tmp_path, logger=False)
    with pytest.raises(ValueError, match="sub_batches must be >= 2"):
        fit(tiny_datamodule(), None, [GradientProbe(sub_batches=1)], tmp_path, logger=False)


def test_plot_without_statistics_is_a_one_line_error(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "gradient_stats.json not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"tasks": "depth", "probes": []}', "'tasks' must be a list of names"),
        ('{"tasks": ["depth"], "probes": [{"step": "1"}]}', "probe 0 has no integer step"),
        ('{"tasks": ["depth"], "probes": [{"step": 1, "norm/depth": "big"}]}', "probe 0 holds a value that is not a number"),
        ("[1, 2]", "'tasks' must be a list of names"),
        ("{oops", "not JSON"),
    ],
)
def test_plot_of_a_statistics_file_that_does_not_fit_is_one_line(tmp_path, capsys, content, reason):
    (tmp_path / STATS_FILE).write_text(content)
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and reason in err[0] and str(tmp_path / STATS_FILE) in err[0]


def test_plot_draws_hostile_task_names_as_text(tmp_path):
    """A task named with dollar signs would be parsed as mathtext (and stop the plot) if drawn raw."""
    probes = [{"step": step, "norm/$\\frac{": 1.0 + step, "inter_task/cos/0": 0.1} for step in range(3)]
    (tmp_path / STATS_FILE).write_text(json.dumps({"tasks": ["$\\frac{"], "probes": probes}))
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "figures")]) == 0
