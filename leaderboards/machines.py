"""The machines runs came from: a fingerprint and a line per machine (the record's ``machine``).

float32 results depend on the machine: the quickstart's SGD runs gave test metrics up to 28 %
apart on a CPU with AVX-512 and on one with AVX2 alone, from the same code and seed. So a table
says which machines its runs came from, each named by a fingerprint of what changes float
results (CPU model and flags, torch's CPU capability, BLAS, LAPACK and oneDNN, torch, threads,
GPUs, CUDA and cuDNN), never of what does not (OS release, driver notes, hostname).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from mtlbench.leaderboards.escape import markdown_text
from mtlbench.leaderboards.records import Run

# The machine fields that change float results, which the fingerprint covers (bench/run/machine.py writes them).
FINGERPRINT_KEYS = ("cpu", "cpu_flags", "cpu_capability", "blas", "lapack", "onednn", "torch", "threads", "gpus", "cuda", "cudnn")
NOT_RECORDED = "not recorded (records made before machine fingerprints)"


def fingerprint(machine: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the canonical JSON of the :data:`FINGERPRINT_KEYS` (a missing
    key counts as null; flags as a set).

    Example:
        >>> one = fingerprint({"cpu": "X", "cpu_flags": ["avx2", "fma"]})
        >>> one == fingerprint({"cpu_flags": ["fma", "avx2"], "cpu": "X", "host": "a"}), len(one)
        (True, 12)
    """
    chosen = {key: machine.get(key) for key in FINGERPRINT_KEYS}
    if isinstance(chosen["cpu_flags"], list):
        chosen["cpu_flags"] = sorted(set(map(str, chosen["cpu_flags"])))
    canonical = json.dumps(chosen, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _simd(flags: Any, note: Any) -> str:
    """The widest x86 vector set among ``flags`` (what decides torch's kernels), or the flags."""
    if not isinstance(flags, list) or not flags:
        return f"CPU flags not recorded ({note})" if note else "CPU flags not recorded"
    present = set(map(str, flags))
    if "avx512f" in present:
        extras = [name.upper() for name in ("bf16", "fp16", "vnni") if f"avx512_{name}" in present]
        wide = "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
        return wide + (", AMX" if any(flag.startswith("amx") for flag in present) else "")
    if "avx2" in present:
        return "AVX2 (no AVX-512)"
    if "avx" in present:
        return "AVX (no AVX2)"
    return "flags " + " ".join(str(flag) for flag in flags)


def describe(machine: Mapping[str, Any]) -> str:
    """One line for a person, e.g. "AMD EPYC 7B13, AVX2 (no AVX-512), cpu capability AVX2, BLAS
    OpenBLAS, torch 2.5.1, 2 threads" (unescaped: escape it for the format it goes into).

    Example:
        >>> describe({"cpu": "AMD EPYC 7B13", "cpu_flags": ["fma", "avx", "avx2"], "cpu_capability": "AVX2", "threads": 2})
        'AMD EPYC 7B13, AVX2 (no AVX-512), cpu capability AVX2, 2 threads'
    """
    parts = [str(machine.get("cpu") or "unknown CPU"), _simd(machine.get("cpu_flags"), machine.get("cpu_flags_note"))]
    if machine.get("cpu_capability"):
        parts.append(f"cpu capability {machine['cpu_capability']}")
    blas, lapack = machine.get("blas"), machine.get("lapack")
    if blas:
        parts.append(f"BLAS {blas}" + (f", LAPACK {lapack}" if lapack and lapack != blas else ""))
    if machine.get("onednn"):
        parts.append(str(machine["onednn"]))
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']}")
    if machine.get("threads") is not None:
        parts.append(f"{machine['threads']} thread{'s' if machine['threads'] != 1 else ''}")
    gpus = machine.get("gpus")
    if isinstance(gpus, list) and gpus:
        counts = Counter(map(str, gpus))
        parts.append(" + ".join(f"{count}x {name}" for name, count in counts.items()))
        for key, label in (("cuda", "CUDA"), ("cudnn", "cuDNN"), ("gpu_driver", "driver")):
            if machine.get(key) is not None:
                parts.append(f"{label} {machine[key]}")
    return ", ".join(parts)


def machines_markdown(runs: Sequence[Run]) -> str:
    """The leaderboard's "Machines" section: each distinct machine (by :func:`fingerprint`) with its
    line and how many runs came from it, runs without a machine section counted apart. "" when no
    run records its machine (so tables of older records stay as they were)."""
    recorded = [run for run in runs if run.machine]
    if not recorded:
        return ""
    counts: Counter[str] = Counter()
    lines_of: dict[str, str] = {}
    for run in recorded:
        key = fingerprint(run.machine)
        counts[key] += 1
        lines_of.setdefault(key, describe(run.machine))
    lines = [
        "",
        "## Machines",
        "",
        "float32 results differ across CPUs and libraries (the quickstart's SGD runs gave test metrics up to 28 % apart with "
        "AVX-512 and with AVX2 alone): compare runs of one machine.",
        "",
        "| fingerprint | machine | runs |",
        "|---|---|---|",
    ]
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))  # the most runs first
    lines += [f"| `{key}` | {markdown_text(lines_of[key])} | {count} |" for key, count in ordered]
    missing = len(runs) - len(recorded)
    if missing:
        lines.append(f"| - | {NOT_RECORDED} | {missing} |")
    return "\n".join(lines) + "\n"
