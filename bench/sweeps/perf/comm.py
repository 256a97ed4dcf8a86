"""Communication per training step under DDP, for each family of method, and its time on a link.

    mtlbench perf comm [--gpus 8] [--batch 8] [--height 288] [--width 384] [--link-gbps 100] [--tflops 200]

The model is built on the meta device (no memory, no compute): the standard NYUv2 model by
default (ResNet-50 at output stride 8 with a DeepLabV3 ASPP, 3 tasks). Bytes are what each rank
sends per step with ring collectives (an all-reduce of S bytes sends 2 (N-1)/N S, an all-gather
of S bytes per rank sends (N-1) S), in float32 (gradients stay float32 under bf16-mixed):

- loss weightings (EW, UW, DWA, FAMO ...): DDP's gradient all-reduce, plus 2 T floats (the
  task losses and their valid-pixel counts);
- GradNorm: the same, plus the T task gradients of the last shared layer;
- aggregators in parameter space: the [T, n_shared] Jacobian and the head gradients;
- aggregators in feature space of the form J^T w(G): the T x T Gramian, then DDP's all-reduce;
- other aggregators in feature space (GradDrop, ExcessMTL, ConFIG, DB-MTL): the representation
  Jacobian gathered ([T, numel(z)] per rank), then the all-reduce.

The step time is estimated from the step's floating-point operations, counted by
``torch.utils.flop_counter`` on the forward pass of the encoder and of the heads (a backward
pass counted as twice its forward), at ``--tflops`` sustained (an assumption: pass what your GPUs
achieve, or ``--step-seconds`` measured). Plain DDP overlaps its all-reduce with the backward
pass; the aggregators' reductions happen between the backward passes and the step, unoverlapped.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from mtlbench.models import MultiTaskNet
from mtlbench.tasks import depth_task, normal_task, segmentation_task

FLOAT_BYTES = 4


@dataclass(frozen=True)
class ModelSizes:
    tasks: int
    shared: int  # parameters of the encoder
    heads: int  # parameters of all heads
    last_shared: int  # parameters of the last shared layer (GradNorm's W)
    features: int  # entries of the shared representation of one rank's batch
    encoder_flops: float  # forward, one rank's batch
    head_flops: float  # forward of all heads


def measure(batch: int, height: int, width: int) -> ModelSizes:
    """Sizes and forward FLOPs of the standard NYUv2 model, on the meta device."""
    tasks = [segmentation_task(13), depth_task(), normal_task()]
    with torch.device("meta"):
        net = MultiTaskNet(tasks, backbone="resnet50", output_stride=8, neck="aspp", decoder_channels=256)
        images = torch.empty(batch, 3, height, width)
    counter = FlopCounterMode(display=False)
    with counter:
        features = net.encode(images)
    encoder_flops = counter.get_total_flops()
    with counter:
        net.decode(features, size=(height, width))
    return ModelSizes(
        tasks=len(tasks),
        shared=sum(p.numel() for p in net.shared_parameters()),
        heads=sum(p.numel() for name in net.task_names for p in net.task_parameters(name)),
        last_shared=sum(p.numel() for p in net.last_shared_parameters()),
        features=features.numel(),
        encoder_flops=float(encoder_flops),
        head_flops=float(counter.get_total_flops()),
    )


def all_reduce(entries: float, gpus: int) -> float:
    return 2 * (gpus - 1) / gpus * entries * FLOAT_BYTES


def all_gather(entries_per_rank: float, gpus: int) -> float:
    return (gpus - 1) * entries_per_rank * FLOAT_BYTES


def families(sizes: ModelSizes, gpus: int) -> dict[str, tuple[float, float]]:
    """``{family: (bytes each rank sends per step, FLOPs of the step)}``."""
    t, enc, heads = sizes.tasks, sizes.encoder_flops, sizes.head_flops
    every_grad = sizes.shared + sizes.heads
    small = all_reduce(2 * t, gpus)  # task losses and valid-pixel counts
    plain_flops = 3 * (enc + heads)
    # forward, one head backward per task; then T encoder backward passes, or one
    parameter_flops = enc + heads + t * 2 * heads + t * 2 * enc
    feature_flops = enc + heads + t * 2 * heads + 2 * enc
    return {
        "loss weightings (DDP all-reduce)": (all_reduce(every_grad, gpus) + small, plain_flops),
        "GradNorm": (all_reduce(every_grad + t * sizes.last_shared, gpus) + small, plain_flops + t * 2 * heads),
        "aggregators, parameter space": (all_reduce(t * sizes.shared + sizes.heads, gpus) + small, parameter_flops),
        "aggregators, feature space, J^T w(G)": (all_reduce(every_grad + t * t, gpus) + small, feature_flops),
        "aggregators, feature space, gathered": (
            all_reduce(every_grad, gpus) + all_gather(t * sizes.features, gpus) + small,
            feature_flops,
        ),
    }


def table(sizes: ModelSizes, gpus: int, link_gbps: float, tflops: float, step_seconds: float | None) -> str:
    link = link_gbps * 1e9 / 8  # bytes per second
    rows = [
        "| family | MB sent per rank per step | time on the link (ms) | step (ms) | link / step |",
        "|---|---|---|---|---|",
    ]
    for name, (nbytes, flops) in families(sizes, gpus).items():
        step = step_seconds if step_seconds is not None else flops / (tflops * 1e12)
        seconds = nbytes / link
        rows.append(f"| {name} | {nbytes / 1e6:.1f} | {seconds * 1e3:.2f} | {step * 1e3:.1f} | {seconds / step:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench perf comm", description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=8, help="processes (GPUs) in the DDP group")
    parser.add_argument("--batch", type=int, default=8, help="images per GPU")
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--link-gbps", type=float, default=100.0, help="link bandwidth in Gb/s")
    parser.add_argument("--tflops", type=float, default=200.0, help="sustained TFLOP/s of one GPU (an assumption)")
    parser.add_argument("--step-seconds", type=float, default=None, help="a measured step time, instead of the FLOP estimate")
    args = parser.parse_args(argv)
    if args.gpus < 2:
        parser.error("--gpus must be at least 2: one process communicates nothing")
    sizes = measure(args.batch, args.height, args.width)
    print(
        f"standard NYUv2 model, batch {args.batch} per GPU at {args.height}x{args.width}, {args.gpus} GPUs, "
        f"{args.link_gbps:g} Gb/s link: {sizes.shared / 1e6:.1f} M shared and {sizes.heads / 1e6:.2f} M head parameters, "
        f"representation {sizes.features / 1e6:.1f} M entries per GPU, forward {sizes.encoder_flops / 1e9:.0f} GFLOP "
        f"(encoder) + {sizes.head_flops / 1e9:.0f} GFLOP (heads)"
    )
    print(table(sizes, args.gpus, args.link_gbps, args.tflops, args.step_seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
