"""Training-time overhead of the gradient probe at its default cadence, measured in one run.

    mtlbench perf probe [--steps 400] [--repeats 2] [--method configs/method/ew.yaml]

Trains the quickstart model for ``--steps`` steps with the GradientProbe at its default
cadence, timing every step from the first callback's start hook to the last callback's end
hook (so the probe's own work is inside): overhead = the probe steps' time above the median
ordinary step, over the total. On a shared, noisy machine this within-run figure is far more
precise than comparing two whole fits, which the script also does (``--repeats`` alternations,
medians) as a cross-check. Target: at most 3 % overhead.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl

from mtlbench.bench.run.callbacks import GradientProbe
from mtlbench.bench.run.launch import MtlbenchCLI

REPO = Path(__file__).resolve().parents[3]


class _StepClock:
    """A pair of callbacks bracketing every other callback's batch hooks."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._start = 0.0
        clock = self

        class Start(pl.Callback):
            def on_train_batch_start(self, *args) -> None:
                clock._start = time.perf_counter()

        class End(pl.Callback):
            def on_train_batch_end(self, *args) -> None:
                clock.durations.append(time.perf_counter() - clock._start)

        self.start, self.end = Start(), End()


def within_run_overhead(config: Path, method: Path, steps: int, root: str) -> tuple[float, int, float]:
    """(overhead, probes, seconds per probe above an ordinary step) from one run."""
    cli = _cli(config, method, steps, "[]", root)
    probe, clock = GradientProbe(), _StepClock()
    cli.trainer.callbacks[:] = [clock.start, *cli.trainer.callbacks, probe, clock.end]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    probed = [d for step, d in enumerate(clock.durations) if step % probe.every_n_steps == 0]
    ordinary = statistics.median(d for step, d in enumerate(clock.durations) if step % probe.every_n_steps)
    extra = sum(d - ordinary for d in probed)
    return extra / sum(clock.durations), len(probed), extra / len(probed)


def _cli(config: Path, method: Path, steps: int, callbacks: str, root: str) -> MtlbenchCLI:
    return MtlbenchCLI(
        args=[
            "--config",
            str(config),
            f"--model.method={method}",
            f"--trainer.callbacks={callbacks}",
            f"--trainer.max_steps={steps}",
            "--trainer.max_epochs=-1",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_checkpointing=false",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={root}",
        ],
        run=False,
    )


def fit_seconds(config: Path, method: Path, steps: int, probe: bool, root: str) -> float:
    callbacks = '[{"class_path": "mtlbench.bench.run.callbacks.GradientProbe"}]' if probe else "[]"
    cli = _cli(config, method, steps, callbacks, root)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mtlbench perf probe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.yaml")
    parser.add_argument("--method", type=Path, default=REPO / "configs" / "method" / "ew.yaml")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as root:
        fit_seconds(args.config, args.method, 20, False, root)  # warm-up, discarded
        overhead, probes, per_probe = within_run_overhead(args.config, args.method, args.steps, root)
        print(f"within one run: {probes} probes, {per_probe:.3f} s each above an ordinary step: overhead {overhead:+.1%}", flush=True)
        for _ in range(args.repeats):
            for probe in (False, True):
                times[probe].append(fit_seconds(args.config, args.method, args.steps, probe, root))
                print(f"{'with' if probe else 'without'} probe: {times[probe][-1]:.1f} s", flush=True)
    without, with_probe = statistics.median(times[False]), statistics.median(times[True])
    overhead = with_probe / without - 1
    print(f"whole fits ({args.method.stem}, {args.steps} steps): {without:.1f} s without, {with_probe:.1f} s with: {overhead:+.1%}")


if __name__ == "__main__":
    main()
