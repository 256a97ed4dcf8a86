"""Seconds per training step of every method config relative to EW, measured in one run.

    python -m bench.perf_methods [--steps 20] [--config configs/quickstart.yaml] [--out FILE]

Each method trains ``--steps`` steps of the quickstart model through the real pipeline
(LightningCLI, the module's training step, the StepCost callback); the first steps are left
out as warm-up and the median is reported. Methods run one after another in the same process
after a discarded warm-up run; EW is measured first and last, ratios use the mean of the two,
and their difference is printed as the noise floor of the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

from bench.callbacks import StepCost
from bench.cli import MtlbenchCLI

REPO = Path(__file__).resolve().parents[1]


def seconds_per_step(config: Path, method: Path, steps: int, warmup: int, root: str) -> float:
    cli = MtlbenchCLI(
        args=[
            "--config",
            str(config),
            f"--model.method={method}",
            f"--trainer.limit_train_batches={steps + warmup}",
            "--trainer.limit_val_batches=0",
            "--trainer.max_epochs=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks=[]",
            "--trainer.enable_checkpointing=false",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={root}",
        ],
        run=False,
    )
    cost = next(cb for cb in cli.trainer.callbacks if isinstance(cb, StepCost))
    cost.warmup_steps = warmup
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cost.record_fields()["cost"]["seconds_per_step"]["median"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.yaml")
    parser.add_argument("--methods", type=Path, default=REPO / "configs" / "method")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    methods = sorted(p for p in args.methods.glob("*.yaml") if p.stem != "ew")
    ew = args.methods / "ew.yaml"
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as root:
        seconds_per_step(args.config, ew, args.steps, args.warmup, root)  # process warm-up, discarded
        first_ew = seconds_per_step(args.config, ew, args.steps, args.warmup, root)
        for method in methods:
            results[method.stem] = seconds_per_step(args.config, method, args.steps, args.warmup, root)
            print(f"{method.stem:14s} {results[method.stem]:.4f} s/step", flush=True)
        last_ew = seconds_per_step(args.config, ew, args.steps, args.warmup, root)
    results["ew"] = (first_ew + last_ew) / 2
    print(f"\nEW measured first {first_ew:.4f} and last {last_ew:.4f} s/step (noise floor {abs(first_ew - last_ew) / results['ew']:.0%})")
    print(f"{'method':14s} {'s/step':>8s} {'x EW':>6s}")
    for name, value in sorted(results.items(), key=lambda item: item[1]):
        print(f"{name:14s} {value:8.4f} {value / results['ew']:6.2f}")
    if args.out:
        relative = {name: value / results["ew"] for name, value in results.items()}
        args.out.write_text(json.dumps({"seconds_per_step": results, "relative_to_ew": relative}, indent=2))


if __name__ == "__main__":
    main()
