"""The Gramian ``J J^T`` in float64, and its equilibration, for the aggregators' solvers.

Task gradients can differ in norm by 10^4 and more (depth in millimetres against a
cross-entropy), so their Gramian spans 10^8 and more. In float32 its small eigenvalues are
rounding noise: a pseudo-inverse drops them (IMTL-G) and absolute thresholds zero whole updates
(CAGrad). Every Gramian-based aggregator therefore gets its weights from a Gramian accumulated
in float64 (the products of float32 entries are exact in float64, so only the sums round) and
solves in float64; the update ``w @ J`` stays in the Jacobian's dtype. The Gramian is ``T x T``,
so this costs nothing next to the backward passes that produce ``J``.

Where a method's weights transform covariantly under task rescaling (``w(D C D) = D^{-1}
w'(C)``), it is solved on the cosine matrix ``C`` (:func:`equilibrate`), whose conditioning
depends on the angles between the tasks only, not on their scales.
"""

from __future__ import annotations

import torch
from torchjd.linalg import DualConeProjector, QuadprogProjector

COLUMNS_PER_CHUNK = 1 << 18  # float64 copies of at most this many Jacobian columns at once (6 MB for 3 tasks)


def gramian64(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix @ matrix.T`` accumulated in float64, over chunks of columns.

    Example:
        >>> gramian64(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        tensor([[ 5., 11.],
                [11., 25.]], dtype=torch.float64)
    """
    rows = matrix.shape[0]
    flat = matrix.reshape(rows, -1)
    gramian = torch.zeros(rows, rows, dtype=torch.float64, device=matrix.device)
    for start in range(0, flat.shape[1], COLUMNS_PER_CHUNK):
        block = flat[:, start : start + COLUMNS_PER_CHUNK].double()
        gramian += block @ block.T
    return gramian


def equilibrate(gramian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C, s)`` with ``gramian = diag(s) C diag(s)``: ``s`` the task-gradient norms, ``C`` their
    cosines. A zero task gradient gets ``s = 1`` and a zero row and column in ``C``.

    Example:
        >>> cosines, scale = equilibrate(torch.tensor([[4.0, 2.0], [2.0, 9.0]], dtype=torch.float64))
        >>> scale.tolist(), round(cosines[0, 1].item(), 4)
        ([2.0, 3.0], 0.3333)
    """
    diagonal = gramian.diagonal().clamp(min=0)
    scale = torch.where(diagonal > 0, diagonal.sqrt(), torch.ones_like(diagonal))
    cosines = gramian / scale[:, None] / scale[None, :]
    return 0.5 * (cosines + cosines.T), scale


class EquilibratedProjector(DualConeProjector):
    """torchjd's dual-cone projection (UPGrad, DualProj) solved on the cosines.

    The projection weights ``v = argmin_{v >= u} v^T G v`` of ``J^T u`` transform covariantly:
    with ``G = D C D`` and ``y = D v`` the problem is ``min_{y >= D u} y^T C y``. torchjd's
    quadprog projector adds ``reg_eps`` times the identity to the trace-normalised Gramian, which
    swamps a task whose share of the trace is below it (10^-8 at a norm ratio of 10^4); on the
    cosines the same ridge is relative to every task's own norm, and is set far smaller.
    """

    def __init__(self, reg_eps: float = 1e-12) -> None:
        self.inner = QuadprogProjector(norm_eps=0.0, reg_eps=reg_eps)

    def __call__(self, U: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        cosines, scale = equilibrate(G.double())
        return self.inner(U.double() * scale, cosines) / scale

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reg_eps={self.inner.reg_eps})"
