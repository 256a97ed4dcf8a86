"""Reference training steps that ``mtlbench perf`` places every method between.

- :func:`floor_step`: the least work that yields every task's gradient of the shared
  parameters: one forward pass; the heads back-propagated once per task to the detached shared
  representation; one ``autograd.grad`` per task through the encoder; nothing copied (the
  first task's gradients are stepped on, so that the step is a complete one).
- :func:`naive_step`: the loop of the common MTL libraries (LibMTL, the Nash-MTL and CAGrad
  code): a full ``backward(retain_graph=True)`` per task, the shared ``.grad`` copied into a
  freshly allocated ``[T, n]`` matrix, the combined update copied back into ``.grad``.
- :func:`feature_floor_step`: what a feature-space method (MGDA-UB) cannot avoid: EW's
  forward and single encoder backward, plus the heads back-propagated once per task.

All three end with the optimizer's step and take the model as the methods get it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mtlbench.models import MultiTaskNet

TaskLosses = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]


def _heads(net: MultiTaskNet) -> list[torch.nn.Parameter]:
    return [param for name in net.task_names for param in net.task_parameters(name)]


def _head_pass(net: MultiTaskNet, images: torch.Tensor, targets: dict[str, torch.Tensor], task_losses: TaskLosses):
    """Forward; each task's loss back-propagated through its head to the detached features."""
    features = net.encode(images)
    detached = features.detach().requires_grad_()
    losses = task_losses(net.decode(detached, size=images.shape[-2:]), targets)
    heads = _heads(net)
    feature_grads = []
    for k in range(losses.shape[0]):
        grads = torch.autograd.grad(losses[k], [detached, *heads], retain_graph=k < losses.shape[0] - 1, allow_unused=True)
        feature_grads.append(grads[0])
        for param, grad in zip(heads, grads[1:], strict=True):
            if grad is not None:
                param.grad = grad
    return features, feature_grads


def floor_step(net: MultiTaskNet, images: torch.Tensor, targets: dict[str, torch.Tensor], task_losses: TaskLosses, optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    features, feature_grads = _head_pass(net, images, targets, task_losses)
    shared = list(net.shared_parameters())
    for k, grad_output in enumerate(feature_grads):
        grads = torch.autograd.grad(features, shared, grad_output, retain_graph=k < len(feature_grads) - 1, allow_unused=True)
        if k == 0:
            for param, grad in zip(shared, grads, strict=True):
                param.grad = grad
    optimizer.step()


def feature_floor_step(
    net: MultiTaskNet, images: torch.Tensor, targets: dict[str, torch.Tensor], task_losses: TaskLosses, optimizer
) -> None:
    optimizer.zero_grad(set_to_none=True)
    features, feature_grads = _head_pass(net, images, targets, task_losses)
    features.backward(torch.stack(feature_grads).sum(dim=0))
    optimizer.step()


def naive_step(net: MultiTaskNet, images: torch.Tensor, targets: dict[str, torch.Tensor], task_losses: TaskLosses, optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    losses = task_losses(net(images), targets)
    shared = list(net.shared_parameters())
    jacobian = torch.zeros(losses.shape[0], sum(p.numel() for p in shared), device=losses.device)
    for k in range(losses.shape[0]):
        for param in shared:
            param.grad = None
        losses[k].backward(retain_graph=k < losses.shape[0] - 1)
        jacobian[k] = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel(), device=p.device) for p in shared])
    update = jacobian.sum(dim=0)  # EW's combination: the aggregator's own cost is left out
    offset = 0
    for param in shared:
        param.grad = update[offset : offset + param.numel()].view_as(param).clone()
        offset += param.numel()
    optimizer.step()
