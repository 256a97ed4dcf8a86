"""Loader throughput: NYUv2-layout samples per second per worker at 288x384 with augmentation.

    mtlbench perf loader [--samples 400] [--workers 2]

Writes a small release in the exact NYUv2 layout and dtypes (float64, as MTAN's) to a
temporary folder, warms the page cache with one pass, then measures (1) one process reading
and augmenting samples one by one, and (2) a DataLoader with ``--workers`` workers, reported
per worker. Target: at least 200 samples/s per worker.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from mtlbench.datamodules import NYUv2DataModule
from mtlbench.datamodules.fake_release import write_release


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mtlbench perf loader", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--release-size", type=int, default=32, help="distinct samples written (they are cycled)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=384)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = write_release(Path(folder), "nyuv2", num_train=args.release_size, num_test=1, height=args.height, width=args.width)
        datamodule = NYUv2DataModule(root=str(root), num_val=0, augment=True, num_workers=0)
        datamodule.setup("fit")
        dataset = datamodule.datasets["train"]
        for index in range(len(dataset)):  # warm the page cache
            dataset[index]
        start = time.perf_counter()
        for index in range(args.samples):
            dataset[index % len(dataset)]
        single = args.samples / (time.perf_counter() - start)
        print(f"one process: {single:.0f} samples/s ({args.height}x{args.width}, augmentation on)")
        if args.workers > 0:
            loader = DataLoader(dataset, batch_size=8, shuffle=True, num_workers=args.workers, persistent_workers=True)
            next(iter(loader))  # start the workers
            seen, start = 0, time.perf_counter()
            while seen < args.samples:
                for images, _ in loader:
                    seen += images.shape[0]
                    if seen >= args.samples:
                        break
            total = seen / (time.perf_counter() - start)
            print(f"DataLoader, {args.workers} workers: {total:.0f} samples/s in all, {total / args.workers:.0f} per worker")


if __name__ == "__main__":
    main()
