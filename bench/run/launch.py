"""``mtlbench``: LightningCLI over :class:`MultiTaskModule` and the datamodules.

    mtlbench fit --config configs/quickstart.yaml        # train, then test the selected checkpoint
    mtlbench test --config configs/quickstart.yaml --ckpt_path PATH
    mtlbench data check ROOT                              # scan a dataset release
    mtlbench plot RUN_DIR                                 # figures of the gradient statistics
    mtlbench plot RUNS --study train_size                 # a scaling study's figure

Model selection (PROTOCOL.md: the test set is touched once): every validation logs
``val/select`` (validation Delta_m against the single-task baselines given as
``--model.selection_baseline``, else the summed validation loss); ``--checkpoint`` keeps the
epoch with the lowest value and the last one, ``--last_epochs`` the last k epochs. After fit,
each of the last k epochs is tested for the record's ``test_last_epochs_mean`` (the average
several papers report; those checkpoints are then deleted), and the selected epoch last: its
metrics are the run's ``test`` metrics.

The datamodule declares the tasks; they are linked into the model at instantiation, so no task
name is written anywhere else. Errors a user can fix (a wrong backbone name, a missing weights
file or dataset folder) end the run with one line naming the culprit and the fix.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI

from mtlbench.bench.run.budget import begin_run
from mtlbench.bench.run.callbacks import LastEpochs, MidEpochCheckpoint, RunRecord, StepCost, TimeBudget
from mtlbench.bench.run.checkpoints import check_checkpoint, differing_keys, resumable_checkpoint, stored_hyperparameters
from mtlbench.bench.run.console import take_verbose_flag
from mtlbench.bench.run.guard import RESUME_ENV, guarded
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.datamodules import DenseDataModule
from mtlbench.leaderboards.records import selected_validation
from mtlbench.leaderboards.untrusted import load_json

SELECTION_MONITOR = "val/select"
LIGHTNING_CKPT_KEYWORDS = ("last", "best", "hpc")  # --ckpt_path values Lightning resolves itself


class MtlbenchCLI(LightningCLI):
    """LightningCLI with the task link, a run record on every run, the selection checkpoints
    (``--checkpoint``, ``--last_epochs``) and ``--test_after_fit``."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
        begin_run()  # this run's time budget (bench/run/budget.py)
        super().__init__(
            MultiTaskModule,
            DenseDataModule,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False},  # main() prints the one line that matters
            # the plugin as a class path, not an instance: the config it is part of can be saved
            trainer_defaults={
                "callbacks": [StepCost(), TimeBudget(), RunRecord()],
                "plugins": [{"class_path": "mtlbench.bench.run.checkpoints.AtomicCheckpointIO"}],
            },
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.tasks", "model.tasks", apply_on="instantiate")
        parser.add_argument("--test_after_fit", type=bool, default=True, help="after fit, test the last epochs and then the selected one")
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int | None,
            default=None,
            help="also write last.ckpt every N training steps, so a killed run resumes mid-epoch (default: at epoch ends only)",
        )
        # A resumed run writes its checkpoints under their own names again (no 'last-v1.ckpt'):
        # the folder is the run's, and last.ckpt is always its newest state.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        selected = {"monitor": SELECTION_MONITOR, "mode": "min", "filename": "best-{epoch}", "save_last": True}
        selected["enable_version_counter"] = False
        parser.set_defaults({f"checkpoint.{key}": value for key, value in selected.items()})
        parser.add_lightning_class_args(LastEpochs, "last_epochs")
        last = {"monitor": "epoch", "mode": "max", "save_top_k": 10, "filename": "epoch-{epoch}", "save_weights_only": True}
        last["enable_version_counter"] = False
        parser.set_defaults({f"last_epochs.{key}": value for key, value in last.items()})

    def _instantiate_trainer(self, config: dict, callbacks: list) -> Trainer:
        if config.get("enable_checkpointing") is False:  # no checkpoints: the final weights are tested
            callbacks = [callback for callback in callbacks if not isinstance(callback, ModelCheckpoint)]
        elif (every := self._get(self.config, "checkpoint_every_n_steps")) is not None:
            callbacks = [*callbacks, MidEpochCheckpoint(every)]  # after the probe: its step is in the checkpoint
        # the checkpoint that writes last.ckpt saves last, so last.ckpt holds every other
        # checkpoint callback's state after its save of the same epoch (a resume knows those files)
        callbacks = sorted(callbacks, key=lambda callback: isinstance(callback, ModelCheckpoint) and bool(callback.save_last))
        return super()._instantiate_trainer(config, callbacks)

    def _resolved_config(self) -> dict:
        parser = self._parser(self.subcommand)
        config = self.config[self.subcommand] if self.subcommand else self.config
        return json.loads(parser.dump(config, format="json", skip_check=True))

    def _attach_config(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunRecord):
                callback.config = self._resolved_config()

    def before_instantiate_classes(self) -> None:
        if self.subcommand == "fit":
            self._resume_interrupted_run()
            self._resume_in_run_folder()

    def _csv_logger_args(self):
        """The init args of the fit's first logger that writes ``save_dir/name/version_<n>``."""
        loggers = self.config["fit"]["trainer"].get("logger")
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init = getattr(logger, "init_args", None)
            if init is not None and getattr(init, "save_dir", None) and hasattr(init, "version"):
                return init
        return None

    def _resume_interrupted_run(self) -> None:
        """Run again, a fit whose last run folder holds the record of a run that was killed (status
        ``running``, its process gone from this host) continues that run in its folder from its
        last readable checkpoint, or starts it afresh there without one. The decision is made once,
        on the first process, and handed to DDP's other processes through the environment."""
        config, init = self.config["fit"], self._csv_logger_args()
        if config.get("ckpt_path") or init is None or init.version is not None:
            return
        decided = os.environ.get(RESUME_ENV)
        first = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
        if decided is None and first:
            decided = json.dumps(interrupted_run(Path(init.save_dir) / str(init.name or "")))
            os.environ[RESUME_ENV] = decided  # for DDP's processes; main() removes it when the command ends
        plan = json.loads(decided) if decided else None
        if plan:
            init.version, config["ckpt_path"] = plan["version"], plan["checkpoint"]
            if first:
                print(
                    f"mtlbench: continuing the interrupted run in {plan['folder']} from {plan['checkpoint'] or 'its start'}",
                    file=sys.stderr,
                )

    def _resume_in_run_folder(self) -> None:
        """``fit --ckpt_path RUN/checkpoints/X.ckpt`` continues in RUN: a logger writing to RUN's
        parent with no version set gets RUN's version, so the resumed run's logs and record
        replace the interrupted run's instead of starting ``version_<n+1>``."""
        path, init = self.config["fit"].get("ckpt_path"), self._csv_logger_args()
        if not path or path in LIGHTNING_CKPT_KEYWORDS or init is None or init.version is not None:
            return
        run_dir = Path(path).resolve().parent.parent
        if Path(path).resolve().parent.name != "checkpoints" or not run_dir.name.startswith("version_"):
            return
        if (Path(init.save_dir) / str(init.name or "")).resolve() == run_dir.parent:
            init.version = int(run_dir.name.removeprefix("version_"))

    def _parse_ckpt_path(self) -> None:
        """Check an explicit ``--ckpt_path`` before anything reads it. LightningCLI would merge
        the checkpoint's stored ``hyper_parameters`` into the config (and so import and call what
        they name); here a checkpoint carries weights and state only: the run's configuration
        comes from its command and config files. Stored hyper-parameters (mtlbench writes none;
        other Lightning code does) are read as plain data, compared with the command's model
        config and ignored, with one note naming the keys that differ."""
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path is None or path in LIGHTNING_CKPT_KEYWORDS:
            return
        check_checkpoint(Path(path))
        stored = stored_hyperparameters(Path(path))
        if not stored or os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
            return
        command = json.loads(self.parser.dump(self.config, format="json", skip_check=True)).get(subcommand, {}).get("model", {})
        differing = differing_keys(stored, command)
        if differing:
            print(
                f"mtlbench: note: checkpoint {path} carries hyper-parameters that differ from this command's "
                f"({differing}); ignored: a run's configuration comes from its command and config files only",
                file=sys.stderr,
            )

    def before_fit(self) -> None:
        self._attach_config()

    def before_validate(self) -> None:
        self._attach_config()

    def before_test(self) -> None:
        self._attach_config()

    def _checkpoints(self, monitor: str) -> list[ModelCheckpoint]:
        return [cb for cb in self.trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor == monitor]

    def _same_weights_as(self, selected: str | None, epochs: dict[str, int]) -> int | None:
        """The last epoch whose checkpoint was written at the same training step as the selected
        one (the same weights: its test would repeat the selected one's), or None; decided by the
        process that wrote the files and shared with the others, which test alike."""
        same = None
        if selected is not None and self.trainer.is_global_zero:
            steps = getattr(self.trainer.strategy.checkpoint_io, "saved_steps", {})
            step = steps.get(str(Path(selected)))
            same = next((epoch for path, epoch in epochs.items() if step is not None and steps.get(str(Path(path))) == step), None)
        return self.trainer.strategy.broadcast(same)

    def after_fit(self) -> None:
        if not self.config[self.subcommand].get("test_after_fit", True) or self.trainer.interrupted:
            return
        record = next((cb for cb in self.trainer.callbacks if isinstance(cb, RunRecord)), None)
        selected = next((cb.best_model_path for cb in self._checkpoints(SELECTION_MONITOR) if cb.best_model_path), None)
        repeated: list[str] = []  # last-epoch checkpoints whose test is the selected one's
        for keeper in self._checkpoints("epoch"):
            epochs = {path: int(score) for path, score in keeper.best_k_models.items()}  # the monitored value is the epoch
            if record is not None:
                record.keep_last_epochs(set(epochs.values()))
            same = self._same_weights_as(selected, epochs) if record is not None else None
            for path in sorted(epochs, key=epochs.get):
                if not Path(path).is_file():  # tested, then deleted, by an earlier fit of this run (continued since)
                    if record is not None and epochs[path] not in record.tested_epochs() and self.trainer.is_global_zero:
                        print(
                            f"mtlbench: epoch {epochs[path]}'s weights are gone ({path}) and no record of this run holds "
                            "their test metrics: test_last_epochs_mean leaves that epoch out",
                            file=sys.stderr,
                        )
                    continue
                if epochs[path] == same:  # the selected checkpoint's test gives its metrics (RunRecord.also_last_epoch)
                    record.also_last_epoch = same
                    repeated.append(path)
                    continue
                if record is not None:
                    record.evaluating = ("last_epoch", epochs[path])
                self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=path, verbose=False)
                if self.trainer.is_global_zero:
                    Path(path).unlink(missing_ok=True)  # its metrics are recorded; keep disk use flat in sweeps
        if record is not None:
            record.evaluating = "selected"
            record.record["selection"] = _selection_summary(record.record, self.model, selected)
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=selected)
        if self.trainer.is_global_zero:
            for path in repeated:
                Path(path).unlink(missing_ok=True)
        if record is not None and record.path is not None and self.trainer.is_global_zero:
            print(f"run record: {record.path}")
        self._finish_loggers()

    def after_test(self) -> None:
        self._finish_loggers()

    def _finish_loggers(self) -> None:
        """End runs that loggers hold open (W&B), so the next run in this process gets its own."""
        for logger in self.trainer.loggers:
            if hasattr(logger, "finish"):
                logger.finish()


def _selection_summary(record: dict, model: MultiTaskModule, checkpoint: str | None) -> dict:
    """How the tested checkpoint was chosen, for the run record."""
    history = record.get("metrics", {}).get("val", [])
    # the same rule as ModelCheckpoint's (first lowest, NaN never best) and the leaderboard's;
    # with checkpointing off, the final weights are what is tested
    best = selected_validation(record) if checkpoint is not None else (history[-1] if history else None)
    return {
        "monitor": SELECTION_MONITOR,
        "criterion": "val_delta_m" if model.selection_baseline is not None else "val_loss",
        "baseline": model.selection_baseline,
        "epoch": best["epoch"] if best else None,
        "score": best.get("select") if best else None,
        "checkpoint": checkpoint,
    }


def _process_gone(record: dict) -> bool:
    """Whether the process that wrote ``record`` has ended (only knowable on its own host)."""
    environment = record.get("environment")
    pid = environment.get("pid") if isinstance(environment, dict) else None
    if type(pid) is not int or pid <= 0 or environment.get("host") != platform.node():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return pid == os.getpid()  # a pid reused by this very process: the writer is gone


def interrupted_run(log_root: Path) -> dict | None:
    """``{"folder", "version", "checkpoint"}`` of the newest ``version_<n>`` under ``log_root``
    when its record says ``running`` and its process is gone, else ``None``. Without a readable
    checkpoint the folder is cleared, to be started afresh."""
    versions = [path for path in log_root.glob("version_*") if path.name.removeprefix("version_").isdigit()]
    if not versions:
        return None
    folder = max(versions, key=lambda path: int(path.name.removeprefix("version_")))
    try:
        record = load_json(folder / "results.json", folder, what="run record")
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("status") != "running" or not _process_gone(record):
        return None
    checkpoint, skipped = resumable_checkpoint(folder)
    for line in skipped:
        print(f"mtlbench: skipped unreadable checkpoint: {line}", file=sys.stderr)
    if checkpoint is None:
        shutil.rmtree(folder)
    return {
        "folder": str(folder),
        "version": int(folder.name.removeprefix("version_")),
        "checkpoint": str(checkpoint) if checkpoint else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Configure and run one LightningCLI command (``fit``, ``validate``, ``test``, ...); returns the
    process exit status (2 for a user error, 3 for a run that diverged)."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = take_verbose_flag(given)
    return guarded(lambda: MtlbenchCLI(args=None if argv is None and args == given else args), args)


if __name__ == "__main__":
    sys.exit(main())
