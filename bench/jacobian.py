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

Under DDP (N processes, each on an equal shard of the batch) the step is exact: it equals one
process on the whole batch. The global task losses are the rank means of the local ones (a
T-float all-reduce) and every method sees those. Then, per space:

- ``parameters``: the global task gradients are the rank means of the local ones, so the
  ``[T, n]`` Jacobian is all-reduced (T times the traffic of plain DDP, bucketed, in the
  gradient's dtype) and every rank runs the same aggregator on the same input;
- ``features``: the representation is per sample, so the global Jacobian is the local ones side
  by side (scaled by 1/N) and the global Gramian is the sum of the local Gramians over N^2 (a
  T x T all-reduce). A method of the form ``J^T w(G)`` gives its weights from that Gramian and
  each rank back-propagates its own ``J_r^T w``; any other method has the Jacobian gathered,
  runs on the whole of it, and each rank back-propagates its slice. The parameter gradients
  are then averaged over ranks, as DDP's reducer would (which aggregators bypass: they never
  call ``manual_backward``).

Randomised methods draw from generators seeded by the step (:func:`bench.distributed.step_rng`),
so every rank draws the same numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from bench.distributed import Collective
from bench.methods import GradientAggregator


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


@dataclass
class AggregatedStep:
    """What one aggregated backward leaves besides the ``.grad`` it wrote."""

    losses: torch.Tensor  # this rank's task losses [T], attached to the graph
    global_losses: torch.Tensor  # the rank means [T], detached float32
    jacobian: torch.Tensor | None  # the global parameter-space Jacobian [T, n] (parameters space only)
    update: torch.Tensor | None  # the update of the shared parameters [n] (parameters space only)


MethodContext = Callable[[], contextlib.AbstractContextManager]


def feature_update(method: GradientAggregator, rows: torch.Tensor, losses: torch.Tensor, collective: Collective) -> torch.Tensor:
    """This rank's slice of the aggregated representation gradient, scaled so that the rank
    mean of the back-propagated slices is the gradient one process would get on the whole batch.

    ``rows``: this rank's ``[T, m]`` task gradients of its own shard's representation.
    """
    world = collective.world_size
    if world == 1:
        return method(rows, losses)
    gramian = collective.sum(rows @ rows.T) / world**2
    weights = method.weights_from_gramian(gramian, losses)
    if weights is not None:  # J^T w = (1/N) [J_1^T w, ..., J_N^T w]; the rank mean supplies the 1/N
        return weights.to(rows.dtype) @ rows
    everything = collective.gather(rows, dim=1) / world
    return method(everything, losses).view(world, -1)[collective.rank] * world


def aggregated_backward(
    net: nn.Module,
    method: GradientAggregator,
    images: torch.Tensor,
    targets: dict[str, torch.Tensor],
    task_losses: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor],
    collective: Collective,
    batched: bool,
    method_context: MethodContext,
) -> AggregatedStep:
    """Per-task gradients -> (reduced over ranks) -> aggregator -> ``.grad`` of every parameter.

    ``net`` is a :class:`models.MultiTaskNet`; ``method_context`` is entered around every call
    of the method (float32, synchronised random draws).
    """
    features = net.encode(images)
    detached = features.detach().requires_grad_()
    losses = task_losses(net.decode(detached, size=images.shape[-2:]), targets)
    head_params = [p for name in net.task_names for p in net.task_parameters(name)]
    feature_jacobian = head_backward(losses, detached, head_params, batched)
    global_losses = collective.mean(losses.detach().float())
    if method.space == "features":
        with method_context():
            update = feature_update(method, feature_jacobian.float(), global_losses, collective)
        features.backward(update.view_as(features).to(features.dtype))
        collective.mean_grads_(list(net.parameters()))
        return AggregatedStep(losses, global_losses, None, None)
    shared = list(net.shared_parameters())
    grad_outputs = feature_jacobian.view(len(global_losses), *features.shape).to(features.dtype)
    jacobian = task_gradients(features, shared, grad_outputs, batched, retain_graph=False)
    collective.mean_([jacobian, *(p.grad for p in head_params if p.grad is not None)])
    with method_context():
        update = method(jacobian.float(), global_losses)
    write_grads(shared, update)
    return AggregatedStep(losses, global_losses, jacobian, update)


def shared_gradient_norms(losses: torch.Tensor, params: Sequence[nn.Parameter], collective: Collective, batched: bool) -> torch.Tensor:
    """Norms of the global task gradients with respect to ``params`` (GradNorm's ``||grad_W L_k||``);
    the graph is kept for the backward pass that follows."""
    eye = torch.eye(losses.shape[0], dtype=losses.dtype, device=losses.device)
    rows = task_gradients(losses, params, eye, batched, retain_graph=True)
    collective.mean_([rows])
    return rows.norm(dim=1)
