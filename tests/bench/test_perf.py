"""``mtlbench perf``: variant grammar, per-step peak memory, and one real run on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtlbench.bench.sweeps.perf.memory import step_peak_mb
from mtlbench.bench.sweeps.perf.steps import main, replace_block
from mtlbench.bench.sweeps.perf.variants import build_variant, parse_variant
from mtlbench.models import MultiTaskNet

REPO = Path(__file__).resolve().parents[2]


def test_variant_labels():
    spec = parse_variant("upgrad:features@8+bf16+channels_last")
    assert (spec.name, spec.features, spec.refresh_every, spec.options) == ("upgrad", True, 8, ("bf16", "channels_last"))
    assert parse_variant("floor").is_reference and not parse_variant("ew").is_reference
    bad_labels = [
        ("UPGrad", "not of the form"),
        ("ew+fp8", "unknown option fp8"),
        ("floor@2", "take no space"),
        ("ew@0", "k >= 1"),
        ("upgrad+batched+sequential", "exclude each other"),
    ]
    for bad, message in bad_labels:
        with pytest.raises(ValueError, match=message):
            parse_variant(bad)


def test_readme_block_is_replaced_and_a_missing_one_named():
    text = "intro\n<!-- perf:cpu -->\nold\n<!-- /perf:cpu -->\nrest\n"
    assert replace_block(text, "cpu", "new\n", "README.md") == "intro\n<!-- perf:cpu -->\nnew\n<!-- /perf:cpu -->\nrest\n"
    with pytest.raises(ValueError, match=r"README\.md has no '<!-- perf:gpu -->'"):
        replace_block(text, "gpu", "new\n", "README.md")


def test_the_step_peak_counts_the_jacobian(tiny_datamodule):
    datamodule = tiny_datamodule()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    torch.manual_seed(0)
    net = MultiTaskNet(datamodule.tasks, backbone="test_resnet", decoder_channels=8)
    jacobian_mb = 3 * sum(p.numel() for p in net.shared_parameters()) * 4 / 2**20
    peaks = {}
    for label in ("ew", "upgrad", "upgrad@4"):
        variant = build_variant(parse_variant(label), net, datamodule.tasks, batch, REPO / "configs" / "method", torch.device("cpu"))
        variant.run(4)  # a whole cycle: the next step is an exact one
        peaks[label] = step_peak_mb(lambda v=variant: v.run(1), variant.module, variant.optimizer, torch.device("cpu"))
    assert peaks["upgrad"] - peaks["ew"] > 0.9 * jacobian_mb
    assert peaks["upgrad@4"] == pytest.approx(peaks["upgrad"], rel=0.05)  # measured on its exact step


def test_perf_run_writes_the_record_the_table_and_the_readme_block(tiny_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MTLBENCH_CACHE", tiny_cache)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- perf:tiny -->\n<!-- /perf:tiny -->\n")
    args = ["--config", str(REPO / "configs" / "perf" / "smoke.yaml"), "--name", "tiny", "--rounds", "2", "--warmup_rounds", "1"]
    args += ["--variants", "[floor, naive, ew, upgrad@2, mgda:features]"]
    args += ["--out", str(tmp_path / "perf.json"), "--table", str(tmp_path / "perf.md"), "--readme", str(readme)]
    assert main(args) == 0
    record = json.loads((tmp_path / "perf.json").read_text())
    assert record["schema"] == "mtlbench.perf/1" and record["model"]["backbone"] == "test_resnet"
    rows = record["variants"]
    assert list(rows) == ["floor", "naive", "ew", "upgrad@2", "mgda:features"]
    assert rows["ew"]["x_ew"] == 1.0 and rows["floor"]["x_floor"] == 1.0
    assert rows["upgrad@2"]["method"] == "UPGrad (k=2)" and rows["mgda:features"]["method"] == "MGDA (features)"
    assert all(len(row["seconds"]) == 2 and row["peak_memory_mb"] > 0 for row in rows.values())
    table = (tmp_path / "perf.md").read_text()
    assert "| upgrad@2 | UPGrad (k=2) |" in table and "mtlbench perf --config" in table
    assert table in readme.read_text()


def test_bad_inputs_are_one_line_before_anything_is_measured(tiny_cache, tmp_path, monkeypatch):
    from mtlbench.bench.sweeps.perf.variants import load_method

    monkeypatch.setenv("MTLBENCH_CACHE", tiny_cache)
    bad = tmp_path / "bad.yaml"
    bad.write_text("class_path: mtlbench.bench.run.methods.UPGrad\ninit_args: {no_such_argument: 1}\n")
    with pytest.raises(ValueError, match=r"config .*bad\.yaml does not describe a valid object"):
        load_method(bad, features=False)
    base = ["--config", str(REPO / "configs" / "perf" / "smoke.yaml")]
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda, but torch sees no GPU"):
            main([*base, "--device", "cuda"])
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="has no '<!-- perf:smoke -->'"):
        main([*base, "--readme", str(readme), "--out", str(tmp_path / "perf.json")])
    assert not (tmp_path / "perf.json").exists()  # refused before measuring, not after
    link = tmp_path / "link.md"
    link.symlink_to(readme)
    with pytest.raises(ValueError, match=r"^perf: --readme .*link\.md is a symbolic link; give the file it leads to"):
        main([*base, "--readme", str(link), "--out", str(tmp_path / "perf.json")])
    assert link.is_symlink() and not (tmp_path / "perf.json").exists()


def test_a_failing_variant_is_reported_and_the_others_go_on_round_by_round():
    """A step that fails (out of memory, a compiler error) drops that variant with its error; every
    round is handed to ``after_round`` as it ends (a run cut short keeps its figures); the
    deadline ends the timing after the round that passes it."""
    from mtlbench.bench.sweeps.perf.steps import summarise, time_interleaved
    from mtlbench.bench.sweeps.perf.variants import Variant

    def fine(_: int) -> None:
        pass

    def fails_on_second_call(step: int) -> None:
        if step == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")

    variants = [Variant(parse_variant(label), None, None, label, step) for label, step in (("ew", fine), ("upgrad", fails_on_second_call))]
    rounds_seen, lines = [], []
    done = time_interleaved(variants, 5, 1, torch.device("cpu"), lines.append, rounds_seen.append)
    assert done == 5 and rounds_seen == [1, 2, 3, 4, 5]
    assert len(variants[0].seconds) == 5 and variants[1].seconds == []
    assert variants[1].error == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    rows = summarise(variants, batch_size=4)
    assert rows["upgrad"]["seconds_per_step"] is None and rows["upgrad"]["error"].startswith("OutOfMemoryError")
    assert rows["ew"]["x_ew"] == 1.0 and rows["ew"]["error"] is None
    assert any("upgrad: failed, left out from now on" in line for line in lines)
    assert any(line.startswith("  round 1/5 (s/step): ew ") for line in lines)

    fresh = [Variant(parse_variant("ew"), None, None, "ew", fine)]
    assert time_interleaved(fresh, 50, 0, torch.device("cpu"), lines.append, deadline_s=1e-9) == 1  # stopped after one round
