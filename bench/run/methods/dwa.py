"""Dynamic weight average (DWA), Liu, Johns & Davison (MTAN), CVPR 2019, via torchjd's ``DWA``."""

from __future__ import annotations

from torchjd.scalarization import DWA as _DWA

from mtlbench.bench.run.methods.state import MethodStateError, Slot, Value
from mtlbench.bench.run.methods.torchjd_adapter import TorchJDScalarizer


class DynamicWeightAverage(TorchJDScalarizer):
    """w_k = T softmax_k(r_k / temperature), r_k = ratio of task k's mean loss over the last two
    epochs; w = 1 for the first two epochs. torchjd counts epochs by the ``step()`` calls the
    training step makes at each epoch end.

    Args:
        temperature: softmax temperature (2 in the paper).

    Example (the first two epochs weigh every task 1):
        >>> import torch
        >>> method = DynamicWeightAverage(); method.bind(2)
        >>> method(torch.tensor([1.0, 2.0]))
        tensor(3.)
    """

    short_name = "DWA"
    hyper_names = ("temperature",)

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        self.temperature = temperature

    def make_inner(self) -> _DWA:
        return _DWA(temperature=self.temperature)

    def state_slots(self) -> dict[str, Slot]:
        # this epoch's running loss sum and batch count; the mean losses of the last two epochs
        task = Slot("tensor", ("T",), optional=True)
        return {"loss_sum": task, "batches": Slot("count"), "older_mean": task, "newer_mean": task}

    def state_values(self) -> dict[str, Value]:
        inner = self.bound_inner()
        history = [None, None, *inner._previous_averages][-2:]
        return {"loss_sum": inner._loss_sum, "batches": inner._n_batches, "older_mean": history[0], "newer_mean": history[1]}

    def load_state_values(self, values: dict[str, Value]) -> None:
        if values["older_mean"] is not None and values["newer_mean"] is None:
            raise MethodStateError("holds DWA state with an older epoch mean but no newer one; the run expects the newer one first")
        inner = self.bound_inner()
        inner._loss_sum = values["loss_sum"]
        inner._n_batches = values["batches"]
        inner._previous_averages = [mean for mean in (values["older_mean"], values["newer_mean"]) if mean is not None]

    def on_epoch_end(self) -> None:
        if self.inner is not None:
            self.inner.step()
