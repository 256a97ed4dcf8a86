"""The LightningModule every benchmark run trains: one training step for every method.

Optimisation is manual for every method, decided once, so that loss weightings and (later)
gradient aggregators share the same step, and with it the same mixed precision, clipping and
synchronisation: the comparison between methods is fair by construction.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mtlbench.bench.run.checkpoints import check_model_state, check_optimizer_settings, optimizer_settings, read_count, saved_settings
from mtlbench.bench.run.distributed import Collective, step_rng
from mtlbench.bench.run.errors import BaselineError, CheckpointError, Diverged, MethodConfigError
from mtlbench.bench.run.jacobian import JacobianBuffer, aggregated_backward, jacobian_fits, reweighted_losses, shared_gradient_norms
from mtlbench.bench.run.losses import pixel_loss_sum, valid_pixels
from mtlbench.bench.run.methods import EqualWeighting, GradientAggregator, LossWeighting
from mtlbench.bench.run.metrics import PooledLoss
from mtlbench.bench.run.rng import collect_rng_states, set_rng_states
from mtlbench.leaderboards.delta_m import delta_m
from mtlbench.leaderboards.untrusted import MAX_SPEC_BYTES, UntrustedFileError, load_json
from mtlbench.models import MultiTaskModel, MultiTaskNet
from mtlbench.tasks import TaskSpec

NetFactory = Callable[[Sequence[TaskSpec]], MultiTaskModel]
Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


def _default_net(tasks: Sequence[TaskSpec]) -> MultiTaskNet:
    return MultiTaskNet(tasks)


def _default_optimizer(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


class MultiTaskModule(pl.LightningModule):
    """Trains a :class:`mtlbench.models.MultiTaskNet` on the tasks a datamodule declares.

    Args:
        tasks: the datamodule's tasks (linked in by the CLI; never written in configs).
        net: builds the network from the tasks: ``MultiTaskNet`` (a timm backbone, a neck, heads)
            or ``MTANSegNet``, with their arguments.
        method: how tasks are combined: a loss weighting or a gradient aggregator (default EW).
        optimizer: builds the optimizer from the parameters (Adam, AdamW, SGD ... by config).
        lr_scheduler: builds an LR scheduler, stepped once per epoch; ``None`` for a constant LR.
        grad_clip_norm: clip the global gradient norm to this value; ``None`` disables clipping.
        jacobian_batched: compute per-task gradients with one batched (vmap) backward instead of
            a loop; ``None`` chooses batched on GPUs, where it is faster, and the loop on CPUs.
        refresh_every: for gradient aggregators whose update is ``J^T w`` (MGDA, PCGrad, CAGrad,
            Nash-MTL, UPGrad ...): compute the weights ``w`` from the exact Jacobian every
            ``refresh_every`` steps and, in between, take one ordinary backward pass of
            ``sum_k w_k L_k`` with the last weights (the saving Nash-MTL's authors offer for their
            method, made available to every such method). 1 = exact at every step.
        jacobian_memory_mb: the most memory the parameter-space Jacobian may take; above it a
            method of the form ``J^T w(J J^T)`` gets its Gramian by groups of parameters (about
            T/2 more backward passes per group beyond the first) and others are refused.
            ``None``: on GPUs, half of the memory free when the Jacobian is first needed; on CPUs,
            no limit.
        channels_last: keep the network and the images in channels-last memory format (faster
            convolutions on recent GPUs and on some CPUs; ``mtlbench perf`` measures it).
        compile: compile the backbone, the neck and the heads with ``torch.compile``: ``True``
            with its default backend (inductor), or a backend's name (``aot_eager`` traces the
            graphs and their backward without generating code).
        selection_baseline: JSON file ``{task: {metric: value}}`` of the single-task baselines'
            validation metrics (the sweep writes it). Every validation logs ``val/select``, the
            criterion checkpoints are chosen by (lower is better): the validation Delta_m (%,
            metric-weighted) against these baselines when given, else the summed validation loss.
        method_lr: learning rate of the method's own parameters (UW's log-variances, the logits of
            FAMO and DB-MTL ...) in a parameter group of their own; ``None``: the optimizer's lr.
            The Nash-MTL / FAMO code trains them at 0.025 beside the network's 1e-4.
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
        refresh_every: int = 1,
        jacobian_memory_mb: float | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
        selection_baseline: str | None = None,
        method_lr: float | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if grad_clip_norm is not None and grad_clip_norm <= 0:
            raise MethodConfigError(f"grad_clip_norm must be positive or None, got {grad_clip_norm}; fix --model.grad_clip_norm")
        self.tasks = list(tasks)
        self.net = net(self.tasks)
        self.method = method if method is not None else EqualWeighting()
        self.method.bind(len(self.tasks))
        self._keep_method_state_from_ddp()
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.grad_clip_norm = grad_clip_norm
        self.jacobian_batched = jacobian_batched
        self.refresh_every = self._checked_refresh(refresh_every)
        if self.refresh_every > 1:  # the weights in use: checkpointed, so a resumed run reuses them
            self.register_buffer("task_weights", torch.zeros(len(self.tasks)))
        if jacobian_memory_mb is not None and jacobian_memory_mb <= 0:
            memory = jacobian_memory_mb
            raise MethodConfigError(f"jacobian_memory_mb must be positive or None, got {memory}; fix --model.jacobian_memory_mb")
        self.jacobian_memory_mb = jacobian_memory_mb
        self.jacobian_buffer = JacobianBuffer()
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile:
            if self.uses_gradients:
                # per-task gradients back-propagate through the graph more than once (retain_graph),
                # which compiled backward functions refuse while they donate their buffers (process-wide)
                torch._functorch.config.donated_buffer = False
            backend = {} if compile is True else {"backend": compile}
            for part in self.net.compile_units():
                part.compile(**backend)
        # Set by the gradient probe and the task affinity on their steps: keep the parameter-space
        # Jacobian and update the method computed anyway, so observing such a method costs no
        # backward pass. Cleared after the step's last callback (``on_train_batch_end``).
        self.capture_jacobian = False
        self.captured: dict[str, torch.Tensor] | None = None
        self.reported_weights: torch.Tensor | None = None  # the last exact step's task weights
        self.zero_update_steps = 0  # steps whose update of the shared parameters was exactly zero
        self._parameter_split: tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]] | None = None
        self._epoch_sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # per-task value x images, and images, this epoch
        self.collective = Collective()
        self.rng_seed = 0
        self.loss_fns = {task.name: partial(task.kind.loss, task) for task in self.tasks}
        self.val_metrics = nn.ModuleDict({task.name: task.kind.metrics(task) for task in self.tasks})
        self.test_metrics = nn.ModuleDict({task.name: task.kind.metrics(task) for task in self.tasks})
        self.val_losses = nn.ModuleDict({task.name: PooledLoss() for task in self.tasks})
        self.test_losses = nn.ModuleDict({task.name: PooledLoss() for task in self.tasks})
        self.selection_baseline = self._load_baseline(selection_baseline) if selection_baseline else None
        if method_lr is not None and not method_lr > 0:
            raise MethodConfigError(f"method_lr must be positive or None, got {method_lr}; fix --model.method_lr")
        self.method_lr = method_lr

    # ----------------------------------------------------------------------------- helpers
    def _checked_refresh(self, refresh_every: int) -> int:
        if not isinstance(refresh_every, int) or refresh_every < 1:
            raise MethodConfigError(f"refresh_every must be a positive integer, got {refresh_every!r}")
        if refresh_every == 1:
            return 1
        if not isinstance(self.method, GradientAggregator):
            raise MethodConfigError(
                f"refresh_every applies to gradient aggregators; {self.method} is a loss weighting: set refresh_every 1"
            )
        if not self.method.weighted:
            raise MethodConfigError(
                f"{self.method}'s update is not a weighted sum of the task gradients, so it has no weights to reuse: set refresh_every 1"
            )
        return refresh_every

    @property
    def method_name(self) -> str:
        """The method's name in records and tables: ``UPGrad``, ``MGDA (features)``, ``UPGrad (k=8)``."""
        details = ["features"] if getattr(self.method, "space", "parameters") == "features" else []
        details += [f"k={self.refresh_every}"] if self.refresh_every > 1 else []
        return f"{self.method} ({', '.join(details)})" if details else str(self.method)

    def _keep_method_state_from_ddp(self) -> None:
        """Method parameters the model's optimizer does not train (FAMO's logits, stepped by its
        own optimizer from the global losses) are equal on every rank by construction; DDP's
        reducer would wait for gradients they never get."""
        trained = {id(param) for param in self.method.trainable_parameters()}
        own = [f"method.{name}" for name, param in self.method.named_parameters() if id(param) not in trained]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, own)

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def metric_directions(self) -> dict[str, dict[str, bool]]:
        """``{task: {metric: higher_is_better}}`` for every metric this module reports."""
        return {task.name: dict(task.kind.metric_directions) for task in self.tasks}

    def _flat_directions(self) -> dict[str, bool]:
        """``{"task/metric": higher_is_better}``, the keys Delta_m and the baselines use."""
        return {f"{task}/{metric}": up for task, metrics in self.metric_directions().items() for metric, up in metrics.items()}

    def _load_baseline(self, path: str) -> dict[str, float]:
        """``{"task/metric": value}`` from the baseline file, checked against this run's metrics."""
        file = Path(path)
        if not file.is_file():
            raise BaselineError(f"selection baseline {path} not found; give the single-task validation metrics or drop selection_baseline")
        try:
            table = load_json(file, limit=MAX_SPEC_BYTES, what="selection baseline")
            baseline = {f"{task}/{metric}": float(value) for task, metrics in table.items() for metric, value in metrics.items()}
        except UntrustedFileError as error:
            raise BaselineError(str(error)) from None
        except (ValueError, AttributeError, TypeError, OverflowError) as error:
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

    def training_losses(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task losses training differentiates: under DDP each rank's loss (a mean over its
        shard's valid pixels) is scaled by its share of the batch's valid pixels, so the rank
        mean of the scaled losses, and of their gradients, is the loss of the whole batch, the
        mean over all its valid pixels, exactly as one process computes it (a T-float all-reduce)."""
        losses = self.task_losses(outputs, targets)
        world = self.collective.world_size
        if world == 1:
            return losses
        counts = torch.stack([valid_pixels(task, targets[task.name]) for task in self.tasks]).to(losses.dtype)
        share = counts * world / self.collective.sum(counts).clamp(min=1)
        return losses * share

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
        if self.trainer.world_size > 1 and self.device.type == "cpu" and any(isinstance(m, nn.SyncBatchNorm) for m in self.modules()):
            raise MethodConfigError(
                "norm 'sync_batch' needs GPUs (torch's SyncBatchNorm has no CPU path); use --model.net.init_args.norm group on CPUs"
            )
        plain_batch_norm = any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d) for m in self.net.modules())
        if self.trainer.world_size > 1 and plain_batch_norm:
            rank_zero_warn(
                f"BatchNorm normalises each of the {self.trainer.world_size} processes' shards on its own, so the steps are not "
                "those of one process on the whole batch; for exact DDP use --model.net.init_args.norm sync_batch (GPUs) or group"
            )
        # the seed of the per-step draws of randomised methods: rank 0's, so every rank agrees
        self.rng_seed = self.collective.broadcast_int(torch.initial_seed() % 2**62, self.device)

    def batches_task_gradients(self) -> bool:
        """Whether per-task gradients are computed in one batched (vmap) backward: by default on GPUs."""
        return self.device.type == "cuda" if self.jacobian_batched is None else self.jacobian_batched

    @contextlib.contextmanager
    def _method_context(self) -> Iterator[None]:
        """Around every call of the method: float32 outside autocast, and for randomised methods
        draws seeded by the step, identical on every rank and after a resume."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.autocast(device_type=self.device.type, enabled=False))
            if self.method.randomized:
                stack.enter_context(step_rng(self.rng_seed, self.global_step, self.device))
            yield

    def _weighted_loss(self, losses: torch.Tensor, global_losses: torch.Tensor) -> torch.Tensor:
        """The loss weighting's scalar. Under DDP it is evaluated at the global losses (the rank
        means) while gradients flow through the local ones, so DDP's average of the local
        gradients is the one-process gradient for any weighting, and stateful weightings (DWA's
        history, FAMO's previous losses, GradNorm's initial losses) see the global values."""
        if self.collective.world_size > 1:
            losses = losses + (global_losses - losses).detach()
        extra = {}
        if self.method.needs_grad_norms:
            last_shared = list(self.net.last_shared_parameters())
            extra["grad_norms"] = shared_gradient_norms(losses, last_shared, self.collective, self.batches_task_gradients())
        with self._method_context():
            return self.method(losses, **extra)

    def refreshes_at(self, step: int) -> bool:
        """Whether the step computes the exact Jacobian (always, unless weights are reused)."""
        return step % self.refresh_every == 0

    def materializes_jacobian(self, step: int) -> bool:
        """Whether the step will hold the whole parameter-space Jacobian (the gradient probe reuses
        it): an aggregator in parameter space, on an exact step, within ``jacobian_memory_mb``."""
        if not isinstance(self.method, GradientAggregator) or self.method.space != "parameters" or not self.refreshes_at(step):
            return False
        limit = None if self.jacobian_memory_mb is None else self.jacobian_memory_mb * 2**20
        return jacobian_fits(len(self.tasks), sum(p.numel() for p in self.net.shared_parameters()), limit)

    def _max_jacobian_bytes(self) -> float | None:
        if self.jacobian_memory_mb is not None:
            return self.jacobian_memory_mb * 2**20
        if self.device.type != "cuda" or self.jacobian_buffer.allocated:
            return None
        free, _ = torch.cuda.mem_get_info(self.device)
        return 0.5 * (free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device))

    def _backward(self, total: torch.Tensor) -> None:
        if self._trainer is not None:
            self.manual_backward(total)  # through the strategy: precision plugins, DDP
        else:
            total.backward()

    def _reweighted_step(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Between refreshes: one backward pass giving the shared parameters ``J^T w`` with the
        last exact step's weights (under DDP, the rank mean of the local ``J_r^T w`` is the global
        one) and the heads their own gradients."""
        losses = reweighted_losses(self.net, self.task_weights, images, targets, self.training_losses)
        logged = self.collective.mean(losses.detach())
        total = losses.sum()
        self._backward(total)
        return logged, total

    def optimization_step(
        self, images: torch.Tensor, targets: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of every parameter by the method, then the optimizer's step; returns the
        global task losses ``[T]`` and the scalar the step stands for. ``step`` is the global step
        (it decides when reused weights are refreshed). Runs with or without a Trainer, so
        ``mtlbench perf`` times exactly this."""
        optimizer.zero_grad(set_to_none=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if isinstance(self.method, GradientAggregator) and not self.refreshes_at(step):
            logged, total = self._reweighted_step(images, targets)
        elif isinstance(self.method, GradientAggregator):
            result = aggregated_backward(
                self.net,
                self.method,
                images,
                targets,
                self.training_losses,
                self.collective,
                self.batches_task_gradients(),
                self._method_context,
                self.jacobian_buffer,
                self._max_jacobian_bytes(),
            )
            if self.capture_jacobian and result.jacobian is not None:
                self.captured = {"jacobian": result.jacobian.detach().float(), "update": result.update.detach().clone()}
            if result.weights is not None:
                self.reported_weights = result.weights.detach().float()  # float64 where solved from the Gramian
                if self.refresh_every > 1:
                    self.task_weights.copy_(result.weights)
            logged, total = result.global_losses, result.global_losses.sum()
        else:
            losses = self.training_losses(self.net(images), targets)
            logged = self.collective.mean(losses.detach())  # the whole batch's losses, as one process has them
            total = self._weighted_loss(losses, logged)
            self._backward(total)
        self._stop_if_diverged(logged, total)
        if self.grad_clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        self.method.after_step()
        if getattr(self.method, "needs_losses_after_step", False):
            with torch.no_grad():
                self.method.update(self.collective.mean(self.training_losses(self.net(images), targets)))
        return logged, total

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        self.reported_weights = None
        logged, total = self.optimization_step(images, targets, self.optimizers(), self.global_step)
        batch_size = images.shape[0]
        self.log("train/loss", logged.sum(), prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        self._add_to_epoch("loss", logged, batch_size)
        if self.reported_weights is not None:  # the aggregator's task weights, where it reports them
            self._add_to_epoch("weight", self.reported_weights, batch_size)
        return total.detach()

    def on_train_batch_end(self, outputs, batch: Batch, batch_idx: int) -> None:
        # Lightning calls this after every callback's batch end: a Jacobian kept for the callbacks
        # that asked for it (the gradient probe, the task affinity) lives for one step
        self.capture_jacobian, self.captured = False, None

    def _stop_if_diverged(self, losses: torch.Tensor, total: torch.Tensor) -> None:
        """Raise :class:`Diverged` before the optimizer applies a non-finite loss or update, and
        count the steps whose update of the shared parameters is exactly zero (every task
        gradient zero, or a method that returned none): the record reports them. The losses are
        the global ones and the gradients are already averaged over processes, so every rank
        stops and counts alike. One device-to-host sync per step."""
        if self._parameter_split is None:  # the same parameter objects for the whole run: walking the modules took 5% of a step
            shared_ids = {id(p) for p in self.net.shared_parameters()}
            every = list(self.parameters())
            self._parameter_split = [p for p in every if id(p) in shared_ids], [p for p in every if id(p) not in shared_ids]
        shared, other = self._parameter_split
        grads = [p.grad for p in shared if p.grad is not None]
        others = [p.grad for p in other if p.grad is not None]
        shared_norm = torch.nn.utils.get_total_norm(grads) if grads else losses.new_zeros(())
        others_norm = torch.nn.utils.get_total_norm(others) if others else losses.new_zeros(())
        finite = torch.isfinite(losses).all() & torch.isfinite(total.detach()) & torch.isfinite(shared_norm) & torch.isfinite(others_norm)
        finite, zero = torch.stack([finite, shared_norm == 0]).tolist()
        if finite:
            self.zero_update_steps += int(zero)
            return
        bad = [name for name, value in zip(self.task_names, losses.tolist(), strict=True) if not math.isfinite(value)]
        what = "the loss" if bad else ("the weighted loss" if not math.isfinite(float(total.detach())) else "the gradient")
        raise Diverged(self.global_step, bad[0] if bad else None, str(self.method), what)

    def _add_to_epoch(self, what: str, per_task: torch.Tensor, batch_size: int) -> None:
        """Accumulate ``train/<task>/<what>``'s epoch mean as ``self.log(..., on_epoch=True,
        batch_size=...)`` does (a float32 sum of value x batch size and an int64 count of images,
        over the steps that report the value), for all tasks at once: one ``self.log`` per task
        and step cost a millisecond of Lightning's bookkeeping, 12% of a reference run's step.
        Reset at every epoch's start, as Lightning's is."""
        weighted, images = per_task.detach() * batch_size, torch.tensor(batch_size, device=per_task.device)
        if what in self._epoch_sums:
            total, count = self._epoch_sums[what]
            weighted, images = total + weighted, count + images
        self._epoch_sums[what] = weighted, images

    def on_train_epoch_end(self) -> None:
        for what, (total, images) in self._epoch_sums.items():
            for name, mean in zip(self.task_names, total / images, strict=True):
                self.log(f"train/{name}/{what}", mean, on_step=False, on_epoch=True, batch_size=1)

    def on_train_epoch_start(self) -> None:
        self._epoch_sums = {}
        # The previous epoch's end-of-epoch updates (DWA's epoch averages, the LR schedule) are
        # made here, at the next epoch's start: a checkpoint taken at the end of an epoch (after
        # its validation) then holds the state from before them, and a run resumed from it makes
        # them exactly once, as the uninterrupted run does.
        if self.current_epoch == 0:
            return
        self.method.on_epoch_end()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            with warnings.catch_warnings():
                # a resumed run's first step of the schedule follows optimizer steps taken by the
                # process that wrote the checkpoint, which torch cannot see: its order warning is wrong here
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")
                scheduler.step()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Every random generator's state (torch, CUDA, numpy, Python), as plain tensors and lists,
        and the count of steps without an update."""
        checkpoint["rng_states"] = collect_rng_states()
        checkpoint["zero_update_steps"] = self.zero_update_steps

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # before Lightning loads the state dict: what does not fit is one line naming the file
        path = self._trainer.ckpt_path if self._trainer is not None else None
        check_model_state(checkpoint.get("state_dict"), self, self.method, f"checkpoint {path}" if path else "the checkpoint")
        # Nothing draws between this restore and the resumed epoch's data-loader iterator, as
        # nothing draws between the checkpoint and the next epoch's iterator in the uninterrupted run.
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
        self.zero_update_steps = read_count(checkpoint.get("zero_update_steps", 0), f"checkpoint {path}: zero_update_steps")
        if self._trainer is not None and self.trainer.state.fn == "fit" and "optimizer_states" in checkpoint:
            self._check_optimizer_state(checkpoint["optimizer_states"], f"checkpoint {path}" if path else "the checkpoint")

    # ----------------------------------------------------------------------------- evaluation
    # Every sample of a split is counted once, on one process (the datamodule's samplers blank
    # the targets of the samples that only pad a process's share), and every value logged is
    # computed from metric states summed over processes: the same on every process and equal to
    # a one-process evaluation.
    def _evaluate(self, batch: Batch, metrics: nn.ModuleDict, losses: nn.ModuleDict) -> None:
        images, targets = batch
        outputs = self.net(images)
        for task in self.tasks:
            metrics[task.name].update(outputs[task.name], targets[task.name])
            losses[task.name].update(*pixel_loss_sum(task, outputs[task.name], targets[task.name]))

    def _log_global(self, values: dict[str, float | torch.Tensor]) -> None:
        """Log values every process holds alike (computed from summed states). Reduced with max,
        which returns them bit for bit where a mean could change the last bit, so Lightning knows
        them synchronised and every process's checkpoint callbacks see the same numbers."""
        self.log_dict(values, sync_dist=True, reduce_fx="max")

    def _log_metrics(self, stage: str, metrics: nn.ModuleDict, losses: nn.ModuleDict) -> tuple[dict[str, float], float]:
        """Compute, log and reset the split's metrics and pooled losses; returns
        ``{"task/metric": value}`` and the sum of the task losses."""
        logged, scalars, total_loss = {}, {}, 0.0
        for name in self.task_names:
            values = metrics[name].compute()
            loss = losses[name].compute()
            scalars.update({f"{stage}/{name}/{key}": value for key, value in values.items()})
            scalars[f"{stage}/{name}/loss"] = loss
            logged.update({f"{name}/{key}": float(value) for key, value in values.items()})
            total_loss += float(loss)
            metrics[name].reset()
            losses[name].reset()
        self._log_global(scalars)
        return logged, total_loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, self.val_losses)

    def selection_score(self, val_metrics: dict[str, float], val_loss: float) -> float:
        """``val/select``: validation Delta_m against the baselines if given, else the summed loss."""
        if self.selection_baseline is None:
            return val_loss
        if not all(math.isfinite(value) for value in val_metrics.values()):
            return math.inf
        return delta_m(val_metrics, self.selection_baseline, self._flat_directions())

    def on_validation_epoch_end(self) -> None:
        val_metrics, val_loss = self._log_metrics("val", self.val_metrics, self.val_losses)
        self._log_global({"val/loss": val_loss, "val/select": self.selection_score(val_metrics, val_loss)})

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, self.test_losses)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics, self.test_losses)

    # ----------------------------------------------------------------------------- optimisers
    def _parameter_groups(self) -> list[nn.Parameter] | list[dict]:
        """The network's and the method's parameters; two groups when the method has its own lr."""
        own = list(self.method.trainable_parameters())
        if self.method_lr is None or not own:
            return [*self.net.parameters(), *own]
        return [{"params": list(self.net.parameters())}, {"params": own, "lr": self.method_lr}]

    def configure_optimizers(self):
        # torch checks the optimizer's and the scheduler's arguments when they are built: its
        # ValueErrors here are the configuration's, and end the run in one line
        try:
            optimizer = self.optimizer_factory(self._parameter_groups())
        except (ValueError, TypeError) as error:
            raise MethodConfigError(f"optimizer: {error}; fix --model.optimizer.init_args") from None
        if self.scheduler_factory is None:
            return optimizer
        try:
            scheduler = self.scheduler_factory(optimizer)
        except (ValueError, TypeError) as error:
            raise MethodConfigError(f"lr_scheduler: {error}; fix --model.lr_scheduler.init_args") from None
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def _check_optimizer_state(self, states: object, source: str) -> None:
        """A resumed optimizer takes its hyper-parameters from the checkpoint's state (torch's
        ``load_state_dict``): they must be the ones this run's config builds (an optimizer built
        here to compare, before anything is restored), or the run would train with settings its
        record does not name."""
        built = self.configure_optimizers()
        optimizer = built["optimizer"] if isinstance(built, dict) else built
        scheduled = self.scheduler_factory is not None
        saved = states[0].get("param_groups") if isinstance(states, list) and states and isinstance(states[0], dict) else None
        if not isinstance(saved, list) or not all(isinstance(group, dict) for group in saved):
            raise CheckpointError(f"{source} holds no optimizer parameter groups; it is not a checkpoint of mtlbench fit")
        check_optimizer_settings(optimizer_settings(optimizer, scheduled), saved_settings(saved, scheduled), source)
