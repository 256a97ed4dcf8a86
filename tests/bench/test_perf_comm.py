"""The communication estimate: ring-collective arithmetic, and the command on the real model."""

import pytest

from mtlbench.bench.sweeps.perf.comm import FLOAT_BYTES, ModelSizes, all_gather, all_reduce, families, main

SIZES = ModelSizes(tasks=3, shared=1000, heads=100, last_shared=10, features=500, encoder_flops=1e9, head_flops=1e8)


def test_ring_collectives():
    assert all_reduce(1000, gpus=2) == 1000 * FLOAT_BYTES  # 2 (N-1)/N = 1
    assert all_reduce(1000, gpus=8) == 1.75 * 1000 * FLOAT_BYTES
    assert all_gather(500, gpus=8) == 7 * 500 * FLOAT_BYTES


def test_families_send_what_their_scheme_needs():
    sent = {name: nbytes / all_reduce(1, 8) for name, (nbytes, _) in families(SIZES, gpus=8).items()}
    small = 6  # losses and valid-pixel counts
    assert sent["loss weightings (DDP all-reduce)"] == pytest.approx(1100 + small)
    assert sent["aggregators, parameter space"] == pytest.approx(3 * 1000 + 100 + small)  # T rows of the Jacobian
    assert sent["aggregators, feature space, J^T w(G)"] == pytest.approx(1100 + 9 + small)
    assert sent["aggregators, feature space, gathered"] == pytest.approx(1100 + small + 7 * 3 * 500 / 1.75)
    flops = {name: value for name, (_, value) in families(SIZES, gpus=8).items()}
    assert flops["aggregators, parameter space"] > flops["aggregators, feature space, J^T w(G)"] > flops["loss weightings (DDP all-reduce)"]


def test_the_command_prints_the_table_for_the_standard_model(capsys):
    assert main(["--gpus", "4"]) == 0
    out = capsys.readouterr().out
    assert "39.6 M shared" in out and "| aggregators, parameter space |" in out
