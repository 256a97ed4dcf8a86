"""What ``mtlbench perf`` measures: variant specs and the training steps they build.

A variant is written ``name[:features][@k][+option...]``:

- ``floor``, ``naive``, ``feature_floor``: the reference steps (:mod:`mtlbench.bench.sweeps.perf.references`);
- any other name: the method config ``<method_dir>/<name>.yaml``, trained by the project's
  own step (``MultiTaskModule.optimization_step``); ``:features`` aggregates in the space of
  the shared features, ``@k`` reuses the weights for ``k`` steps (``refresh_every``);
- options: ``bf16`` (autocast), ``channels_last``, ``compile`` (``torch.compile``), and
  ``batched`` / ``sequential`` (how the per-task gradients are computed; default by device).

Examples: ``ew``, ``upgrad``, ``upgrad@8``, ``mgda:features``, ``ew+bf16+channels_last``.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from mtlbench.bench.run.methods import GradientAggregator, LossWeighting
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.bench.sweeps.perf import references
from mtlbench.models import MultiTaskNet

REFERENCES = {"floor": references.floor_step, "naive": references.naive_step, "feature_floor": references.feature_floor_step}
OPTIONS = ("bf16", "channels_last", "compile", "batched", "sequential")
_SPEC = re.compile(r"^(?P<name>[a-z0-9_]+)(?P<features>:features)?(?:@(?P<every>[0-9]+))?(?P<options>(?:\+[a-z0-9_]+)*)$")


@dataclass(frozen=True)
class VariantSpec:
    label: str
    name: str
    features: bool = False
    refresh_every: int = 1
    options: tuple[str, ...] = ()

    @property
    def is_reference(self) -> bool:
        return self.name in REFERENCES


def parse_variant(label: str) -> VariantSpec:
    """A :class:`VariantSpec` from its label; ValueError naming the label and the grammar."""
    match = _SPEC.match(label)
    if match is None:
        raise ValueError(f"perf variant '{label}' is not of the form name[:features][@k][+option...], e.g. upgrad@8+bf16")
    options = tuple(part for part in match["options"].split("+") if part)
    unknown = [option for option in options if option not in OPTIONS]
    if unknown:
        raise ValueError(f"perf variant '{label}': unknown option {unknown[0]}; options are {', '.join(OPTIONS)}")
    if {"batched", "sequential"} <= set(options):
        raise ValueError(f"perf variant '{label}': +batched and +sequential exclude each other; keep one")
    spec = VariantSpec(label, match["name"], bool(match["features"]), int(match["every"] or 1), options)
    if spec.is_reference and (spec.features or spec.refresh_every != 1 or options):
        raise ValueError(f"perf variant '{label}': the reference steps take no space, refresh or options")
    if spec.refresh_every < 1:
        raise ValueError(f"perf variant '{label}': @k needs k >= 1")
    return spec


def instantiate_config(path: Path, kind: type | Any, init_args: dict[str, Any] | None = None) -> Any:
    """The object a ``class_path`` / ``init_args`` config file describes, built as the CLI builds
    it (``init_args`` overrides some); a missing or malformed file is a one-line ValueError."""
    from jsonargparse import ArgumentError, ArgumentParser

    if not path.is_file():
        raise ValueError(f"config {path} not found; name an existing file (configs/model/*.yaml, configs/method/*.yaml)")
    try:
        config = yaml.safe_load(path.read_text()) or {}
        if init_args:
            config = {**config, "init_args": {**(config.get("init_args") or {}), **init_args}}
        parser = ArgumentParser(exit_on_error=False)
        parser.add_argument("--value", type=kind)
        return parser.instantiate_classes(parser.parse_object({"value": config})).value
    except (yaml.YAMLError, ArgumentError) as error:
        raise ValueError(f"config {path} does not describe a valid object ({str(error).splitlines()[0]}); fix the file") from None


def load_method(path: Path, features: bool) -> LossWeighting | GradientAggregator:
    """Instantiate a method config, in the space of the shared features if ``features``."""
    return instantiate_config(path, LossWeighting | GradientAggregator, {"space": "features"} if features else None)


@dataclass
class Variant:
    """A built variant: ``run(steps)`` takes that many training steps."""

    spec: VariantSpec
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    method_name: str
    take_step: Callable[[int], Any]
    task_gradients: str | None = None  # how the per-task gradients were computed: "batched", "looped" (aggregators)
    steps_taken: int = 0
    seconds: list[float] = field(default_factory=list)
    error: str | None = None  # why the variant stopped, when a step of it failed (out of memory, a compiler error)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.take_step(self.steps_taken)
            self.steps_taken += 1


def _sgd(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=1e-3, momentum=0.9)


def build_variant(
    spec: VariantSpec,
    base_net: MultiTaskNet,
    tasks: Sequence,
    batch: tuple[torch.Tensor, dict[str, torch.Tensor]],
    method_dir: Path,
    device: torch.device,
    bf16: bool = False,
    compile_backend: str | None = None,
) -> Variant:
    """The variant's own copy of ``base_net`` (same weights for every variant) and its step;
    ``bf16``: every step under bf16 autocast (the reference steps too), as ``+bf16`` does for one;
    ``compile_backend``: ``+compile``'s torch.compile backend (``None``: torch's default)."""
    images, targets = batch
    net = copy.deepcopy(base_net)
    bf16 = bf16 or "bf16" in spec.options
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    if spec.is_reference:
        module = MultiTaskModule(tasks, net=lambda _: net).to(device)
        optimizer = _sgd(module.net.parameters())
        reference = REFERENCES[spec.name]

        def reference_step(_: int) -> None:
            with autocast():
                reference(module.net, images, targets, module.task_losses, optimizer)

        return Variant(spec, module, optimizer, spec.name, reference_step)
    method = load_method(method_dir / f"{spec.name}.yaml", spec.features)
    batched = True if "batched" in spec.options else False if "sequential" in spec.options else None
    module = MultiTaskModule(
        tasks,
        net=lambda _: net,
        method=method,
        optimizer=_sgd,
        refresh_every=spec.refresh_every,
        jacobian_batched=batched,
        channels_last="channels_last" in spec.options,
        compile=(compile_backend or True) if "compile" in spec.options else False,
    ).to(device)
    module.train()
    optimizer = module.configure_optimizers()

    def take_step(step: int) -> None:
        with autocast():
            module.optimization_step(images, targets, optimizer, step)

    gradients = ("batched" if module.batches_task_gradients() else "looped") if module.uses_gradients else None
    return Variant(spec, module, optimizer, module.method_name, take_step, gradients)
