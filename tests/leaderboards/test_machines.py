"""The machines a table's runs came from (leaderboards/machines.py) and the schema of a record's ``machine``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlbench.leaderboards.cli import render_leaderboard
from mtlbench.leaderboards.machines import FINGERPRINT_KEYS, NOT_RECORDED, describe, fingerprint, machines_markdown
from mtlbench.leaderboards.records import load_runs, parse_record
from mtlbench.leaderboards.schema import RecordError, validate_record
from tests.leaderboards.fixture_runs import write_fixture_runs

LEADERBOARDS = Path(__file__).resolve().parents[2] / "leaderboards"
# What bench/run/machine.py wrote on a CPU with AVX-512 (a cloud Xeon, torch 2.14.1 on 2 threads).
AVX512 = {
    "cpu": "Intel(R) Xeon(R) Processor",
    "cpu_flags": ["sse4_1", "sse4_2", "f16c", "fma", "avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16"],
    "cpu_capability": "AVX512",
    "blas": "MKL 2024.2",
    "lapack": "MKL 2024.2",
    "onednn": "oneDNN v3.12.0",
    "torch": "2.14.1+cu130",
    "threads": 2,
    "os": "Linux 6.18.44",
    "arch": "x86_64",
    "gpus": [],
    "cuda": None,
    "cudnn": None,
    "gpu_driver": None,
}


def _record(machine=None) -> dict:
    record = {
        "schema": "mtlbench.run/1",
        "status": "complete",
        "method": {"name": "EW"},
        "dataset": {"tasks": [{"name": "depth"}]},
        "metrics": {"test": {"depth": {"abs_err": 0.5}}},
    }
    if machine is not None:
        record["machine"] = machine
    return record


def test_the_fingerprint_is_short_stable_and_follows_what_changes_float_kernels():
    key = fingerprint(AVX512)
    assert len(key) == 12 and int(key, 16) >= 0 and fingerprint(dict(reversed(AVX512.items()))) == key
    no_avx512 = {**AVX512, "cpu_flags": [flag for flag in AVX512["cpu_flags"] if not flag.startswith("avx512")]}
    assert fingerprint(no_avx512) != key
    assert fingerprint({**AVX512, "cpu_capability": "AVX2"}) != key
    for changed in ({"threads": 16}, {"blas": "OpenBLAS"}, {"torch": "2.5.1"}, {"gpus": ["NVIDIA H100"], "cuda": "12.4", "cudnn": 90100}):
        assert fingerprint({**AVX512, **changed}) != key, changed
    for irrelevant in ({"os": "Linux 5.15"}, {"host": "node-17"}, {"gpu_driver": "550.54"}, {"cpu_flags_note": "x"}):
        assert fingerprint({**AVX512, **irrelevant}) == key, irrelevant
    assert fingerprint({**AVX512, "cpu_flags": sorted(AVX512["cpu_flags"])}) == key  # flags are a set
    assert set(FINGERPRINT_KEYS) >= {"cpu", "cpu_flags", "cpu_capability", "blas", "onednn", "torch", "threads", "gpus", "cuda", "cudnn"}


def test_describe_names_the_vector_width_libraries_and_threads():
    line = describe(AVX512)
    assert line == (
        "Intel(R) Xeon(R) Processor, AVX-512 (BF16, FP16, VNNI), cpu capability AVX512, BLAS MKL 2024.2, oneDNN v3.12.0, "
        "torch 2.14.1+cu130, 2 threads"
    )
    epyc = {**AVX512, "cpu": "AMD EPYC 7B13", "cpu_flags": ["fma", "avx", "avx2"], "cpu_capability": "AVX2", "blas": "OpenBLAS"}
    assert describe(epyc).startswith("AMD EPYC 7B13, AVX2 (no AVX-512), cpu capability AVX2, BLAS OpenBLAS, LAPACK MKL 2024.2")
    gpu = describe({**AVX512, "gpus": ["NVIDIA H100", "NVIDIA H100"], "cuda": "12.4", "cudnn": 90100, "gpu_driver": "550.54"})
    assert gpu.endswith("2x NVIDIA H100, CUDA 12.4, cuDNN 90100, driver 550.54")
    assert describe({}) == "unknown CPU, CPU flags not recorded"


def test_records_without_a_machine_stay_valid_and_read_as_empty():
    validate_record(_record())
    assert parse_record(_record(), Path("a")).machine == {}
    assert parse_record(_record(AVX512), Path("a")).machine == AVX512


@pytest.mark.parametrize(
    ("machine", "reason"),
    [
        ("Xeon", "machine must be an object"),
        ({"cpu": "x" * 5000}, "machine['cpu'] must be a name of 1 to 200 printable characters"),
        ({"cpu": "Xeon\n| evil |"}, "machine['cpu'] must be a name of 1 to 200 printable characters"),
        ({"cpu": {"nested": 1}}, "machine['cpu'] must be a name"),
        ({"cpu_flags": "avx2"}, "machine['cpu_flags'] must be a list of at most 64 names"),
        ({"cpu_flags": ["avx"] * 65}, "machine['cpu_flags'] must be a list of at most 64 names"),
        ({"cpu_flags": ["avx", 3]}, "a name in machine['cpu_flags'] must be a name"),
        ({"gpus": ["y" * 201]}, "a name in machine['gpus'] must be a name"),
        ({"threads": "2"}, "machine['threads'] must be an integer"),
        ({"threads": 0}, "machine['threads'] must be an integer"),
        ({"threads": True}, "machine['threads'] must be an integer"),
        ({"cudnn": 9.1}, "machine['cudnn'] must be a positive integer or null"),
        ({"speed": float("nan")}, "machine['speed'] must be finite"),
        ({"speed": 1e300}, "machine['speed'] must lie in"),
        ({f"k{index}": 1 for index in range(65)}, "machine must have at most 64 fields"),
    ],
)
def test_the_schema_refuses_a_malformed_machine_with_its_reason(machine, reason):
    with pytest.raises(RecordError, match=reason.replace("[", r"\[").replace("(", r"\(")):
        validate_record(_record(machine))


def test_the_machines_section_counts_runs_and_escapes_a_hostile_cpu_name():
    hostile = {**AVX512, "cpu": "<script>alert(1)</script> | [x](javascript:y) `code`"}
    runs = [parse_record(_record(machine), Path(f"r{index}")) for index, machine in enumerate([AVX512, AVX512, hostile, None])]
    text = machines_markdown(runs)
    assert text.startswith("\n## Machines\n")
    assert f"| `{fingerprint(AVX512)}` | {describe(AVX512)} | 2 |" in text
    assert f"| `{fingerprint(hostile)}` | &lt;script&gt;alert(1)&lt;/script&gt; \\| \\[x\\](javascript:y) \\`code\\`, AVX-512" in text
    assert "<script>" not in text and f"| - | {NOT_RECORDED} | 1 |" in text
    assert machines_markdown(runs[3:]) == ""  # no run records its machine: no section (older tables stay as they were)


def test_the_leaderboard_lists_the_machines_of_its_runs(tmp_path):
    root = write_fixture_runs(tmp_path / "runs")
    paths = sorted(root.rglob("results.json"))
    for path in paths[:5]:
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "machine": AVX512}))
    text = render_leaderboard(root, tmp_path / "out", png=False)
    assert f"| `{fingerprint(AVX512)}` | {describe(AVX512)} | 5 |" in text
    assert f"| - | {NOT_RECORDED} | {len(paths) - 5} |" in text
    assert (tmp_path / "out" / "leaderboard.md").read_text() == text


PUBLISHED = sorted({path.parent for path in LEADERBOARDS.glob("**/records")})


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda folder: str(folder.relative_to(LEADERBOARDS)))
def test_published_records_still_validate_and_list_their_machines_where_they_have_them(folder):
    runs, problems = load_runs(folder)
    assert runs and not [problem for problem in problems if "rejected" in problem]
    # records made before machine sections add none, so their leaderboard.md regenerates as it was
    assert (machines_markdown(runs) == "") == (not any(run.machine for run in runs))
