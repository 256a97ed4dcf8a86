"""TaskAffinity: the inter-task affinity of Fifty et al. (NeurIPS 2021) recorded during training.

Every ``every_n_steps`` training steps, on the step's batch and from the shared parameters
before the step: for each task i a lookahead update with i's gradient alone, and for each task j
``Z_{i->j} = 1 - L_j(after i's lookahead) / L_j(before)`` (:mod:`mtlbench.bench.run.affinity`).
At the same steps and from the same gradients it records the pairwise gradient cosine and
magnitude similarity (Elich et al. 2024), so the three predictors of which tasks belong together
can be compared on equal terms.

The gradients are the step's own parameter-space Jacobian where the method computes one (no
extra backward pass); otherwise one extra forward pass and T encoder backward passes. The
lookahead then costs T + 1 forward passes without gradients. Under DDP the gradients and every
loss are those of the global batch (rank means; the losses scaled as training scales them), so
each rank computes the same affinity, equal to one process's on the whole batch.

The run is left as it was: after the lookaheads the shared parameters get back their exact
values (bit for bit), the network's buffers (BatchNorm statistics) are restored, the random
generators are forked (so dropout in a lookahead draws nothing from the run's stream), and the
optimizer is only read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from mtlbench.bench.run import affinity as af
from mtlbench.bench.run import budget
from mtlbench.bench.run import gradient_stats as gs
from mtlbench.bench.run.callbacks.observations import log_observation
from mtlbench.bench.run.files import AFFINITY_FILE
from mtlbench.bench.run.task_gradients import extra_pass_gradients
from mtlbench.leaderboards.atomic_write import write_json_atomic

DIRECTIONS = ("auto", "adam", "sgd")
LOOKAHEAD_SEED = 0  # every lookahead forward pass draws the same numbers (dropout masks)


def _rounded(matrix: torch.Tensor) -> list[list[float]]:
    return [[float(value) for value in row] for row in matrix.tolist()]


class TaskAffinity(Callback):
    """Records the ``T x T`` inter-task affinity into the run record, any Lightning logger
    (``affinity/<i>-><j>``, so W&B too) and ``task_affinity.json`` (drawn by ``mtlbench plot``).

    Args:
        every_n_steps: lookahead cadence; the paper computed it at every step. At the default
            of 100, a run on the quickstart model takes 1.038x as long as without it when the
            gradients need an extra pass (EW) and 1.011x when the step's Jacobian serves (UPGrad),
            as measured by ``mtlbench perf affinity`` (whole fits: 1.096x and 1.027x; docs/affinity.md).
        direction: the lookahead's step rule. ``auto`` (default) takes the run's optimizer's:
            ``adam`` for Adam and AdamW (the gradient preconditioned by Adam's second-moment
            estimate, as Adam's steps are), ``sgd`` for SGD (the learning rate times the
            gradient, the paper's rule). The default follows the optimizer because the affinity
            should predict the steps training takes: under Adam a task's raw gradient is not
            the direction its update moves the shared parameters (Elich et al. 2024: Adam's
            per-coordinate scaling undoes magnitude differences), and Adam's learning rate times
            a raw gradient is a step training never makes. Any other optimizer needs ``adam``
            (if it keeps Adam's ``exp_avg_sq``) or ``sgd`` named.
    """

    def __init__(self, every_n_steps: int = 100, direction: str = "auto") -> None:
        self.every_n_steps = every_n_steps
        self.direction = direction
        self.rule = direction
        self.history: list[dict[str, Any]] = []
        self._state: dict[str, Any] | None = None
        self._task_names: list[str] = []
        self._directory = Path(".")

    # ------------------------------------------------------------------ validation
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not isinstance(self.every_n_steps, int) or self.every_n_steps < 1:
            raise ValueError(f"TaskAffinity: every_n_steps must be an integer >= 1, got {self.every_n_steps!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"TaskAffinity: direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if not hasattr(pl_module, "net") or not hasattr(pl_module.net, "shared_parameters"):
            raise ValueError("TaskAffinity needs a mtlbench.bench.run.module.MultiTaskModule (a net with shared_parameters())")
        self._task_names = list(pl_module.task_names)
        self._directory = Path(trainer.log_dir or trainer.default_root_dir)  # a collective call under DDP: on every rank

    def on_fit_start(self, trainer: pl.Trainer, pl_module) -> None:
        optimizer = trainer.optimizers[0]
        self.rule = self.direction if self.direction != "auto" else self._rule_of(optimizer)
        if self.rule == "adam" and not all("betas" in group and "eps" in group for group in optimizer.param_groups):
            raise ValueError(f"TaskAffinity: direction adam reads Adam's second moments, which {type(optimizer).__name__} has not; use sgd")

    @staticmethod
    def _rule_of(optimizer: torch.optim.Optimizer) -> str:
        if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            return "adam"
        if isinstance(optimizer, torch.optim.SGD):
            return "sgd"
        name = type(optimizer).__name__
        raise ValueError(f"TaskAffinity: direction auto knows Adam, AdamW and SGD, not {name}; set direction adam or sgd")

    # ------------------------------------------------------------------ before the step
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            return
        with budget.part("probe"):
            shared = list(pl_module.net.shared_parameters())
            reuse = pl_module.materializes_jacobian(trainer.global_step)
            state: dict[str, Any] = {"step": trainer.global_step, "reuse": reuse, "before": _values(pl_module.net)}
            state["scales"] = self._step_scales(trainer.optimizers[0], shared)
            if reuse:  # the module keeps the step's Jacobian for the callbacks (cleared after them)
                pl_module.capture_jacobian = True
            else:
                images, targets = batch
                with trainer.precision_plugin.forward_context():
                    local = extra_pass_gradients(pl_module, images, targets, shared, len(self._task_names))
                state["grads"] = pl_module.collective.mean(local)
            self._state = state

    def _step_scales(self, optimizer: torch.optim.Optimizer, shared: list[torch.nn.Parameter]) -> dict[str, torch.Tensor | None]:
        """Each shared coordinate's learning rate and, for the ``adam`` rule, its Adam ``eps``,
        Adam's denominator ``sqrt(v / (1 - beta2^t)) + eps`` as the optimizer holds it before the
        step, and ``first``: the coordinates of parameters without Adam state yet (their parameter
        has not had a step; Adam's next step there is its first)."""
        group_of = {id(param): group for group in optimizer.param_groups for param in group["params"]}
        missing = [index for index, param in enumerate(shared) if id(param) not in group_of]
        if missing:
            raise ValueError("TaskAffinity: the optimizer does not train every shared parameter, so no lookahead can follow it")
        lrs, epss, denominators, first = [], [], [], []
        for param in shared:
            group, size = group_of[id(param)], (param.numel(),)
            lrs.append(torch.full(size, float(group["lr"]), device=param.device))
            if self.rule != "adam":
                continue
            epss.append(torch.full(size, float(group["eps"]), device=param.device))
            state = optimizer.state.get(param, {})
            moment = state.get("max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq")
            first.append(torch.full(size, moment is None, device=param.device))
            if moment is None:  # unused: the first step's denominator is each task's own
                denominators.append(torch.ones(size, device=param.device))
            else:
                correction = 1 - group["betas"][1] ** float(state["step"])
                denominators.append((moment.detach().float() / correction).sqrt().flatten() + group["eps"])
        if self.rule != "adam":
            return {"lr": torch.cat(lrs)}
        return {"lr": torch.cat(lrs), "eps": torch.cat(epss), "denominator": torch.cat(denominators), "first": torch.cat(first)}

    # ------------------------------------------------------------------ after the step
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        state, self._state = self._state, None
        if state is None:
            return
        with budget.part("probe"):
            if state["reuse"]:
                captured = pl_module.captured
                if captured is None:  # the step chunked its Jacobian after all (GPU memory ran short)
                    return
                state["grads"] = captured["jacobian"]  # global already
            self._record(pl_module, state, batch)

    def _record(self, pl_module, state: dict[str, Any], batch: Any) -> None:
        grads = state["grads"][: len(self._task_names)].float()
        steps = af.lookahead_steps(grads, rule=self.rule, **state["scales"])
        before, after = self.lookahead_losses(pl_module, batch, state["before"], steps)
        count = len(self._task_names)
        entry = {
            "step": state["step"],
            "affinity": _rounded(af.affinity(before, after)),
            "cos": _rounded(af.pair_matrix(gs.cosine_similarity(grads), count)),
            "mag_sim": _rounded(af.pair_matrix(gs.magnitude_similarity(grads), count)),
        }
        self.history.append(entry)
        names = self._task_names
        scalars = {f"affinity/{names[i]}->{names[j]}": entry["affinity"][i][j] for i in range(count) for j in range(count) if i != j}
        log_observation(pl_module.trainer, scalars, state["step"])

    def lookahead_losses(
        self, pl_module, batch: Any, before: dict[str, list[torch.Tensor]], steps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The global task losses at the network's parameters ``before`` the step (``[T]``) and
        after each task's lookahead step of the shared ones from there (``[T, T]``; the heads keep
        their values from before the step, as in the paper), with every parameter and buffer
        restored to what it holds now, exactly."""
        images, targets = batch
        net = pl_module.net
        now, buffers = _values(net), [buffer.detach().clone() for buffer in net.buffers()]
        shared, heads = _split(net)
        devices = [images.device] if images.device.type == "cuda" else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices), pl_module.trainer.precision_plugin.forward_context():
                _load(heads, before["heads"])
                _load(shared, before["shared"])
                before_losses = self._global_losses(pl_module, images, targets)
                after = []
                for step in steps:
                    _load(shared, before["shared"], step)
                    after.append(self._global_losses(pl_module, images, targets))
        finally:
            with torch.no_grad():
                _load(shared, now["shared"])
                _load(heads, now["heads"])
                for buffer, saved in zip(net.buffers(), buffers, strict=True):
                    buffer.copy_(saved)
        return before_losses, torch.stack(after)

    def _global_losses(self, pl_module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        torch.manual_seed(LOOKAHEAD_SEED)
        losses = pl_module.training_losses(pl_module.net(images), targets)[: len(self._task_names)]
        return pl_module.collective.mean(losses.detach().float())

    # ------------------------------------------------------------------ summaries
    def summary(self) -> dict[str, Any]:
        """The record's ``task_affinity``: the mean and std over lookaheads of ``Z``, and the mean
        gradient cosine and magnitude similarity at the same steps."""
        stacked = {key: torch.tensor([entry[key] for entry in self.history], dtype=torch.float64) for key in ("affinity", "cos", "mag_sim")}
        return {
            "tasks": self._task_names,
            "every_n_steps": self.every_n_steps,
            "direction": self.rule,
            "lookaheads": len(self.history),
            "affinity": _rounded(stacked["affinity"].mean(dim=0)),
            "affinity_std": _rounded(stacked["affinity"].std(dim=0, unbiased=False)),
            "cos": _rounded(stacked["cos"].mean(dim=0)),
            "mag_sim": _rounded(stacked["mag_sim"].mean(dim=0)),
        }

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.is_global_zero and self.history:
            payload = {"tasks": self._task_names, "every_n_steps": self.every_n_steps, "direction": self.rule, "lookaheads": self.history}
            write_json_atomic(self._directory / AFFINITY_FILE, payload)

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints, so a resumed run's affinity covers the whole run."""
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    def record_fields(self) -> dict[str, Any]:
        """The ``task_affinity`` section of the run record."""
        return {"task_affinity": self.summary()} if self.history else {}


def _split(net) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """The network's shared parameters, and the others (the heads), in a fixed order."""
    shared = list(net.shared_parameters())
    ids = {id(param) for param in shared}
    return shared, [param for param in net.parameters() if id(param) not in ids]


def _values(net) -> dict[str, list[torch.Tensor]]:
    """Copies of the shared parameters' and the heads' values."""
    shared, heads = _split(net)
    return {"shared": [p.detach().clone() for p in shared], "heads": [p.detach().clone() for p in heads]}


def _load(params: list[torch.nn.Parameter], values: list[torch.Tensor], step: torch.Tensor | None = None) -> None:
    """Write ``values`` (minus the flat ``step``, when given) into ``params`` in place."""
    offset = 0
    for param, value in zip(params, values, strict=True):
        if step is None:
            param.copy_(value)
        else:
            param.copy_(value - step[offset : offset + value.numel()].view_as(value).to(value.dtype))
        offset += value.numel()
