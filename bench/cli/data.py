"""``mtlbench data check ROOT``: scan a whole release and report every problem found."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtlbench.datamodules.cityscapes import cityscapes_spec
from mtlbench.datamodules.nyuv2 import NYUV2_SPEC
from mtlbench.datamodules.release import ReleaseSpec, check_release
from mtlbench.datamodules.synthetic.datamodule import SYNTHETIC_SPEC

SPECS: dict[str, ReleaseSpec] = {
    "nyuv2": NYUV2_SPEC,
    "cityscapes": cityscapes_spec(7),
    "cityscapes19": cityscapes_spec(19),
    "synthetic": SYNTHETIC_SPEC,
}


def guess_dataset(root: Path) -> str:
    """The release kind from its folders: label_7 / label_19 mean Cityscapes, else NYUv2."""
    train = root / "train"
    if (train / "label_7").is_dir():
        return "cityscapes"
    if (train / "label_19").is_dir():
        return "cityscapes19"
    if (root / "meta.json").is_file():
        return "synthetic"
    return "nyuv2"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mtlbench data", description="Dataset tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="scan a release and report every problem")
    check.add_argument("root", type=Path)
    check.add_argument("--dataset", choices=sorted(SPECS), default=None, help="release kind (guessed from the folders if omitted)")
    args = parser.parse_args(argv)
    dataset = args.dataset or guess_dataset(args.root)
    spec = SPECS[dataset]
    problems = check_release(args.root, spec)
    for problem in problems:
        print(problem)
    verdict = "no problems" if not problems else f"{len(problems)} problem(s)"
    print(f"{spec.name} release at {args.root}: {verdict}")
    return 1 if problems else 0
