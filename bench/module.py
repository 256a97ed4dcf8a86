"""The LightningModule every benchmark run trains: one training step for every method.

Optimisation is manual for every method, decided once, so that loss weightings and (later)
gradient aggregators share the same step, and with it the same mixed precision, clipping and
synchronisation: the comparison between methods is fair by construction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric

from bench.errors import BaselineError, MethodConfigError
from bench.jacobian import head_backward, task_gradients, write_grads
from bench.losses import loss_for
from bench.methods import EqualWeighting, GradientAggregator, LossWeighting
from bench.metrics import HIGHER_IS_BETTER, METRICS_OF_KIND, metric_for
from datamodules.tasks import TaskSpec
from leaderboards.delta_m import delta_m
from models import MultiTaskNet

NetFactory = Callable[[Sequence[TaskSpec]], MultiTaskNet]
Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


def _default_net(tasks: Sequence[TaskSpec]) -> MultiTaskNet:
    return MultiTaskNet(tasks)


def _default_optimizer(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


class MultiTaskModule(pl.LightningModule):
    """Trains a :class:`models.MultiTaskNet` on the tasks a datamodule declares.

    Args:
        tasks: the datamodule's tasks (linked in by the CLI; never written in configs).
        net: builds the network from the tasks, e.g. ``MultiTaskNet`` with its arguments.
        method: how tasks are combined: a loss weighting or a gradient aggregator (default EW).
        optimizer: builds the optimizer from the parameters (Adam, AdamW, SGD ... by config).
        lr_scheduler: builds an LR scheduler, stepped once per epoch; ``None`` for a constant LR.
        grad_clip_norm: clip the global gradient norm to this value; ``None`` disables clipping.
        jacobian_batched: compute per-task gradients with one batched (vmap) backward instead of
            a loop; ``None`` chooses batched on GPUs, where it is faster, and the loop on CPUs.
        selection_baseline: JSON file ``{task: {metric: value}}`` of the single-task baselines'
            validation metrics (the sweep writes it). Every validation logs ``val/select``, the
            criterion checkpoints are chosen by (lower is better): the validation Delta_m (%,
            metric-weighted) against these baselines when given, else the summed validation loss.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        net: NetFactory = _default_net,
        method: LossWeighting | GradientAggregator | None = None,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        grad_clip_norm: float | None = None,
        jacobian_batched: bool | None = None,
        selection_baseline: str | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if grad_clip_norm is not None and grad_clip_norm <= 0:
            raise ValueError(f"grad_clip_norm must be positive or None, got {grad_clip_norm}")
        self.tasks = list(tasks)
        self.net = net(self.tasks)
        self.method = method if method is not None else EqualWeighting()
        self.method.bind(len(self.tasks))
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.grad_clip_norm = grad_clip_norm
        self.jacobian_batched = jacobian_batched
        # Set by the gradient probe on its steps: keep the parameter-space Jacobian and update
        # the method computed anyway, so probing such a method costs no backward pass.
        self.capture_jacobian = False
        self.captured: dict[str, torch.Tensor] | None = None
        self.loss_fns = {task.name: loss_for(task) for task in self.tasks}
        self.val_metrics = nn.ModuleDict({task.name: metric_for(task) for task in self.tasks})
        self.test_metrics = nn.ModuleDict({task.name: metric_for(task) for task in self.tasks})
        self.val_losses = nn.ModuleDict({task.name: MeanMetric() for task in self.tasks})
        self.selection_baseline = self._load_baseline(selection_baseline) if selection_baseline else None

    # ----------------------------------------------------------------------------- helpers
    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def metric_directions(self) -> dict[str, dict[str, bool]]:
        """``{task: {metric: higher_is_better}}`` for every metric this module reports."""
        return {task.name: {key: HIGHER_IS_BETTER[key] for key in METRICS_OF_KIND[task.kind]} for task in self.tasks}

    def _flat_directions(self) -> dict[str, bool]:
        """``{"task/metric": higher_is_better}``, the keys Delta_m and the baselines use."""
        return {f"{task}/{metric}": up for task, metrics in self.metric_directions().items() for metric, up in metrics.items()}

    def _load_baseline(self, path: str) -> dict[str, float]:
        """``{"task/metric": value}`` from the baseline file, checked against this run's metrics."""
        file = Path(path)
        if not file.is_file():
            raise BaselineError(f"selection baseline {path} not found; give the single-task validation metrics or drop selection_baseline")
        try:
            table = json.loads(file.read_text())
            baseline = {f"{task}/{metric}": float(value) for task, metrics in table.items() for metric, value in metrics.items()}
        except (ValueError, AttributeError, TypeError) as error:
            raise BaselineError(f"selection baseline {path} is not a JSON object {{task: {{metric: value}}}} ({error})") from None
        wanted = list(self._flat_directions())
        missing = [key for key in wanted if key not in baseline]
        if missing:
            raise BaselineError(f"selection baseline {path} lacks {missing}; run the single-task baselines of these tasks first")
        zero = [key for key in wanted if not baseline[key] or not math.isfinite(baseline[key])]
        if zero:
            raise BaselineError(f"selection baseline {path}: {zero} are 0 or not finite, so Delta_m is undefined; retrain those baselines")
        return {key: baseline[key] for key in wanted}

    def task_losses(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-task losses as one tensor ``[T]`` in the order of ``self.tasks``."""
        return torch.stack([self.loss_fns[name](outputs[name], targets[name]) for name in self.task_names])

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(images)

    # ----------------------------------------------------------------------------- training
    @property
    def uses_gradients(self) -> bool:
        """Whether the method needs per-task gradients (aggregators, GradNorm)."""
        return isinstance(self.method, GradientAggregator) or bool(getattr(self.method, "needs_grad_norms", False))

    def on_fit_start(self) -> None:
        precision = str(self.trainer.precision)
        if self.uses_gradients and precision.startswith("16"):
            raise MethodConfigError(
                f"{self.method} needs per-task gradients, which fp16 ({precision}) would underflow without per-task loss "
                "scaling; use precision bf16-mixed or 32-true"
            )
        if self.uses_gradients and self.trainer.world_size > 1:
            # Per-task gradients are taken with autograd.grad, outside DDP's gradient hooks: each
            # process would apply its own local update. Refuse rather than train inexactly.
            raise MethodConfigError(
                f"{self.method} needs per-task gradients, which are not yet synchronised across {self.trainer.world_size} "
                "processes; run it on one device (loss weightings such as EW, UW, DWA, FAMO work under DDP)"
            )

    def _batched(self) -> bool:
        return self.device.type == "cuda" if self.jacobian_batched is None else self.jacobian_batched

    def _head_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.task_names for p in self.net.task_parameters(name)]

    def _aggregated_backward(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-task gradients -> aggregator -> ``.grad``; returns the (attached) task losses."""
        method = self.method
        features = self.net.encode(images)
        detached = features.detach().requires_grad_()
        losses = self.task_losses(self.net.decode(detached, size=images.shape[-2:]), targets)
        feature_jacobian = head_backward(losses, detached, self._head_parameters(), self._batched())
        detached_losses = losses.detach().float()
        if method.space == "features":
            update = self._aggregate(feature_jacobian, detached_losses)
            features.backward(update.view_as(features).to(features.dtype))
        else:
            shared = list(self.net.shared_parameters())
            grad_outputs = feature_jacobian.view(len(self.tasks), *features.shape).to(features.dtype)
            jacobian = task_gradients(features, shared, grad_outputs, self._batched(), retain_graph=False)
            update = self._aggregate(jacobian, detached_losses)
            write_grads(shared, update)
            if self.capture_jacobian:
                self.captured = {"jacobian": jacobian.detach().float(), "update": update.detach()}
        return losses

    def _aggregate(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The method's update, computed in float32 outside any autocast region."""
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self.method(jacobian.float(), losses)

    def _grad_norm_losses(self, losses: torch.Tensor) -> torch.Tensor:
        """GradNorm's scalar, given the per-task gradient norms of the last shared layer."""
        last_shared = list(self.net.last_shared_parameters())
        eye = torch.eye(len(self.tasks), dtype=losses.dtype, device=losses.device)
        norms = task_gradients(losses, last_shared, eye, self._batched(), retain_graph=True).norm(dim=1)
        return self.method(losses, grad_norms=norms)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        if isinstance(self.method, GradientAggregator):
            losses = self._aggregated_backward(images, targets)
            total = losses.detach().sum()
        else:
            losses = self.task_losses(self.net(images), targets)
            total = self._grad_norm_losses(losses) if self.method.needs_grad_norms else self.method(losses)
            self.manual_backward(total)
        if self.grad_clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        self.method.after_step()
        if getattr(self.method, "needs_losses_after_step", False):
            with torch.no_grad():
                self.method.update(self.task_losses(self.net(images), targets))
        batch_size = images.shape[0]
        self.log("train/loss", losses.detach().sum(), prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        for name, loss in zip(self.task_names, losses.detach(), strict=True):
            self.log(f"train/{name}/loss", loss, on_step=False, on_epoch=True, batch_size=batch_size)
        return total.detach()

    def on_train_epoch_end(self) -> None:
        self.method.on_epoch_end()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: Batch, stage: str, metrics: nn.ModuleDict) -> None:
        images, targets = batch
        outputs = self.net(images)
        losses = self.task_losses(outputs, targets)
        for name, loss in zip(self.task_names, losses, strict=True):
            metrics[name].update(outputs[name], targets[name])
            self.log(f"{stage}/{name}/loss", loss, on_step=False, on_epoch=True, batch_size=images.shape[0])
            if stage == "val":
                self.val_losses[name].update(loss.detach().float(), weight=images.shape[0])

    def _log_metrics(self, stage: str, metrics: nn.ModuleDict) -> dict[str, float]:
        """Compute, log and reset the split's metrics; returns ``{"task/metric": value}``."""
        logged = {}
        for name in self.task_names:
            values = metrics[name].compute()
            self.log_dict({f"{stage}/{name}/{key}": value for key, value in values.items()})
            logged.update({f"{name}/{key}": float(value) for key, value in values.items()})
            metrics[name].reset()
        return logged

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def selection_score(self, val_metrics: dict[str, float], val_loss: float) -> float:
        """``val/select``: validation Delta_m against the baselines if given, else the summed loss."""
        if self.selection_baseline is None:
            return val_loss
        if not all(math.isfinite(value) for value in val_metrics.values()):
            return math.inf
        return delta_m(val_metrics, self.selection_baseline, self._flat_directions())

    def on_validation_epoch_end(self) -> None:
        val_metrics = self._log_metrics("val", self.val_metrics)
        val_loss = 0.0
        for name in self.task_names:
            val_loss += float(self.val_losses[name].compute())
            self.val_losses[name].reset()
        self.log("val/loss", val_loss)
        self.log("val/select", self.selection_score(val_metrics, val_loss))

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    # ----------------------------------------------------------------------------- optimisers
    def configure_optimizers(self):
        optimizer = self.optimizer_factory([*self.net.parameters(), *self.method.trainable_parameters()])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}
