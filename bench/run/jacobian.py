"""The Jacobian producer: the only place that knows how per-task gradients are obtained.

Per-step cost is kept at the floor: one forward pass; the heads are back-propagated once per
task to get each task's gradient of the shared representation z (cheap: heads only); then
either

- ``features`` space: the aggregated z-gradient is back-propagated once through the encoder
  (the cost of a single backward pass, as EW), or
- ``parameters`` space: each task's z-gradient is back-propagated through the encoder
  (T encoder backward passes, batched with ``is_grads_batched`` where that is faster, i.e. on
  GPUs; sequential with a retained graph otherwise).

Head gradients come from the same head backward passes, so they are computed once. The
``[T, n]`` Jacobian is written in place into a buffer kept across steps (:class:`JacobianBuffer`)
and the update becomes ``.grad`` as views, without copies; methods of the form ``J^T w`` get
their weights from the Gramian computed once (:func:`combine`), so the Jacobian is read twice
per step (``mtlbench perf`` measures the result against the floor and the naive loop). Steps
that reuse weights (``refresh_every``) take :func:`reweighted_losses` instead: one backward pass.
A Jacobian larger than allowed is replaced by its Gramian accumulated over groups of parameters
(:func:`chunked_gramian`).

Under DDP (N processes, each on an equal shard of the batch) the step is exact: it equals one
process on the whole batch. The global task losses are the rank means of the local ones (a
T-float all-reduce) and every method sees those. Then, per space:

- ``parameters``: the global task gradients are the rank means of the local ones, so the
  ``[T, n]`` Jacobian is all-reduced (T times the traffic of plain DDP, bucketed, in the
  gradient's dtype) and every rank runs the same aggregator on the same input;
- ``features``: the representation is per sample, so the global Jacobian is the local ones side
  by side (scaled by 1/N) and the global Gramian is the sum of the local Gramians over N^2 (a
  T x T all-reduce, in float64 like every Gramian here: :mod:`mtlbench.bench.run.methods.gramian`). A
  method of the form ``J^T w(G)`` gives its weights from that Gramian and
  each rank back-propagates its own ``J_r^T w``; any other method has the Jacobian gathered
  (its columns in the global batch's sample order), runs on the whole of it, and each rank
  back-propagates its own samples' part. The parameter gradients
  are then averaged over ranks, as DDP's reducer would (which aggregators bypass: they never
  call ``manual_backward``).

Randomised methods draw from generators seeded by the step (:func:`mtlbench.bench.run.distributed.step_rng`),
so every rank draws the same numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mtlbench.bench.run.distributed import Collective
from mtlbench.bench.run.errors import MethodConfigError
from mtlbench.bench.run.methods import GradientAggregator
from mtlbench.bench.run.methods.gramian import gramian64

JACOBIAN_DTYPE_BYTES = 4  # aggregators work on a float32 Jacobian


def jacobian_bytes(tasks: int, width: int) -> int:
    """Memory of a ``[tasks, width]`` Jacobian, as the producer holds it."""
    return tasks * width * JACOBIAN_DTYPE_BYTES


def jacobian_fits(tasks: int, width: int, max_bytes: float | None) -> bool:
    """Whether the whole Jacobian may be held (``max_bytes`` None: no limit); else it is chunked."""
    return max_bytes is None or jacobian_bytes(tasks, width) <= max_bytes


def _fill(out: torch.Tensor, row: slice | int, grads: Sequence[torch.Tensor | None], sizes: Sequence[int]) -> None:
    """Copy per-input gradients into ``out[row]``, input after input (zeros where unused)."""
    offset = 0
    for grad, size in zip(grads, sizes, strict=True):
        target = out[row, offset : offset + size]
        if grad is None:
            target.zero_()
        else:
            target.copy_(grad.reshape(target.shape))
        offset += size


def task_gradients(
    outputs: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    grad_outputs: torch.Tensor,
    batched: bool,
    retain_graph: bool = True,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rows ``k`` = gradient of ``<outputs, grad_outputs[k]>`` with respect to ``inputs``,
    flattened side by side: shape ``[K, sum numel(inputs)]`` (zeros where unused), written
    into ``out`` when given (a buffer kept across steps: no allocation, no concatenation).

    Example:
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> y = torch.stack([x[0] * x[1], x[0] + x[1]])
        >>> task_gradients(y, [x], torch.eye(2), batched=False)
        tensor([[2., 1.],
                [1., 1.]])
    """
    count = grad_outputs.shape[0]
    sizes = [tensor.numel() for tensor in inputs]
    if out is None:
        out = torch.empty(count, sum(sizes), dtype=inputs[0].dtype, device=inputs[0].device)
    elif out.shape != (count, sum(sizes)):
        raise ValueError(f"task_gradients: out has shape {tuple(out.shape)}, expected {(count, sum(sizes))}")
    if batched:
        try:  # the graph is kept so that the loop below can still run if vmap cannot
            grads = torch.autograd.grad(
                outputs, inputs, grad_outputs=grad_outputs, retain_graph=True, allow_unused=True, is_grads_batched=True
            )
            _fill(out, slice(None), grads, sizes)
            return out
        except RuntimeError:
            pass  # an operation without a batching rule: fall back to one backward per row
    for k in range(count):
        keep = retain_graph or k < count - 1
        grads = torch.autograd.grad(outputs, inputs, grad_outputs=grad_outputs[k], retain_graph=keep, allow_unused=True)
        _fill(out, k, grads, sizes)
    return out


class JacobianBuffer:
    """The ``[T, n]`` Jacobian's storage, allocated once and refilled every step (a fresh
    allocation of that size costs page faults on every CPU step). A step's Jacobian is valid
    until the next step starts."""

    def __init__(self) -> None:
        self._tensor: torch.Tensor | None = None

    @property
    def allocated(self) -> bool:
        return self._tensor is not None

    def get(self, rows: int, width: int, like: torch.Tensor) -> torch.Tensor:
        tensor = self._tensor
        if tensor is None or tensor.shape != (rows, width) or tensor.dtype != like.dtype or tensor.device != like.device:
            self._tensor = tensor = torch.empty(rows, width, dtype=like.dtype, device=like.device)
        return tensor


def write_grads(params: Sequence[nn.Parameter], flat: torch.Tensor) -> None:
    """Unflatten ``flat`` into the ``.grad`` of ``params`` (accumulating, as backward does); an
    empty ``.grad`` becomes a view of ``flat``, with no copy."""
    offset = 0
    for param in params:
        chunk = flat[offset : offset + param.numel()].view_as(param).to(param.dtype)
        param.grad = chunk if param.grad is None else param.grad + chunk
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
    jacobian: torch.Tensor | None  # the global parameter-space Jacobian [T, n] (parameters space, unchunked)
    update: torch.Tensor | None  # the update of the shared parameters [n] (parameters space, unchunked)
    weights: torch.Tensor | None  # the task weights w of an update J^T w (methods that report them)


MethodContext = Callable[[], contextlib.AbstractContextManager]


def combine(method: GradientAggregator, jacobian: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The method's update of ``jacobian`` and, for methods of the form ``J^T w``, the weights.

    Weights that depend on ``J`` only through ``J J^T`` come from the Gramian, computed once
    here: the ``[T, n]`` Jacobian is read twice per step (Gramian, then ``w @ J``) whatever the
    method, where a solver given ``J`` may read it more often (Nash-MTL's norm of ``w @ J``)."""
    if not method.weighted:
        return method(jacobian, losses), None
    weights = method.weights_from_gramian(gramian64(jacobian), losses)
    if weights is None:
        weights = method.weights(jacobian, losses)
    return weights.to(jacobian.dtype) @ jacobian, weights


def feature_update(
    method: GradientAggregator, rows: torch.Tensor, losses: torch.Tensor, collective: Collective, samples: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This rank's slice of the aggregated representation gradient, scaled so that the rank
    mean of the back-propagated slices is the gradient one process would get on the whole
    batch, and the task weights when the method reports them.

    ``rows``: this rank's ``[T, m]`` task gradients of its own shard's representation, whose
    ``samples`` samples each take ``m / samples`` columns.
    """
    world = collective.world_size
    if world == 1:
        return combine(method, rows, losses)
    gramian = collective.sum(gramian64(rows)) / world**2
    weights = method.weights_from_gramian(gramian, losses)
    if weights is not None:  # J^T w = (1/N) [J_1^T w, ..., J_N^T w]; the rank mean supplies the 1/N
        return weights.to(rows.dtype) @ rows, weights
    # the whole Jacobian with its columns in the global batch's sample order (a method may treat
    # samples or coordinates differently: GradDrop draws per coordinate)
    local = rows.view(rows.shape[0], samples, -1)
    everything = collective.gather_samples(local, dim=1).flatten(1) / world
    update = method(everything, losses).view(samples * world, -1)
    return collective.own_samples(update, dim=0).flatten() * world, None


def parameter_groups(params: Sequence[nn.Parameter], max_entries: int) -> list[list[nn.Parameter]]:
    """Consecutive groups of ``params`` of at most ``max_entries`` entries (a larger tensor alone).

    Example:
        >>> sizes = [len(g) for g in parameter_groups([nn.Parameter(torch.zeros(n)) for n in (3, 3, 5, 1)], 6)]
        >>> sizes
        [2, 2]
    """
    groups: list[list[nn.Parameter]] = []
    filled = max_entries
    for param in params:
        if filled + param.numel() > max_entries:
            groups.append([])
            filled = 0
        groups[-1].append(param)
        filled += param.numel()
    return groups


def chunked_gramian(
    features: torch.Tensor,
    grad_outputs: torch.Tensor,
    shared: Sequence[nn.Parameter],
    max_bytes: float,
    collective: Collective,
    batched: bool,
) -> torch.Tensor:
    """The global parameter-space Gramian ``J J^T`` accumulated over groups of parameters, with at
    most ``max_bytes`` of Jacobian alive at once (one backward per task and group, graph kept)."""
    rows = grad_outputs.shape[0]
    gramian = torch.zeros(rows, rows, dtype=torch.float64, device=features.device)
    for group in parameter_groups(shared, max(1, int(max_bytes // jacobian_bytes(rows, 1)))):
        block = task_gradients(features, group, grad_outputs, batched, retain_graph=True).float()
        collective.mean_([block])
        gramian += gramian64(block)
    return gramian


def aggregated_backward(
    net: nn.Module,
    method: GradientAggregator,
    images: torch.Tensor,
    targets: dict[str, torch.Tensor],
    task_losses: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor],
    collective: Collective,
    batched: bool,
    method_context: MethodContext,
    buffer: JacobianBuffer | None = None,
    max_jacobian_bytes: float | None = None,
) -> AggregatedStep:
    """Per-task gradients -> (reduced over ranks) -> aggregator -> ``.grad`` of every parameter.

    ``net`` is a :class:`mtlbench.models.MultiTaskNet`; ``method_context`` is entered around every call
    of the method (float32, synchronised random draws); ``buffer`` keeps the Jacobian's storage
    across steps. When the ``[T, n]`` Jacobian would exceed ``max_jacobian_bytes``, a method of
    the form ``J^T w(J J^T)`` gets its Gramian by groups of parameters (:func:`chunked_gramian`)
    and its update from one more backward pass of ``sum_k w_k L_k``; any other method is refused.
    """
    features = net.encode(images)
    detached = features.detach().requires_grad_()
    losses = task_losses(net.decode(detached, size=images.shape[-2:]), targets)
    head_params = [p for name in net.task_names for p in net.task_parameters(name)]
    feature_jacobian = head_backward(losses, detached, head_params, batched)
    global_losses = collective.mean(losses.detach().float())
    if method.space == "features":
        with method_context():
            update, weights = feature_update(method, feature_jacobian.float(), global_losses, collective, features.shape[0])
        features.backward(update.view_as(features).to(features.dtype))
        collective.mean_grads_(list(net.parameters()))
        return AggregatedStep(losses, global_losses, None, None, weights)
    shared = list(net.shared_parameters())
    count = len(global_losses)
    grad_outputs = feature_jacobian.view(count, *features.shape).to(features.dtype)
    width = sum(p.numel() for p in shared)
    if not jacobian_fits(count, width, max_jacobian_bytes):
        gramian = chunked_gramian(features, grad_outputs, shared, max_jacobian_bytes, collective, batched)
        with method_context():
            weights = method.weights_from_gramian(gramian, global_losses)
        if weights is None:
            raise MethodConfigError(
                f"the {count} x {width} Jacobian ({jacobian_bytes(count, width) / 2**20:.0f} MB) exceeds the memory allowed for it "
                f"({max_jacobian_bytes / 2**20:.0f} MB) and {method} needs all of it (its update is not J^T w(J J^T)); "
                "raise jacobian_memory_mb, or use space features"
            )
        features.backward((weights.to(grad_outputs.dtype) @ grad_outputs.flatten(1)).view_as(features))
        collective.mean_grads_(list(net.parameters()))
        return AggregatedStep(losses, global_losses, None, None, weights)
    out = buffer.get(count, width, shared[0]) if buffer is not None else None
    jacobian = task_gradients(features, shared, grad_outputs, batched, retain_graph=False, out=out)
    collective.mean_([jacobian, *(p.grad for p in head_params if p.grad is not None)])
    with method_context():
        update, weights = combine(method, jacobian.float(), global_losses)
    write_grads(shared, update)
    return AggregatedStep(losses, global_losses, jacobian, update, weights)


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(factor)
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (factor,) = ctx.saved_tensors
        return grad * factor.to(grad.dtype), None


def scale_gradient(tensor: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``tensor`` unchanged, its gradient multiplied by ``factor`` on the way back.

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> scale_gradient(x, torch.tensor(3.0)).sum().backward()
        >>> x.grad
        tensor([3., 3.])
    """
    return _ScaleGradient.apply(tensor, factor)


def reweighted_losses(
    net: nn.Module,
    weights: torch.Tensor,
    images: torch.Tensor,
    targets: dict[str, torch.Tensor],
    task_losses: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor],
) -> torch.Tensor:
    """The task losses ``[T]`` of one forward pass in which task ``k``'s gradient reaching the
    shared representation is scaled by ``w_k``: back-propagating their plain sum once gives the
    shared parameters ``J^T w`` (the update of a weighted aggregator with weights ``w``) and each
    head its own task's gradient, as :func:`aggregated_backward` does, at the cost of EW."""
    features = net.encode(images)
    per_task = {name: scale_gradient(features, weights[k]) for k, name in enumerate(net.task_names)}
    return task_losses(net.decode(per_task, size=images.shape[-2:]), targets)


def shared_gradient_norms(losses: torch.Tensor, params: Sequence[nn.Parameter], collective: Collective, batched: bool) -> torch.Tensor:
    """Norms of the global task gradients with respect to ``params`` (GradNorm's ``||grad_W L_k||``);
    the graph is kept for the backward pass that follows."""
    eye = torch.eye(losses.shape[0], dtype=losses.dtype, device=losses.device)
    rows = task_gradients(losses, params, eye, batched, retain_graph=True)
    collective.mean_([rows])
    return rows.norm(dim=1)
