"""``mtlbench perf``: seconds per training step and peak memory of methods, in one process.

    mtlbench perf --config configs/perf/resnet18_cpu.yaml [--rounds 10] [--out FILE] [--readme docs/performance.md]

Every variant (:mod:`mtlbench.bench.sweeps.perf.variants`) gets its own copy of the same model and the same
batch. After ``warmup_rounds`` rounds (allocator, cudnn autotuning, compilation), the variants
take turns for ``rounds`` rounds, one step each per turn (``k`` steps for ``@k``, so that every
timing covers one exact step and its ``k - 1`` cheap ones), the order rotating each round: noise
on a shared machine hits every variant alike, and ratios from the medians are taken within the
run. Memory is measured afterwards, one step per variant (:mod:`mtlbench.bench.sweeps.perf.memory`).
Each round prints its times as it ends, and ``--out`` / ``--table`` are rewritten after it, so a
run cut short leaves the rounds it measured; ``--deadline_s`` ends the timing after the round
that passes it (variants not warmed up by then are left out, named). A variant whose step fails
(out of memory, a compiler error) is reported with its error and dropped from later rounds; the
others go on.

The record (``--out``, schema ``mtlbench.perf/1``) is what ``mtlbench leaderboard --perf``
joins for its cost columns; ``--table`` writes the markdown table, ``--readme`` replaces the
block of a Markdown file (docs/performance.md) between ``<!-- perf:NAME -->`` and ``<!-- /perf:NAME -->`` (NAME: the config's
``name``) with it, so the table there is the command's own output.
"""

from __future__ import annotations

import datetime
import math
import platform
import re
import shlex
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from mtlbench.bench.run.jacobian import jacobian_bytes
from mtlbench.bench.sweeps.perf.memory import step_peak_mb
from mtlbench.bench.sweeps.perf.variants import Variant, build_variant, instantiate_config, parse_variant
from mtlbench.leaderboards.atomic_write import write_json_atomic, write_text_atomic

REPO = Path(__file__).resolve().parents[3]
SCHEMA = "mtlbench.perf/1"
README_BYTES = 4 * 2**20  # the most of a --readme that is read


def build_parser():
    from jsonargparse import ActionConfigFile, ArgumentParser
    from jsonargparse.typing import NonNegativeInt, Path_fc, Path_fr, PositiveInt, path_type

    parser = ArgumentParser(prog="mtlbench perf", description=__doc__.splitlines()[0], exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a perf config (configs/perf/*.yaml)")
    parser.add_argument("--name", type=str, default="perf", help="the table's name (its block in docs/performance.md, file names)")
    parser.add_argument("--net", type=Path_fr, required=True, help="model config file (as --model.net of fit), relative to the config")
    parser.add_argument("--tasks", type=list[str], default=["segmentation", "depth", "normal"])
    parser.add_argument("--height", type=PositiveInt, default=96)
    parser.add_argument("--width", type=PositiveInt, default=128)
    parser.add_argument("--batch_size", type=PositiveInt, default=16)
    parser.add_argument("--variants", type=list[str], required=True, help="e.g. [floor, naive, ew, upgrad, upgrad@8, ew+bf16]")
    parser.add_argument("--rounds", type=PositiveInt, default=10)
    parser.add_argument("--warmup_rounds", type=NonNegativeInt, default=2)
    parser.add_argument("--deadline_s", type=PositiveInt | None, default=None, help="stop timing after the round that passes it")
    parser.add_argument("--precision", type=Literal["32", "bf16"], default="32", help="bf16: every variant under bf16 autocast")
    parser.add_argument("--compile_backend", type=str | None, default=None, help="+compile's torch.compile backend (default: inductor)")
    directory = path_type("dr", docstring="path to a directory that exists and is readable")
    parser.add_argument("--method_dir", type=directory, default=directory(str(REPO / "configs" / "method")))
    parser.add_argument("--device", type=Literal["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available")
    parser.add_argument("--threads", type=PositiveInt | None, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--memory", type=bool, default=True, help="measure each variant's peak memory")
    # files named in a config are relative to it, as the model config is
    parser.add_argument("--out", type=Path_fc | None, default=None, help="write the record (JSON) here")
    parser.add_argument("--table", type=Path_fc | None, default=None, help="write the markdown table here")
    parser.add_argument("--readme", type=Path_fr | None, default=None, help="replace this file's perf:NAME block with the table")
    return parser


def load_net(config_path: Path, tasks: Sequence) -> torch.nn.Module:
    """The model a ``--model.net`` config describes, built for ``tasks``."""
    from mtlbench.bench.run.module import NetFactory

    return instantiate_config(config_path, NetFactory)(tasks)


def synthetic_batch(tasks: Sequence[str], batch_size: int, height: int, width: int):
    """One batch of the embedded synthetic scenes at the requested size (rendered once, cached)."""
    from mtlbench.datamodules import SyntheticScenesDataModule

    datamodule = SyntheticScenesDataModule(
        tasks=list(tasks), num_train=batch_size, num_val=1, num_test=1, height=height, width=width, batch_size=batch_size
    )
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule.tasks, next(iter(datamodule.train_dataloader()))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def error_line(error: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, at most ``limit`` characters of it: an error kept in a record."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:limit]}"


def _step_failed(variant: Variant, error: Exception, log: Callable[[str], None]) -> None:
    variant.error = error_line(error)
    log(f"  {variant.spec.label}: failed, left out from now on ({variant.error})")


def time_interleaved(
    variants: Sequence[Variant],
    rounds: int,
    warmup_rounds: int,
    device: torch.device,
    log: Callable[[str], None],
    after_round: Callable[[int], None] = lambda _: None,
    deadline_s: float | None = None,
) -> int:
    """Fill every variant's ``seconds`` (per step), taking turns, the order rotating each round;
    returns the number of rounds timed (fewer than ``rounds`` once ``deadline_s`` has passed)."""
    started_all = time.perf_counter()
    for variant in variants:
        if deadline_s is not None and time.perf_counter() - started_all > deadline_s:  # (a long compilation)
            variant.error = f"not warmed up within the deadline of {deadline_s:.0f} s"
            log(f"  {variant.spec.label}: {variant.error}")
            continue
        started = time.perf_counter()
        try:
            variant.run(warmup_rounds * variant.spec.refresh_every)
            _sync(device)
        except Exception as error:  # one variant's failure (OOM, compiler) must not lose the others' figures
            _step_failed(variant, error, log)
            continue
        log(f"  warm-up {variant.spec.label}: {time.perf_counter() - started:.1f} s")
    for round_index in range(rounds):
        live = [variant for variant in variants if variant.error is None]
        shift = round_index % max(len(live), 1)
        for variant in [*live[shift:], *live[:shift]]:
            every = variant.spec.refresh_every
            try:
                _sync(device)
                started = time.perf_counter()
                variant.run(every)
                _sync(device)
            except Exception as error:
                _step_failed(variant, error, log)
                continue
            variant.seconds.append((time.perf_counter() - started) / every)
        times = ", ".join(f"{v.spec.label} {v.seconds[-1]:.4f}" for v in live if v.error is None)
        log(f"  round {round_index + 1}/{rounds} (s/step): {times}")
        after_round(round_index + 1)
        if deadline_s is not None and time.perf_counter() - started_all > deadline_s:
            log(f"  deadline of {deadline_s:.0f} s passed: {round_index + 1} of {rounds} rounds timed")
            return round_index + 1
    return rounds


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def summarise(variants: Sequence[Variant], batch_size: int) -> dict[str, dict[str, Any]]:
    medians = {v.spec.label: statistics.median(v.seconds) for v in variants if v.seconds and v.error is None}
    ew, floor = medians.get("ew"), medians.get("floor")
    rows = {}
    for variant in variants:
        median = medians.get(variant.spec.label)
        rows[variant.spec.label] = {
            "method": variant.method_name,
            "reference": variant.spec.is_reference,
            "space": "features" if variant.spec.features else "parameters",
            "refresh_every": variant.spec.refresh_every,
            "options": list(variant.spec.options),
            "task_gradients": variant.task_gradients,
            "seconds_per_step": median,
            "seconds": variant.seconds,
            "x_ew": median / ew if ew and median else None,
            "x_floor": median / floor if floor and median else None,
            "images_per_second": batch_size / median if median else None,
            "peak_memory_mb": None,
            "error": variant.error,
        }
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(record: dict[str, Any]) -> str:
    """The perf table as markdown, with the date, the device and the command that made it."""
    model, size = record["model"], record["input"]
    lines = [
        f"{record['created'][:10]}, {record['device']}, torch {record['torch']}: `{record['command']}`",
        "",
        f"{model['backbone']} ({model['shared_parameters'] / 1e6:.1f} M shared parameters, {len(model['tasks'])} tasks, "
        f"Jacobian {model['jacobian_mb']:.0f} MB in fp32), batch {size['batch_size']} at {size['height']}x{size['width']}"
        f"{', bf16 autocast' if record.get('precision') == 'bf16' else ''}; median of {record['rounds']} interleaved rounds.",
        "",
        "| variant | method | s/step | x EW | x floor | images/s | peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in record["variants"].items():
        if row["seconds_per_step"] is None:
            lines.append(f"| {label} | {row['method']} | failed: {row.get('error') or 'no step timed'} | | | | |")
            continue
        lines.append(
            f"| {label} | {row['method']} | {row['seconds_per_step']:.3f} | {_fmt(row['x_ew'])} | {_fmt(row['x_floor'])} | "
            f"{row['images_per_second']:.3g} | {_fmt(row['peak_memory_mb'], 0)} |"
        )
    return "\n".join(lines) + "\n"


def readme_text(path: Path, command: str) -> str:
    """The text of a command's ``--readme``: a regular file of at most :data:`README_BYTES`, not
    a link (the file is replaced whole when its block is written); else one line naming it."""
    from mtlbench.leaderboards.untrusted import UntrustedFileError, read_text

    if path.is_symlink():
        what = f"{command}: --readme {path} is a symbolic link"
        raise ValueError(f"{what}; give the file it leads to (its block is written by replacing the file)")
    try:
        return read_text(path, limit=README_BYTES, what="--readme")
    except UntrustedFileError as error:
        raise ValueError(f"{command}: {error}") from None


def replace_block(text: str, name: str, block: str, path: str) -> str:
    """``text`` with the lines between ``<!-- perf:name -->`` and ``<!-- /perf:name -->`` replaced."""
    start, end = f"<!-- perf:{name} -->", f"<!-- /perf:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no '{start}' ... '{end}' block; add those two lines where the table goes")
    return pattern.sub(lambda _: f"{start}\n{block}{end}", text, count=1)


def main(argv: Sequence[str]) -> int:
    from jsonargparse import ArgumentError

    parser = build_parser()
    try:
        cfg = parser.parse_args(list(argv))
    except ArgumentError as error:
        raise ValueError(f"perf: {str(error).splitlines()[0]}") from None
    specs = [parse_variant(label) for label in cfg.variants]
    if len({spec.label for spec in specs}) != len(specs):
        raise ValueError("perf: a variant is listed twice; list each once")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("perf: --device cuda, but torch sees no GPU; use --device auto or cpu")
    device = torch.device(cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    readme = Path(cfg.readme.absolute) if cfg.readme else None
    if readme is not None:  # its block is checked now, not after a measurement of many minutes
        replace_block(readme_text(readme, "perf"), cfg.name, "", str(cfg.readme))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net_path = Path(cfg.net.absolute)
    tasks, (images, targets) = synthetic_batch(cfg.tasks, cfg.batch_size, cfg.height, cfg.width)
    batch = (images.to(device), {name: value.to(device) for name, value in targets.items()})
    torch.manual_seed(0)
    base_net = load_net(net_path, tasks)
    method_dir = Path(cfg.method_dir.absolute)

    def log(line: str) -> None:
        print(line, flush=True)

    bf16 = cfg.precision == "bf16"
    variants = [build_variant(spec, base_net, tasks, batch, method_dir, device, bf16, cfg.compile_backend) for spec in specs]
    log(f"mtlbench perf: {len(variants)} variants on {_device_name(device)}")
    shared = sum(p.numel() for p in base_net.shared_parameters())
    net_config = yaml.safe_load(net_path.read_text()) or {}
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "name": cfg.name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "mtlbench perf " + shlex.join(argv),
        "device": _device_name(device),
        "torch": torch.__version__,
        "model": {
            "config": str(cfg.net.relative),
            "backbone": str((net_config.get("init_args") or {}).get("backbone", "unknown")),
            "shared_parameters": shared,
            "head_parameters": sum(p.numel() for p in base_net.parameters()) - shared,
            "tasks": [task.name for task in tasks],
            "jacobian_mb": jacobian_bytes(len(tasks), shared) / 2**20,
        },
        "input": {"batch_size": cfg.batch_size, "height": cfg.height, "width": cfg.width},
        "precision": cfg.precision,
        "compile_backend": cfg.compile_backend or "inductor",
        "rounds": 0,
        "warmup_rounds": cfg.warmup_rounds,
        "variants": {},
    }

    peaks: dict[str, float] = {}

    def write(rounds_done: int) -> str:
        """The record and table of the rounds timed so far (a run cut short keeps them)."""
        rows = summarise(variants, cfg.batch_size)
        for label, peak in peaks.items():
            rows[label]["peak_memory_mb"] = peak
        record.update(rounds=rounds_done, variants=rows)
        table = markdown_table(record)
        if cfg.out:
            write_json_atomic(cfg.out.absolute, record)
        if cfg.table:
            write_text_atomic(cfg.table.absolute, table)
        return table

    rounds_done = time_interleaved(variants, cfg.rounds, cfg.warmup_rounds, device, log, write, cfg.deadline_s)
    if cfg.memory:
        for variant in (variant for variant in variants if variant.error is None):
            try:
                peaks[variant.spec.label] = step_peak_mb(lambda v=variant: v.run(1), variant.module, variant.optimizer, device)
                log(f"  {variant.spec.label}: peak memory {peaks[variant.spec.label]:.0f} MB")
            except RuntimeError as error:  # the tracker cannot follow every backend (compiled graphs); OOM
                log(f"  {variant.spec.label}: peak memory not measured ({str(error).splitlines()[0][:120]})")
    table = write(rounds_done)
    print("\n" + table)
    if readme is not None:
        write_text_atomic(readme, replace_block(readme_text(readme, "perf"), cfg.name, table, str(cfg.readme)))
    return 0
