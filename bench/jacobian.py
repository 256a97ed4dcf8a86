"""The Jacobian producer: the only place that knows how per-task gradients are obtained.

Per-step cost is kept at the floor: one forward pass; the heads are back-propagated once per
task to get each task's gradient of the shared representation z (cheap: heads only); then
either

- ``features`` space: the aggregated z-gradient is back-propagated once through the encoder
  (the cost of a single backward pass, as EW), or
- ``parameters`` space: each task's z-gradient is back-propagated through the encoder
  (T encoder backward passes, batched with ``is_grads_batched`` where that is faster, i.e. on
  GPUs; sequential with a retained graph otherwise).

Head gradients come from the same head backward passes, so they are computed once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _flat(grads: Sequence[torch.Tensor | None], like: Sequence[torch.Tensor], rows: int | None) -> torch.Tensor:
    parts = []
    for grad, ref in zip(grads, like, strict=True):
        shape = (rows, ref.numel()) if rows is not None else (ref.numel(),)
        parts.append(torch.zeros(shape, dtype=ref.dtype, device=ref.device) if grad is None else grad.reshape(shape))
    return torch.cat(parts, dim=-1)


def task_gradients(
    outputs: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    grad_outputs: torch.Tensor,
    batched: bool,
    retain_graph: bool = True,
) -> torch.Tensor:
    """Rows ``k`` = gradient of ``<outputs, grad_outputs[k]>`` with respect to ``inputs``,
    flattened and concatenated: shape ``[K, sum numel(inputs)]`` (zeros where unused).

    Example:
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> y = torch.stack([x[0] * x[1], x[0] + x[1]])
        >>> task_gradients(y, [x], torch.eye(2), batched=False)
        tensor([[2., 1.],
                [1., 1.]])
    """
    if batched:
        try:  # the graph is kept so that the loop below can still run if vmap cannot
            grads = torch.autograd.grad(
                outputs, inputs, grad_outputs=grad_outputs, retain_graph=True, allow_unused=True, is_grads_batched=True
            )
            return _flat(grads, inputs, rows=grad_outputs.shape[0])
        except RuntimeError:
            pass  # an operation without a batching rule: fall back to one backward per row
    rows = []
    for k in range(grad_outputs.shape[0]):
        keep = retain_graph or k < grad_outputs.shape[0] - 1
        grads = torch.autograd.grad(outputs, inputs, grad_outputs=grad_outputs[k], retain_graph=keep, allow_unused=True)
        rows.append(_flat(grads, inputs, rows=None))
    return torch.stack(rows)


def write_grads(params: Sequence[nn.Parameter], flat: torch.Tensor) -> None:
    """Unflatten ``flat`` into the ``.grad`` of ``params`` (accumulating, as backward does)."""
    offset = 0
    for param in params:
        chunk = flat[offset : offset + param.numel()].view_as(param).to(param.dtype)
        param.grad = chunk.clone() if param.grad is None else param.grad + chunk
        offset += param.numel()
    if offset != flat.numel():
        raise ValueError(f"update has {flat.numel()} entries for {offset} parameter entries")


def head_backward(
    losses: torch.Tensor,
    detached_features: torch.Tensor,
    head_params: Sequence[nn.Parameter],
    batched: bool,
) -> torch.Tensor:
    """Back-propagate the task losses through the heads only.

    Writes each head's own task gradient into its ``.grad`` (aggregators act on the shared
    part only, as in torchjd's ``mtl_backward``) and returns the per-task gradients of the
    detached shared features, ``[T, numel(z)]``.
    """
    num_tasks = losses.shape[0]
    inputs = [detached_features, *head_params]
    rows = task_gradients(losses, inputs, torch.eye(num_tasks, dtype=losses.dtype, device=losses.device), batched, retain_graph=False)
    split = detached_features.numel()
    write_grads(head_params, rows[:, split:].sum(dim=0))
    return rows[:, :split]
