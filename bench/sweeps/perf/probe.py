"""Training-time overhead of an observing callback at its default cadence, measured in one run.

    mtlbench perf probe [--steps 400] [--repeats 2] [--method configs/method/ew.yaml]
    mtlbench perf affinity [...]

Trains the quickstart model for ``--steps`` steps with the GradientProbe (``probe``) or the
TaskAffinity (``affinity``) at its default cadence, timing every step from the first callback's
start hook to the last callback's end hook (so the callback's own work is inside): overhead =
the observed steps' time above the median ordinary step, over the total. On a shared, noisy
machine this within-run figure is far more precise than comparing two whole fits, which the
script also does (``--repeats`` alternations, medians) as a cross-check. Target: at most 3 %
overhead for the probe, 10 % for the affinity (T + 1 forward passes besides the gradients).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl

from mtlbench.bench.run.callbacks import GradientProbe, TaskAffinity
from mtlbench.bench.run.launch import MtlbenchCLI

REPO = Path(__file__).resolve().parents[3]
OBSERVERS = {"probe": GradientProbe, "affinity": TaskAffinity}


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


def within_run_overhead(config: Path, method: Path, steps: int, root: str, observer: str = "probe") -> tuple[float, int, float]:
    """(overhead, observed steps, seconds per observation above an ordinary step) from one run."""
    cli = _cli(config, method, steps, "[]", root)
    probe, clock = OBSERVERS[observer](), _StepClock()
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


def fit_seconds(config: Path, method: Path, steps: int, probe: bool, root: str, observer: str = "probe") -> float:
    callbacks = f'[{{"class_path": "mtlbench.bench.run.callbacks.{OBSERVERS[observer].__name__}"}}]' if probe else "[]"
    cli = _cli(config, method, steps, callbacks, root)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return time.perf_counter() - start


def main(argv: list[str] | None = None, observer: str = "probe") -> None:
    parser = argparse.ArgumentParser(prog=f"mtlbench perf {observer}", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.yaml")
    parser.add_argument("--method", type=Path, default=REPO / "configs" / "method" / "ew.yaml")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as root:
        fit_seconds(args.config, args.method, 20, False, root)  # warm-up, discarded
        overhead, probes, per_probe = within_run_overhead(args.config, args.method, args.steps, root, observer)
        every = OBSERVERS[observer]().every_n_steps
        print(
            f"within one run ({observer} every {every} steps): {probes} observed steps, {per_probe:.3f} s each above an ordinary "
            f"step: overhead {overhead:+.1%}, a run with it takes {1 + overhead:.3f}x the time without",
            flush=True,
        )
        for _ in range(args.repeats):
            for probe in (False, True):
                times[probe].append(fit_seconds(args.config, args.method, args.steps, probe, root, observer))
                print(f"{'with' if probe else 'without'} {observer}: {times[probe][-1]:.1f} s", flush=True)
    without, with_probe = statistics.median(times[False]), statistics.median(times[True])
    ratio = with_probe / without
    print(f"whole fits ({args.method.stem}, {args.steps} steps): {without:.1f} s without, {with_probe:.1f} s with: {ratio:.3f}x")


if __name__ == "__main__":
    main()
