"""The run record's ``machine`` section: what it reads of this machine, and that a real fit writes it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from mtlbench.bench.run import machine as machine_module
from mtlbench.bench.run.launch import main
from mtlbench.bench.run.machine import FLOAT_FLAGS, this_machine
from mtlbench.leaderboards.machines import describe, fingerprint, machines_markdown
from mtlbench.leaderboards.records import parse_record
from mtlbench.leaderboards.schema import validate_record
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu sse4_1 sse4_2 fma avx avx2 f16c sha_ni

processor\t: 1
model name\t: a second block, not read
flags\t\t: avx512f
"""


def test_this_machine_reads_the_cpu_the_libraries_and_torch(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    monkeypatch.setattr(machine_module, "CPUINFO", cpuinfo)
    machine = this_machine()
    assert machine["cpu"] == "AMD EPYC 7B13 64-Core Processor"
    assert machine["cpu_flags"] == ["sse4_1", "sse4_2", "f16c", "fma", "avx", "avx2"]  # FLOAT_FLAGS' order, the first block's
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["torch"] == torch.__version__ and machine["threads"] == torch.get_num_threads()
    assert machine["gpus"] == [] and machine["cuda"] is None and machine["cudnn"] is None  # not asked for CUDA
    assert all(len(value) <= machine_module.MAX_TEXT for value in machine.values() if isinstance(value, str))
    if "BLAS_INFO=mkl" in torch.__config__.show():
        assert machine["blas"].startswith("MKL 20")
    if torch.backends.mkldnn.is_available():
        assert machine["onednn"].startswith("oneDNN v")


def test_without_proc_cpuinfo_the_flags_are_empty_and_say_why(tmp_path, monkeypatch):
    monkeypatch.setattr(machine_module, "CPUINFO", tmp_path / "absent")
    machine = this_machine()
    assert machine["cpu_flags"] == [] and "not readable" in machine["cpu_flags_note"]
    assert "CPU flags not recorded" in describe(machine)


def test_the_build_settings_name_the_libraries():
    config = "  - Build settings: BLAS_INFO=open, BUILD_TYPE=Release, CXX_FLAGS= -O2 -DX=1, LAPACK_INFO=open, TORCH_VERSION=2.5.1,"
    settings = machine_module._build_settings(config)
    assert settings["BLAS_INFO"] == "open" and settings["LAPACK_INFO"] == "open"
    assert machine_module._library(settings["BLAS_INFO"], config) == "OpenBLAS"
    assert machine_module._library(None, config) is None
    mkl = "Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605"
    assert machine_module._library("mkl", mkl) == "MKL 2024.2"
    assert set(FLOAT_FLAGS) >= {"avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16", "amx_int8"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_gpus_cuda_and_cudnn_are_named():
    machine = this_machine(cuda=True)
    assert len(machine["gpus"]) == torch.cuda.device_count() and machine["cuda"] == torch.version.cuda
    assert machine["gpu_driver"] or machine["gpu_driver_note"]
    validate_record({**_minimal_record(), "machine": machine})


def test_the_cuda_part_names_each_gpu_and_the_driver_nvidia_smi_gives(tmp_path, monkeypatch):
    """The CUDA branch without a GPU: torch.cuda faked, and an nvidia-smi that prints one
    driver version per GPU (pynvml made unimportable, as it is no dependency)."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '550.54.15\\n550.54.15\\n'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"NVIDIA H100 80GB HBM3 #{index}\n")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    machine = this_machine(cuda=True)
    assert machine["gpus"] == ["NVIDIA H100 80GB HBM3 #0", "NVIDIA H100 80GB HBM3 #1"]  # one line each
    assert (machine["cuda"], machine["cudnn"], machine["gpu_driver"]) == ("12.4", 90100, "550.54.15")
    validate_record({**_minimal_record(), "machine": machine})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    machine = this_machine(cuda=True)
    assert machine["gpu_driver"] is None and machine["gpu_driver_note"] == "neither pynvml nor nvidia-smi found"
    assert this_machine(cuda=False)["gpus"] == []


def _minimal_record() -> dict:
    return {
        "schema": "mtlbench.run/1",
        "status": "complete",
        "method": {"name": "EW"},
        "dataset": {"tasks": [{"name": "depth"}]},
        "metrics": {"test": {"depth": {"abs_err": 0.5}}},
    }


def test_a_real_fits_record_holds_this_machine_and_passes_the_schema(tiny_cache, tmp_path):
    args = [*tiny_cli_args(tiny_cache, tmp_path, QUICKSTART), "--trainer.max_epochs=1", "--data.init_args.tasks=[depth]"]
    assert main(["fit", *args, "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1"]) == 0
    path = next(tmp_path.rglob("results.json"))
    record = json.loads(path.read_text())
    assert record["status"] == "complete"
    assert record["machine"] == json.loads(json.dumps(this_machine()))  # the fit ran on the CPU: no GPU named
    validate_record(record)
    run = parse_record(record, path)
    assert run.machine == record["machine"]
    text = machines_markdown([run, parse_record({**record, "machine": None}, path)])
    assert f"| `{fingerprint(record['machine'])}` |" in text and "| 1 |" in text and "not recorded" in text
