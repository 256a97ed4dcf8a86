"""Per-task gradients of the shared parameters from one extra pass, for the callbacks that
observe training (the gradient probe, the inter-task affinity) on steps whose method holds no
parameter-space Jacobian.

One forward pass; each task's loss is back-propagated through the heads to the shared
representation (cheap), then each task's representation gradient through the encoder (T encoder
backward passes, batched where the module batches its own). The network's buffers (BatchNorm
running statistics) are restored afterwards, so the pass leaves the run as it found it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtlbench.bench.run.jacobian import task_gradients


def extra_pass_gradients(
    pl_module,
    images: torch.Tensor,
    targets: dict[str, torch.Tensor],
    shared: Sequence[torch.nn.Parameter],
    count: int,
    chunks: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """This rank's gradients of the first ``count`` task losses (``MultiTaskModule.training_losses``)
    with respect to ``shared``: ``[count, n]``; with ``chunks`` (this rank's sample indices of
    each sub-batch), each task's gradient split by sub-batch, ``[count, len(chunks), n]`` (back-
    propagation is linear: a task's gradient is the sum of its sub-batches')."""
    net = pl_module.net
    buffers = {name: value.detach().clone() for name, value in net.named_buffers()}
    try:
        features = net.encode(images)
        detached = features.detach().requires_grad_()
        losses = pl_module.training_losses(net.decode(detached, size=images.shape[-2:]), targets)[:count]
        eye = torch.eye(count, dtype=losses.dtype, device=losses.device)
        batched = pl_module.batches_task_gradients()
        feature_rows = task_gradients(losses, [detached], eye, batched, retain_graph=False).view(count, *features.shape)
        if chunks is None:
            outputs = feature_rows.to(features.dtype)
        else:  # each task's representation gradient, split by samples
            outputs = torch.zeros(count, len(chunks), *features.shape, dtype=features.dtype, device=features.device)
            for part, chunk in enumerate(chunks):
                outputs[:, part, chunk] = feature_rows[:, chunk].to(features.dtype)
            outputs = outputs.flatten(0, 1)
        rows = task_gradients(features, list(shared), outputs, batched, retain_graph=False).float()
    finally:
        with torch.no_grad():
            for name, value in net.named_buffers():
                value.copy_(buffers[name])
    return rows if chunks is None else rows.view(count, len(chunks), -1)
