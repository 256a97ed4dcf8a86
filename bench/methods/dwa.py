"""Dynamic weight average (DWA), Liu, Johns & Davison (MTAN), CVPR 2019, via torchjd's ``DWA``."""

from __future__ import annotations

from torchjd.scalarization import DWA as _DWA

from bench.methods.torchjd_adapter import TorchJDScalarizer


class DynamicWeightAverage(TorchJDScalarizer):
    """w_k = T softmax_k(r_k / temperature), r_k = ratio of task k's mean loss over the last two
    epochs; w = 1 for the first two epochs. torchjd counts epochs by the ``step()`` calls the
    training step makes at each epoch end.

    Args:
        temperature: softmax temperature (2 in the paper).
    """

    short_name = "DWA"
    hyper_names = ("temperature",)

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        self.temperature = temperature

    def make_inner(self) -> _DWA:
        return _DWA(temperature=self.temperature)

    def on_epoch_end(self) -> None:
        if self.inner is not None:
            self.inner.step()
