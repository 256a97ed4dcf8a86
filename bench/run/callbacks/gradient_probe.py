"""GradientProbe: per-task gradient norms, conflicts and magnitudes, inter-task and inter-sample.

Every ``every_n_steps`` training steps, on the shared parameters (Elich, Kirchdorfer, Köhler &
Schott, GCPR 2024):

- inter-task: each task's gradient norm; for each pair of tasks the cosine similarity, the
  conflict indicator (cos < 0), the magnitude similarity and the fraction of coordinates whose
  signs disagree; the condition number of the tasks' Gram matrix; the cosine between each task
  gradient and the combined gradient the optimizer received and the step it actually took (is
  any task hurt?); the method's realised task weights (least squares of the combined gradient
  on the task gradients, with its residual);
- inter-sample (the single-task analogue): the same pair statistics between the gradients of
  ``sub_batches`` disjoint sub-batches of the same task (the sub-batch's share of the batch
  loss: its samples' slice of the task's representation gradient, back-propagated alone);
- optionally, cosines of the principal angles between the tasks' sub-batch gradient subspaces.

Cost: nothing on other steps. On probe steps, a gradient aggregator in parameter space hands
over the Jacobian it computed anyway (no extra backward pass); otherwise the probe runs one
forward pass and T encoder backward passes (T x sub_batches with inter-sample statistics: the
task gradient is then the sum of its sub-batch gradients), with the network's buffers
(BatchNorm statistics) restored afterwards. Under DDP the gradients are
averaged over processes first (sub-batches are chunks of the global batch), so the statistics
are those of the global batch, equal to one process's on the whole batch, logged once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from mtlbench.bench.run import budget
from mtlbench.bench.run import gradient_stats as gs
from mtlbench.bench.run.callbacks.observations import log_observation
from mtlbench.bench.run.files import STATS_FILE
from mtlbench.bench.run.task_gradients import extra_pass_gradients
from mtlbench.leaderboards.atomic_write import write_json_atomic


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().flatten().float() for t in tensors])


class GradientProbe(Callback):
    """Records gradient statistics through any Lightning logger and into the run record.

    Args:
        every_n_steps: probe cadence. At the default a probe costs about 0.4 s above an ordinary
            step on the quickstart model, an overhead of 1.2 % with EW and 0.8 % with UPGrad
            (whose Jacobian it reuses; ``mtlbench perf probe`` measures it); probing every 5
            steps, as the paper did, would take about half as much time again.
        inter_sample: also compute the inter-sample statistics.
        sub_batches: number of sub-batches per task for the inter-sample statistics.
        principal_angles: also compute principal angles between per-task sub-batch subspaces.
        max_tasks: subsample at most this many tasks (the first ones) when there are more.
    """

    def __init__(
        self,
        every_n_steps: int = 200,
        inter_sample: bool = True,
        sub_batches: int = 2,
        principal_angles: bool = False,
        max_tasks: int = 8,
    ) -> None:
        self.every_n_steps = every_n_steps
        self.inter_sample = inter_sample
        self.sub_batches = sub_batches
        self.principal_angles = principal_angles
        self.max_tasks = max_tasks
        self.history: list[dict[str, Any]] = []
        self._epoch_start = 0
        self._state: dict[str, Any] | None = None
        self._task_names: list[str] = []
        self._directory = Path(".")

    # ------------------------------------------------------------------ validation
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.every_n_steps < 1:
            raise ValueError(f"GradientProbe: every_n_steps must be >= 1, got {self.every_n_steps}")
        if self.sub_batches < 2:
            raise ValueError(f"GradientProbe: sub_batches must be >= 2, got {self.sub_batches}")
        if self.max_tasks < 1:
            raise ValueError(f"GradientProbe: max_tasks must be >= 1, got {self.max_tasks}")
        if not hasattr(pl_module, "net") or not hasattr(pl_module.net, "shared_parameters"):
            raise ValueError("GradientProbe needs a mtlbench.bench.run.module.MultiTaskModule (a net with shared_parameters())")
        self._task_names = pl_module.task_names[: self.max_tasks]
        # log_dir is a collective call under DDP: resolve it here, on every rank
        self._directory = Path(trainer.log_dir or trainer.default_root_dir)

    # ------------------------------------------------------------------ probing
    def _reuses_method_jacobian(self, pl_module) -> bool:
        return len(pl_module.tasks) <= self.max_tasks and pl_module.materializes_jacobian(pl_module.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch: Any, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            return
        with budget.part("probe"):
            self._before_step(trainer, pl_module, batch)

    def _before_step(self, trainer: pl.Trainer, pl_module, batch: Any) -> None:
        shared = list(pl_module.net.shared_parameters())
        reuse = self._reuses_method_jacobian(pl_module)
        state: dict[str, Any] = {"before": _flat(shared), "reuse": reuse, "step": trainer.global_step}
        if reuse:  # the module clears the request after the step
            pl_module.capture_jacobian = True
        if not reuse or self.inter_sample or self.principal_angles:
            with trainer.precision_plugin.forward_context():
                state.update(self._own_gradients(pl_module, batch, shared, want_tasks=not reuse))
        self._state = state

    def _own_gradients(self, pl_module, batch: Any, shared: list[torch.nn.Parameter], want_tasks: bool) -> dict[str, torch.Tensor]:
        """Task and sub-batch gradients from one extra forward pass (buffers left untouched)."""
        images, targets = batch
        count = len(self._task_names)
        if not (self.inter_sample or self.principal_angles):
            return {"tasks": extra_pass_gradients(pl_module, images, targets, shared, count)}
        chunks = self._local_chunks(images.shape[0], pl_module.collective, images.device)
        samples = extra_pass_gradients(pl_module, images, targets, shared, count, chunks)
        # back-propagation is linear: a task's gradient is the sum of its sub-batches' gradients
        return {"tasks": samples.sum(dim=1), "samples": samples} if want_tasks else {"samples": samples}

    def _local_chunks(self, local_size: int, collective, device: torch.device) -> list[torch.Tensor]:
        """This rank's samples in each sub-batch. Sub-batches are contiguous chunks of the global
        batch in the order one process holds it (the samplers deal its samples out to the ranks
        in turn), so their gradients, averaged over ranks, are those one process computes on the
        whole batch; a rank may hold none of a chunk."""
        mine = collective.global_positions(local_size, device)
        positions = torch.arange(collective.world_size * local_size, device=device)
        return [torch.nonzero(torch.isin(mine, chunk)).flatten() for chunk in positions.chunk(self.sub_batches)]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        state, self._state = self._state, None
        if state is None:
            return
        with budget.part("probe"):
            self._after_step(pl_module, state)

    def _after_step(self, pl_module, state: dict[str, Any]) -> None:
        shared = list(pl_module.net.shared_parameters())
        if state["reuse"]:
            captured = pl_module.captured  # the module drops it after every callback's batch end
            if captured is None:  # the step chunked its Jacobian after all (GPU memory ran short): no probe
                return
            grads, combined = captured["jacobian"], captured["update"]
        else:
            grads = state["tasks"]
            combined = _flat(p.grad if p.grad is not None else torch.zeros_like(p) for p in shared)
        step = state["before"] - _flat(shared)
        samples = state.get("samples")
        # the global gradients: a reused Jacobian is global already, the probe's own are local
        collective = pl_module.collective
        grads = grads if state["reuse"] else collective.mean(grads)
        samples = collective.mean(samples) if samples is not None else None
        values = self.statistics(grads, combined, step, samples)
        values["step"] = state["step"]
        self.history.append(values)
        scalars = {f"grad/{key}": value for key, value in values.items() if isinstance(value, float)}
        log_observation(pl_module.trainer, scalars, state["step"])

    # ------------------------------------------------------------------ statistics
    def statistics(self, grads: torch.Tensor, combined: torch.Tensor, step: torch.Tensor, samples: torch.Tensor | None) -> dict[str, Any]:
        """All statistics of one probe as a flat ``{name: float}`` dict (plus a few lists)."""
        names = self._task_names[: grads.shape[0]]
        values: dict[str, Any] = {}
        for name, norm in zip(names, grads.norm(dim=1).tolist(), strict=True):
            values[f"norm/{name}"] = norm
        pair_names = [f"{names[i]}~{names[j]}" for i, j in gs.pairs(len(names))]
        for label, stat in (
            ("cos", gs.cosine_similarity(grads)),
            ("mag_sim", gs.magnitude_similarity(grads)),
            ("sign_conflict", gs.conflicting_coordinates(grads)),
        ):
            for pair, value in zip(pair_names, stat.tolist(), strict=True):
                values[f"inter_task/{label}/{pair}"] = value
        values["inter_task/cond"] = float(gs.gram_condition_number(grads))
        for label, direction in (("update_cos", combined), ("step_cos", step)):
            for name, value in zip(names, gs.cosine_to(grads, direction).tolist(), strict=True):
                values[f"{label}/{name}"] = value
        weights, residual = gs.realised_weights(grads, combined)
        for name, value in zip(names, weights.tolist(), strict=True):
            values[f"weight/{name}"] = value
        values["weight_residual"] = float(residual)
        if samples is not None and self.inter_sample:
            for name, rows in zip(names, samples, strict=True):
                for label, stat in (
                    ("cos", gs.cosine_similarity(rows)),
                    ("mag_sim", gs.magnitude_similarity(rows)),
                    ("sign_conflict", gs.conflicting_coordinates(rows)),
                ):
                    values[f"inter_sample/{label}/{name}"] = float(stat.mean())
        if samples is not None and self.principal_angles:
            for i, j in gs.pairs(len(names)):
                values[f"principal_cos/{names[i]}~{names[j]}"] = float(gs.principal_angle_cosines(samples[i], samples[j]).mean())
        return values

    # ------------------------------------------------------------------ summaries
    def _pooled(self, records: list[dict[str, Any]], prefix: str) -> list[float]:
        return [value for record in records for key, value in record.items() if key.startswith(prefix)]

    def summary(self, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Mean, std, 2.5 / 97.5 percentiles of every statistic, pooled over pairs and steps."""
        records = self.history if records is None else records
        keys = sorted({key for record in records for key in record if key != "step"})
        out: dict[str, Any] = {"probes": len(records), "every_n_steps": self.every_n_steps}
        for group in (
            "inter_task/cos",
            "inter_task/mag_sim",
            "inter_task/sign_conflict",
            "inter_sample/cos",
            "inter_sample/mag_sim",
            "inter_sample/sign_conflict",
        ):
            pooled = self._pooled(records, group + "/")
            if pooled:
                out[group] = gs.summarise(pooled)
        cosines = self._pooled(records, "inter_task/cos/")
        if cosines:
            out["inter_task/conflict_rate"] = sum(value < 0 for value in cosines) / len(cosines)
        samples = self._pooled(records, "inter_sample/cos/")
        if samples:
            out["inter_sample/conflict_rate"] = sum(value < 0 for value in samples) / len(samples)
        for key in keys:
            if key.startswith(("norm/", "update_cos/", "step_cos/", "weight/", "inter_task/cond", "weight_residual")):
                out[key] = gs.summarise([record[key] for record in records if key in record])
        return out

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        epoch_records = self.history[self._epoch_start :]
        self._epoch_start = len(self.history)
        if not epoch_records:
            return
        summary = self.summary(epoch_records)
        scalars = {}
        for key, value in summary.items():
            if isinstance(value, dict):
                scalars.update({f"grad_epoch/{key}/{stat}": value[stat] for stat in ("mean", "std", "p2_5", "p97_5")})
        pl_module.log_dict(scalars, on_step=False, on_epoch=True, rank_zero_only=True)
        if trainer.is_global_zero:
            write_json_atomic(
                self._directory / STATS_FILE, {"tasks": self._task_names, "every_n_steps": self.every_n_steps, "probes": self.history}
            )

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints, so a resumed run's statistics cover the whole run."""
        return {"history": self.history, "epoch_start": self._epoch_start}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self._epoch_start = int(state_dict.get("epoch_start", len(self.history)))

    def record_fields(self) -> dict[str, Any]:
        """The ``gradient_statistics`` section of the run record."""
        return {"gradient_statistics": self.summary()} if self.history else {}
