"""``mtlbench gpu-check``: what a GPU must show, measured in one go and written as files.

    mtlbench gpu-check [--device auto|cuda|cpu] [--out DIR] [--readme README.md]

A GPU is lent now and then, for minutes: this command is prepared so that it runs in one go, in
at most ``--minutes`` (8) on one GPU, and leaves its figures in the repository's formats. Each
step is held to what is left of that time, less what the later steps are kept. Four steps,
each printing what it measured as it ends (a run cut short keeps what was printed and written):

1. ``perf``: ``mtlbench perf`` on the standard NYUv2 model (ResNet-50 at output stride 8 with the
   DeepLab ASPP, 288x384, batch 8) under bf16 autocast: EW, the floor, the naive loop, FAMO,
   GradNorm, the exact aggregators (MGDA, UPGrad, PCGrad, CAGrad, Nash-MTL) with their task
   gradients batched (vmap) and looped, their ``@8`` refresh, their feature-space variants, and
   ``channels_last`` and ``compile`` on EW and UPGrad: seconds per step, images per second and
   peak memory -> ``perf.json`` (``mtlbench.perf/1``) and ``perf.md``;
2. ``fit``: a short bf16 fit and test of UPGrad through the DDP code path (world size 1), with
   SyncBatchNorm, on a NYUv2 release in the exact layout that the check writes itself -> a run
   record ``runs/fit-upgrad-ddp/version_0/results.json`` that must say ``complete``;
3. ``determinism``: two identical short runs, with torch's default kernels and with
   ``--trainer.deterministic true`` (``warn`` where a kernel has no deterministic version), and
   what differs between the two of each pair: parameters, validation and test metrics;
4. ``leaderboard``: the records and the perf record read back by ``mtlbench leaderboard --perf``.

``--device cpu`` runs the same steps at a tiny size (the tiny ResNet, small images, two
rounds; ``+compile`` with the ``aot_eager`` backend, which traces without generating code) so
that the command is known to work before a GPU is lent; the default tests run it. On CPUs
SyncBatchNorm has no implementation, so the fit normalises with BatchNorm there.
``summary.md`` (the tables and findings; ``--readme`` puts it in the file's
``<!-- perf:gpu_check -->`` block) and ``gpu_check.json`` (every step's status, time and
figures) are written after each step. ``--publish DIR --readme README.md`` measures nothing: it
puts the summary of a check made elsewhere (a GPU node whose files came back as DIR) in the block.
The summary is always generated from the numbers and fields of ``gpu_check.json`` and
``perf.json``, checked and escaped for Markdown; no text of DIR is copied into the README.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
EXACT = ("mgda", "upgrad", "pcgrad", "cagrad", "nash_mtl")
SCHEMA = "mtlbench.gpu_check/1"
PERF_SCHEMA = "mtlbench.perf/1"
README_BLOCK = "gpu_check"
STEPS = ("perf", "fit", "determinism", "leaderboard")
STATUSES = ("done", "failed")
MAX_VARIANTS = 256
CODE_CHARACTERS = frozenset(chr(code) for code in range(32, 127)) - set("`<>")  # what a command in a code span keeps


@dataclass(frozen=True)
class CheckSize:
    """How large each step is: the NYUv2-size model on a GPU, a tiny one on a CPU."""

    net: str  # model config under configs/model
    height: int
    width: int
    batch_size: int
    rounds: int
    warmup_rounds: int
    fit_reserve_s: int  # what the fit, the probe and the leaderboard are kept: the perf step stops timing before
    probe_reserve_s: int  # what the determinism probe and the leaderboard are kept: the fit is stopped before
    fit_images: tuple[int, int, int]  # NYUv2 release: train (incl. validation), validation, test
    fit_epochs: int
    probe_images: tuple[int, int, int]  # synthetic scenes of the determinism probe: train, val, test
    probe_size: tuple[int, int]
    probe_epochs: int


FULL = CheckSize("resnet50_deeplab.yaml", 288, 384, 8, 10, 2, 200, 110, (40, 8, 8), 2, (160, 32, 32), (96, 128), 2)
TINY = CheckSize("tiny.yaml", 32, 48, 4, 2, 1, 60, 40, (12, 4, 4), 1, (24, 8, 8), (48, 64), 1)


def perf_variants(device_type: str) -> list[str]:
    """The perf step's variants. An aggregator without option computes its task gradients the
    device's default way (batched on GPUs, looped on CPUs), so the leaderboard's cost columns
    can join it; ``+batched`` / ``+sequential`` adds the other way."""
    other = "sequential" if device_type == "cuda" else "batched"
    exact = [name for method in EXACT for name in (method, f"{method}+{other}")]
    return [
        *("floor", "naive", "feature_floor", "ew", "famo", "gradnorm"),
        *exact,
        *(f"{method}@8" for method in EXACT),
        *(f"{method}:features" for method in EXACT),
        *("ew+channels_last", "upgrad+channels_last", "ew+compile", "upgrad+compile"),
    ]


class Check:
    """The steps' shared state: where files go, what each step found, the summary written after each."""

    def __init__(self, out: Path, device: str, size: CheckSize, readme: Path | None, command: str, minutes: float = 8) -> None:
        self.out, self.device, self.size, self.readme, self.command = out, device, size, readme, command
        self.ends = time.monotonic() + 60 * minutes  # every step is held to what is left of the check's minutes
        self.steps: dict[str, dict[str, Any]] = {}
        self.started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.scratch = Path(tempfile.mkdtemp(prefix="mtlbench-gpu-check-"))  # releases and checkpoints: never in OUT

    def seconds_left(self, reserve: float = 0) -> float:
        """What is left of the check's time after ``reserve`` seconds kept for the steps that follow."""
        return max(1.0, self.ends - time.monotonic() - reserve)

    def wait(self, run_id: str, process: subprocess.Popen, reserve: float) -> int:
        """The run's exit status; a run still going when only ``reserve`` seconds are left is stopped."""
        try:
            return process.wait(timeout=self.seconds_left(reserve))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise TimeoutError(f"{run_id} stopped: the check's time ran out (see logs/{run_id}.log)") from None

    def say(self, line: str) -> None:
        print(f"gpu-check: {line}", flush=True)

    def run_step(self, name: str, step: Callable[[], dict[str, Any]]) -> None:
        """Run one step; its failure is recorded and the next steps still run."""
        self.say(f"{name} ...")
        began = time.perf_counter()
        try:
            entry = {"status": "done", **step()}  # (a step may say it failed, keeping what it found)
        except Exception as error:  # a step that fails on a new machine must not lose the others
            from mtlbench.bench.sweeps.perf.steps import error_line

            entry = {"status": "failed", "error": error_line(error, limit=300)}
        entry["seconds"] = round(time.perf_counter() - began, 1)
        self.steps[name] = entry
        self.say(f"{name}: {entry['status']} in {entry['seconds']:.0f} s" + (f" ({entry['error']})" if "error" in entry else ""))
        self.write_summary()

    def fit(self, run_id: str, args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``mtlbench fit`` as its own process (its own CUDA context and cuBLAS set-up),
        its output in ``OUT/logs/<run_id>.log`` and its record in ``OUT/runs/<run_id>``."""
        csv = {"save_dir": str(self.out / "runs"), "name": run_id, "version": 0}
        logger = {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": csv}
        command = [
            sys.executable,
            "-m",
            "mtlbench.bench.run.launch",
            "fit",
            *args,
            f"--trainer.logger={json.dumps(logger)}",
            f"--trainer.default_root_dir={self.scratch / run_id}",
            "--trainer.enable_progress_bar=false",
        ]
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.out / "runs" / run_id, ignore_errors=True)
        with open(self.out / "logs" / f"{run_id}.log", "w") as log:  # the child keeps its own copy of the file
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def record(self, run_id: str) -> dict[str, Any]:
        path = self.out / "runs" / run_id / "version_0" / "results.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def log_tail(self, run_id: str) -> str:
        lines = (self.out / "logs" / f"{run_id}.log").read_text(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else "no output"

    def write_summary(self) -> None:
        from mtlbench.leaderboards.atomic_write import write_json_atomic, write_text_atomic

        record = {
            "schema": SCHEMA,
            "started": self.started,
            "device": self.device,
            "size": "full" if self.size is FULL else "tiny",
            "command": self.command,
            "steps": self.steps,
        }
        write_json_atomic(self.out / "gpu_check.json", record)
        text = folder_summary(self.out)  # what --publish makes of these files
        write_text_atomic(self.out / "summary.md", text)
        if self.readme is not None:
            from mtlbench.bench.sweeps.perf.steps import replace_block

            write_text_atomic(self.readme, replace_block(readme_text(self.readme), README_BLOCK, text, str(self.readme)))


def summary_markdown(steps: dict[str, dict[str, Any]], perf: dict[str, Any] | None) -> str:
    """The perf table and one paragraph per other step: what the README's GPU block shows, from
    the checked ``steps`` (:func:`checked_steps`) and perf record (:func:`checked_perf`)."""
    from mtlbench.bench.sweeps.perf.steps import markdown_table

    lines = [markdown_table(perf).rstrip(), ""] if perf is not None else []
    for name, entry in steps.items():
        if name == "perf" and entry["status"] == "done":
            continue
        if entry["status"] == "failed":
            lines.append(f"- {name}: failed after {entry['seconds']:.0f} s: {entry['error']}")
        else:
            lines.append(f"- {name} ({entry['seconds']:.0f} s): {entry['finding']}")
    return "\n".join(lines).rstrip() + "\n"


def folder_summary(folder: Path) -> str:
    """The summary of the check whose files are in ``folder``: its ``gpu_check.json`` and
    ``perf.json`` (when there is one) read as others' data (regular files inside ``folder``,
    bounded), checked, and rendered by :func:`summary_markdown`. One-line ValueError otherwise."""
    from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, load_json

    record = load_json(folder / "gpu_check.json", root=folder, limit=MAX_SPEC_BYTES, what="gpu-check record")
    perf_path = folder / "perf.json"
    perf = None
    if perf_path.exists() or perf_path.is_symlink():
        perf = checked_perf(load_json(perf_path, root=folder, limit=MAX_SPEC_BYTES, what="perf record"), perf_path)
    return summary_markdown(checked_steps(record, folder / "gpu_check.json"), perf)


def _text(value: Any, where: str) -> str:
    """A string of a record as Markdown text: characters that do not print (controls, NUL,
    direction overrides) shown as U+FFFD, then escaped (no HTML, link or table cell break)."""
    from mtlbench.leaderboards.escape import markdown_text

    if not isinstance(value, str):
        raise ValueError(f"{where} is not text")
    return markdown_text("".join(char if char.isprintable() else "\ufffd" for char in value))


def _named(text: str) -> str:
    """A name from a record, shown in a message on one line."""
    return text if text.isprintable() and len(text) <= 40 else repr(text[:40])


def _number(value: Any, where: str, optional: bool = False) -> float | None:
    """A finite, non-negative number of a record (None where ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ValueError(f"{where} is not a finite non-negative number")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31:
        raise ValueError(f"{where} is not a count")
    return value


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not an object")
    return value


def checked_steps(record: Any, path: Path) -> dict[str, dict[str, Any]]:
    """The steps of a gpu-check record (``path``): each a known step, with a known status, a
    time and its finding or error as Markdown text."""
    if not isinstance(record, dict) or record.get("schema") != SCHEMA or not isinstance(record.get("steps"), dict):
        raise ValueError(f"{path} is not a gpu-check record (schema {SCHEMA})")
    steps = {}
    for name, entry in record["steps"].items():
        where = f"{path}: step {_named(name)}"
        entry = _table(entry, where)
        if name not in STEPS or entry.get("status") not in STATUSES:
            raise ValueError(f"{where} is not one of {', '.join(STEPS)} with a status {' or '.join(STATUSES)}")
        said = "error" if entry["status"] == "failed" else "finding"
        text = _text(entry.get(said, "done" if said == "finding" else None), f"{where}'s {said}")
        steps[name] = {"status": entry["status"], "seconds": _number(entry.get("seconds"), f"{where}'s seconds"), said: text}
    return steps


def checked_perf(record: Any, path: Path) -> dict[str, Any]:
    """The fields of a perf record (``path``) that its Markdown table shows, checked: numbers
    finite, texts escaped, the command kept to characters a code span shows as written."""
    record = _table(record, str(path))
    if record.get("schema") != PERF_SCHEMA:
        raise ValueError(f"{path} is not a perf record (schema {PERF_SCHEMA})")
    created, command = record.get("created"), record.get("command")
    if not isinstance(created, str) or not re.fullmatch(r"\d{4}-\d\d-\d\d", created[:10]):
        raise ValueError(f"{path}: created is not a date")
    if not isinstance(command, str):
        raise ValueError(f"{path}: command is not text")
    model, size, variants = (_table(record.get(key), f"{path}: {key}") for key in ("model", "input", "variants"))
    tasks = model.get("tasks")
    if not isinstance(tasks, list) or len(tasks) > MAX_VARIANTS:
        raise ValueError(f"{path}: model.tasks is not a list of at most {MAX_VARIANTS} tasks")
    if len(variants) > MAX_VARIANTS:
        raise ValueError(f"{path} has {len(variants)} variants, more than {MAX_VARIANTS}")
    return {
        "created": created[:10],
        "device": _text(record.get("device"), f"{path}: device"),
        "torch": _text(record.get("torch"), f"{path}: torch"),
        "command": "".join(char if char in CODE_CHARACTERS else "?" for char in command),
        "model": {
            "backbone": _text(model.get("backbone"), f"{path}: model.backbone"),
            "shared_parameters": _number(model.get("shared_parameters"), f"{path}: model.shared_parameters"),
            "tasks": [_text(task, f"{path}: model.tasks") for task in tasks],
            "jacobian_mb": _number(model.get("jacobian_mb"), f"{path}: model.jacobian_mb"),
        },
        "input": {key: _count(size.get(key), f"{path}: input.{key}") for key in ("batch_size", "height", "width")},
        "precision": "bf16" if record.get("precision") == "bf16" else "",
        "rounds": _count(record.get("rounds"), f"{path}: rounds"),
        "variants": {
            _text(label, f"{path}: a variant"): _checked_row(row, f"{path}: variant {_named(label)}") for label, row in variants.items()
        },
    }


def _checked_row(row: Any, where: str) -> dict[str, Any]:
    """A perf variant's row as its table line shows it: a timed row has its images per second."""
    row = _table(row, where)
    seconds = _number(row.get("seconds_per_step"), f"{where}: seconds_per_step", optional=True)
    error = row.get("error")
    return {
        "method": _text(row.get("method"), f"{where}: method"),
        "seconds_per_step": seconds,
        "x_ew": _number(row.get("x_ew"), f"{where}: x_ew", optional=True),
        "x_floor": _number(row.get("x_floor"), f"{where}: x_floor", optional=True),
        "images_per_second": _number(row.get("images_per_second"), f"{where}: images_per_second", optional=seconds is None),
        "peak_memory_mb": _number(row.get("peak_memory_mb"), f"{where}: peak_memory_mb", optional=True),
        "error": None if error is None else _text(error, f"{where}: error"),
    }


def readme_text(path: Path) -> str:
    """The text of ``--readme`` (:func:`mtlbench.bench.sweeps.perf.steps.readme_text`)."""
    from mtlbench.bench.sweeps.perf.steps import readme_text as read_readme

    return read_readme(path, "gpu-check")


# ------------------------------------------------------------------------------------------ steps
def perf_step(check: Check) -> dict[str, Any]:
    from mtlbench.bench.sweeps.perf.steps import main as perf_main

    size = check.size
    argv = [
        *("--name", "gpu_check", "--net", str(CONFIGS / "model" / size.net)),
        *("--height", str(size.height), "--width", str(size.width), "--batch_size", str(size.batch_size)),
        *("--rounds", str(size.rounds), "--warmup_rounds", str(size.warmup_rounds)),
        *("--deadline_s", str(int(check.seconds_left(size.fit_reserve_s)))),
        *("--precision", "bf16", "--device", check.device),
        *(("--compile_backend", "aot_eager") if check.device == "cpu" else ()),
        "--variants",
        "[" + ",".join(perf_variants(check.device)) + "]",
        *("--out", str(check.out / "perf.json"), "--table", str(check.out / "perf.md")),
    ]
    perf_main(argv)
    record = json.loads((check.out / "perf.json").read_text())
    rows = record["variants"]
    failed = sorted(label for label, row in rows.items() if row.get("error"))
    ew = rows.get("ew", {})
    ratios = ", ".join(f"{label} {rows[label]['x_floor']:.2f}" for label in EXACT if (rows.get(label) or {}).get("x_floor"))
    finding = f"EW {ew.get('images_per_second') or 0:.1f} images/s; exact methods x floor: {ratios or '-'}"
    finding += f"; not measured: {', '.join(failed)} (perf.md says why)" if failed else ""
    return {"finding": finding, "rounds": record["rounds"], "failed_variants": failed}


def fit_step(check: Check) -> dict[str, Any]:
    from mtlbench.datamodules.fake_release import write_release

    size = check.size
    train, val, test = size.fit_images
    root = write_release(check.scratch / "nyuv2", "nyuv2", num_train=train, num_test=test, height=size.height, width=size.width)
    gpu = check.device == "cuda"
    run_id = "fit-upgrad-ddp"
    args = [
        *("--config", str(CONFIGS / "nyuv2" / "mtl.yaml"), f"--model.net={CONFIGS / 'model' / size.net}"),
        f"--model.net.init_args.norm={'sync_batch' if gpu else 'batch'}",
        f"--model.method={CONFIGS / 'method' / 'upgrad.yaml'}",
        *(f"--data.init_args.{key}={value}" for key, value in {"root": root, "num_val": val, "batch_size": size.batch_size}.items()),
        *("--data.init_args.num_workers=2", "--trainer.strategy=ddp", "--trainer.devices=1", "--trainer.precision=bf16-mixed"),
        f"--trainer.accelerator={'gpu' if gpu else 'cpu'}",
        f"--trainer.max_epochs={size.fit_epochs}",
    ]
    code = check.wait(run_id, check.fit(run_id, args), reserve=size.probe_reserve_s)
    record = check.record(run_id)
    shutil.rmtree(check.out / "runs" / run_id / "version_0" / "checkpoints", ignore_errors=True)
    if code != 0 or record.get("status") != "complete":
        raise RuntimeError(f"{run_id} exited with {code}, record status {record.get('status')!r}: {check.log_tail(run_id)}")
    test = record["metrics"]["test"]
    shown = "; ".join(f"{task} " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()) for task, metrics in test.items())
    trainer = record["trainer"]
    norm = "SyncBatchNorm" if gpu else "BatchNorm (SyncBatchNorm has no CPU path)"
    finding = f"UPGrad, {trainer['precision']}, DDP world size {trainer['world_size']}, {norm}: record complete; test {shown}"
    return {"finding": finding, "record": str(Path("runs") / run_id / "version_0" / "results.json")}


def _state_tensors(run_dir: Path) -> dict[str, Any]:
    """Every tensor of the run's last checkpoint's state (parameters, buffers, method state), by a flat name."""
    import torch

    from mtlbench.bench.run.checkpoints import check_checkpoint

    checkpoint = run_dir / "version_0" / "checkpoints" / "last.ckpt"
    check_checkpoint(checkpoint)  # our own file, still checked and read as weights only
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    flat, todo = {}, list(state.items())
    while todo:
        name, value = todo.pop()
        if isinstance(value, dict):
            todo += [(f"{name}.{key}", item) for key, item in value.items()]
        elif isinstance(value, torch.Tensor):
            flat[name] = value
    return flat


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    """Every validation and test metric of a record, by a flat name."""
    metrics = record.get("metrics") or {}
    flat = {}
    for entry in metrics.get("val") or []:
        for task, values in entry.get("tasks", {}).items():
            flat.update({f"val{entry['epoch']}/{task}/{name}": value for name, value in values.items()})
    for task, values in (metrics.get("test") or {}).items():
        flat.update({f"test/{task}/{name}": value for name, value in values.items()})
    return flat


def compare_pair(check: Check, first: str, second: str) -> str:
    """What differs between two runs that should be identical."""
    a, b = _state_tensors(check.out / "runs" / first), _state_tensors(check.out / "runs" / second)
    import torch

    differing = [name for name in a if not torch.equal(a[name], b[name])]
    largest = max((float((a[name].double() - b[name].double()).abs().max()) for name in differing), default=0.0)
    numbers_a, numbers_b = _numbers(check.record(first)), _numbers(check.record(second))
    metric_gap = max((abs(numbers_a[key] - numbers_b[key]) for key in numbers_a if key in numbers_b), default=0.0)
    if not differing and metric_gap == 0:
        return f"identical (all {len(a)} tensors of the state, all {len(numbers_a)} metrics)"
    return f"{len(differing)} of {len(a)} state tensors differ (by up to {largest:.2e}), metrics by up to {metric_gap:.2e}"


def determinism_step(check: Check) -> dict[str, Any]:
    size = check.size
    train, val, test = size.probe_images
    gpu = check.device == "cuda"
    data = {"num_train": train, "num_val": val, "num_test": test, "height": size.probe_size[0], "width": size.probe_size[1]}
    data |= {"batch_size": 16 if gpu else 8, "cache_dir": check.scratch / "synthetic"}
    base = [
        *("--config", str(CONFIGS / "quickstart.yaml"), f"--model.method={CONFIGS / 'method' / 'upgrad.yaml'}"),
        *(f"--data.init_args.{key}={value}" for key, value in data.items()),
        f"--trainer.max_epochs={size.probe_epochs}",
        *(("--trainer.accelerator=gpu", "--trainer.precision=bf16-mixed") if gpu else ()),
    ]
    from mtlbench.datamodules import SyntheticScenesDataModule

    release = {key: value for key, value in data.items() if key != "cache_dir"}
    SyntheticScenesDataModule(cache_dir=str(check.scratch / "synthetic"), **release).prepare_data()  # rendered once, not by both runs
    findings: dict[str, str] = {}
    for setting in ("default", "true", "warn"):
        if setting == "warn" and "failed" not in findings.get("true", ""):
            break  # warn only where 'true' refused a kernel without a deterministic version
        ids = [f"determinism-{setting}-{copy}" for copy in ("a", "b")]
        extra = [] if setting == "default" else [f"--trainer.deterministic={setting}"]
        # the pair runs side by side, one thread each on a CPU (the same in both, so their float order agrees)
        env = {} if gpu else {"OMP_NUM_THREADS": "1"}
        processes = [check.fit(run_id, [*base, *extra], env) for run_id in ids]
        try:
            codes = [check.wait(run_id, process, reserve=5) for run_id, process in zip(ids, processes, strict=True)]
        except TimeoutError as error:
            for process in processes:
                process.kill()
                process.wait()
            findings[setting] = str(error)
            check.say(f"determinism, deterministic={setting}: {error}")
            return {"status": "failed", "error": f"TimeoutError: {error}", "pairs": findings}
        try:
            if any(codes):
                failed = next(run_id for run_id, code in zip(ids, codes, strict=True) if code)
                findings[setting] = f"failed: {check.log_tail(failed)}"
            else:
                findings[setting] = compare_pair(check, *ids)
        finally:
            for run_id in ids:  # the records stay; the checkpoints were only for this comparison
                shutil.rmtree(check.out / "runs" / run_id / "version_0" / "checkpoints", ignore_errors=True)
        check.say(f"determinism, deterministic={setting}: {findings[setting]}")
    shown = "; ".join(f"deterministic={setting}: {text}" for setting, text in findings.items())
    return {"finding": f"two identical UPGrad runs: {shown}", "pairs": findings}


def leaderboard_step(check: Check) -> dict[str, Any]:
    from mtlbench.leaderboards.cli import main as leaderboard_main

    code = leaderboard_main([str(check.out / "runs"), "--perf", str(check.out / "perf.json"), "--out", str(check.out / "leaderboard")])
    if code != 0:
        raise RuntimeError(f"mtlbench leaderboard exited with {code}")
    boards = sorted(path.name for path in (check.out / "leaderboard").glob("*.md"))
    return {"finding": f"records and perf record read back: {', '.join(boards)}"}


def publish(folder: Path, readme: Path) -> None:
    """Put the summary of the check whose files are in ``folder`` in ``readme``'s block. The files
    may come from another machine: they are read as bounded data inside ``folder``, and the
    summary is generated from their records (:func:`folder_summary`); ``summary.md`` must be a
    file of the folder, but its text is not used."""
    from mtlbench.bench.sweeps.perf.steps import replace_block
    from mtlbench.leaderboards.atomic_write import write_text_atomic
    from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, read_text

    text = readme_text(readme)
    try:
        read_text(folder / "summary.md", root=folder, limit=MAX_SPEC_BYTES, what="gpu-check summary")
        summary = folder_summary(folder)
    except ValueError as error:  # (UntrustedFileError included)
        raise ValueError(f"gpu-check --publish: {error}; pass the folder gpu-check --out wrote") from None
    write_text_atomic(readme, replace_block(text, README_BLOCK, summary, str(readme)))


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench gpu-check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto", help="auto: cuda if torch sees a GPU")
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-check"), help="where the files go (default: runs/gpu-check)")
    parser.add_argument("--minutes", type=float, default=8.0, help="the most the check takes; each step is held to what is left")
    block = f"<!-- perf:{README_BLOCK} -->"
    parser.add_argument("--readme", type=Path, default=None, help=f"also write the summary into this file's {block} block")
    parser.add_argument("--publish", type=Path, default=None, help="measure nothing: put the summary in DIR into --readme's block")
    args = parser.parse_args(list(argv))
    if args.publish is not None:
        if args.readme is None:
            raise ValueError("gpu-check: --publish DIR needs --readme FILE (the file whose block takes the summary)")
        publish(args.publish, args.readme)
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("gpu-check: --device cuda, but torch sees no GPU; use --device auto or cpu")
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if args.readme is not None:  # its block is checked before minutes of measuring, not after
        from mtlbench.bench.sweeps.perf.steps import replace_block

        replace_block(readme_text(args.readme), README_BLOCK, "", str(args.readme))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "mtlbench gpu-check " + shlex.join(argv)
    if args.minutes <= 0:
        raise ValueError(f"gpu-check: --minutes must be positive, got {args.minutes}")
    check = Check(args.out.resolve(), device, FULL if device == "cuda" else TINY, args.readme, command, args.minutes)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    check.say(f"{name}, torch {torch.__version__}, files in {check.out}")
    try:
        check.run_step("perf", lambda: perf_step(check))
        check.run_step("fit", lambda: fit_step(check))
        check.run_step("determinism", lambda: determinism_step(check))
        check.run_step("leaderboard", lambda: leaderboard_step(check))
    finally:
        shutil.rmtree(check.scratch, ignore_errors=True)
    print(folder_summary(check.out))
    return 1 if any(entry["status"] == "failed" for entry in check.steps.values()) else 0
