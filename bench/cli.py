"""``mtlbench``: LightningCLI over :class:`MultiTaskModule` and the datamodules.

    mtlbench fit --config configs/quickstart.yaml        # train, then test the final weights
    mtlbench test --config configs/quickstart.yaml --ckpt_path PATH
    mtlbench data check ROOT                              # scan a dataset release
    mtlbench plot RUN_DIR                                 # figures of the gradient statistics

The datamodule declares the tasks; they are linked into the model at instantiation, so no task
name is written anywhere else. Errors a user can fix (a wrong backbone name, a missing weights
file or dataset folder) end the run with one line naming the culprit and the fix.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from pytorch_lightning.cli import LightningCLI

from bench.callbacks import RunRecord, StepCost
from bench.errors import MethodConfigError
from bench.module import MultiTaskModule
from datamodules import DatasetError, DenseDataModule
from models import ModelConfigError

USER_ERRORS = (ModelConfigError, DatasetError, MethodConfigError, FileNotFoundError)


class MtlbenchCLI(LightningCLI):
    """LightningCLI with the task link, a run record on every run and ``--test_after_fit``."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
        super().__init__(
            MultiTaskModule,
            DenseDataModule,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [StepCost(), RunRecord()]},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.tasks", "model.tasks", apply_on="instantiate")
        parser.add_argument("--test_after_fit", type=bool, default=True, help="after fit, evaluate the final weights on the test split")

    def _resolved_config(self) -> dict:
        parser = self._parser(self.subcommand)
        config = self.config[self.subcommand] if self.subcommand else self.config
        return json.loads(parser.dump(config, format="json", skip_check=True))

    def _attach_config(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunRecord):
                callback.config = self._resolved_config()

    def before_fit(self) -> None:
        self._attach_config()

    def before_validate(self) -> None:
        self._attach_config()

    def before_test(self) -> None:
        self._attach_config()

    def after_fit(self) -> None:
        if self.config[self.subcommand].get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule)
            record = next((cb for cb in self.trainer.callbacks if isinstance(cb, RunRecord)), None)
            if record is not None and record.path is not None:
                print(f"run record: {record.path}")


def user_error(error: BaseException) -> BaseException | None:
    """The user-fixable error behind ``error`` (jsonargparse wraps errors raised while it
    instantiates classes), or ``None`` for a genuine failure whose traceback matters."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, USER_ERRORS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the process exit status (2 for a user error).

    ``mtlbench data ...`` runs the dataset tools, ``mtlbench plot`` the gradient figures;
    everything else goes to LightningCLI.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["data"]:
            from bench.data_cli import main as data_main

            return data_main(args[1:])
        if args[:1] == ["plot"]:
            from bench.plot import main as plot_main

            return plot_main(args[1:])
        MtlbenchCLI(args=None if argv is None else args)
    except Exception as error:
        cause = user_error(error)
        if cause is None or os.environ.get("MTLBENCH_DEBUG"):
            raise
        print(f"mtlbench: error: {cause}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
