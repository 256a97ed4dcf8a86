"""The machine a run ran on, as the run record's ``machine`` section.

The same code and seed give float32 results that differ between CPUs: torch picks its kernels
by the instruction sets it finds (``cpu_capability``), and MKL and oneDNN pick theirs again. The
quickstart's SGD runs gave test metrics up to 28 % apart on a CPU with AVX-512 and on one with
AVX2 alone. So every record says which CPU (its model and the flags that change float kernels),
which torch, BLAS, LAPACK and oneDNN, how many threads, and, for a run on CUDA, which GPUs, CUDA,
cuDNN and driver. ``mtlbench.leaderboards.machines`` fingerprints it.

Every value is a short string, a number, null or a list of short strings (the leaderboard's
schema checks that shape); what cannot be found is null, with a ``*_note`` saying why.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch

CPUINFO = Path("/proc/cpuinfo")
# Instruction-set flags that change which float kernels torch, MKL and oneDNN run (x86's
# /proc/cpuinfo "flags", Arm's "Features"); the record keeps those present, in this order.
FLOAT_FLAGS = (
    "sse4_1",
    "sse4_2",
    "f16c",
    "fma",
    "avx",
    "avx2",
    "avx_vnni",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
    "asimd",
    "asimdhp",
    "asimddp",
    "bf16",
    "i8mm",
    "sve",
    "sve2",
)
MAX_TEXT = 120  # characters kept of a string read from the system


def _short(text: Any) -> str | None:
    """One printable line of at most MAX_TEXT characters; None for nothing."""
    if text is None:
        return None
    line = " ".join("".join(char if char.isprintable() else " " for char in str(text)).split())
    return line[:MAX_TEXT] or None


def _cpuinfo() -> tuple[str | None, list[str] | None, str | None]:
    """The CPU model name and the float-kernel flags from /proc/cpuinfo (the first processor's),
    with a note where they could not be read."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError as error:
        return None, None, f"{CPUINFO} not readable on {platform.system() or 'this system'} ({type(error).__name__})"
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or fields.get("Model") or fields.get("Hardware")
    present = set((fields.get("flags") or fields.get("Features") or "").split())
    flags = [flag for flag in FLOAT_FLAGS if flag in present]
    note = None if present else f"{CPUINFO} lists no flags"
    return _short(model), flags if present else None, note


def _build_settings(config: str) -> dict[str, str]:
    """``KEY=value`` pairs of ``torch.__config__.show()``'s "Build settings" line."""
    match = re.search(r"Build settings:(.*)", config)
    if not match:
        return {}
    pairs = (item.strip().partition("=") for item in match.group(1).split(","))
    return {key: value.strip() for key, sep, value in pairs if sep and re.fullmatch(r"[A-Z_]+", key)}


_LIBRARIES = {"mkl": "MKL", "open": "OpenBLAS", "openblas": "OpenBLAS", "accelerate": "Accelerate", "eigen": "Eigen", "blis": "BLIS"}


def _library(info: str | None, config: str) -> str | None:
    """The BLAS or LAPACK ``info`` names (``mkl``, ``open``...), with MKL's version when it is MKL."""
    if not info:
        return None
    name = _LIBRARIES.get(info.lower(), info)
    version = re.search(r"Math Kernel Library Version ([0-9][0-9.]*)", config)
    return _short(f"MKL {version.group(1)}" if name == "MKL" and version else name)


def _onednn(config: str) -> str | None:
    """oneDNN's version when torch uses it (``MKL-DNN v3.5.3`` in the build's description)."""
    if not torch.backends.mkldnn.is_available():
        return None
    version = re.search(r"(?:MKL-DNN|oneDNN)\s+(v?[0-9][0-9.]*)", config)
    return _short(f"oneDNN {version.group(1)}" if version else "oneDNN")


def _driver() -> tuple[str | None, str | None]:
    """The NVIDIA driver's version (pynvml where installed, else ``nvidia-smi``), or a note why not."""
    try:
        import pynvml  # optional: not a dependency

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return _short(version.decode() if isinstance(version, bytes) else version), None
    except Exception:  # absent, or no NVML: try nvidia-smi
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None, "neither pynvml nor nvidia-smi found"
    try:
        done = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"nvidia-smi failed ({type(error).__name__})"
    versions = sorted(set(done.stdout.split()))
    return (_short(versions[0]), None) if len(versions) == 1 else (None, "nvidia-smi gave no single driver version")


def this_machine(cuda: bool = False) -> dict[str, Any]:
    """The record's ``machine`` section for this process; ``cuda``: the run uses CUDA devices
    (then the visible GPUs' names, CUDA, cuDNN and the driver are added)."""
    model, flags, flags_note = _cpuinfo()
    config = torch.__config__.show()
    settings = _build_settings(config)
    capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
    machine: dict[str, Any] = {
        "cpu": model or _short(platform.processor()),
        "cpu_flags": flags if flags is not None else [],
        "cpu_capability": _short(capability()) if capability else None,
        "blas": _library(settings.get("BLAS_INFO"), config),
        "lapack": _library(settings.get("LAPACK_INFO"), config),
        "onednn": _onednn(config),
        "torch": _short(torch.__version__),
        "threads": torch.get_num_threads(),
        "os": _short(f"{platform.system()} {platform.release()}"),
        "arch": _short(platform.machine()),
        "gpus": [],
        "cuda": None,
        "cudnn": None,
        "gpu_driver": None,
    }
    if flags is None:
        machine["cpu_flags_note"] = _short(flags_note)
    if cuda and torch.cuda.is_available():
        machine["gpus"] = [_short(torch.cuda.get_device_name(index)) or "unknown" for index in range(torch.cuda.device_count())]
        machine["cuda"] = _short(torch.version.cuda)
        machine["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        machine["gpu_driver"], note = _driver()
        if note:
            machine["gpu_driver_note"] = note
    return machine
