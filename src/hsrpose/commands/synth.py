"""``hsrpose synth --out DIR --images N [--seed S]``: write a synthetic COCO-format keypoint dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from hsrpose.errors import HsrposeError

HELP = "write a synthetic multi-person keypoint dataset in COCO format"


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 240x320, got {text!r}") from None
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.utils.argtypes import int_range

    parser.add_argument("--out", type=Path, required=True, help="output folder (gets images/ and annotations/person_keypoints.json)")
    parser.add_argument("--images", type=int, required=True, help="number of images to generate")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; the same seed gives the same files (default 0)")
    parser.add_argument("--size", type=_hw, default=(240, 320), metavar="HxW", help="image size, height x width (default 240x320)")
    parser.add_argument("--max-people", type=int_range(1, 254), default=4, help="at most this many figures per image (default 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from hsrpose.data.synthetic import SynthConfig, generate_dataset
    from hsrpose.utils.paths import check_output_dir

    if args.images < 1:
        raise HsrposeError(f"--images must be >= 1, got {args.images}")
    try:
        cfg = SynthConfig(image_hw=args.size, people=(1, args.max_people))
    except ValueError as e:
        raise HsrposeError(f"--size {args.size[0]}x{args.size[1]}: {e}") from e
    check_output_dir(args.out)
    ann = generate_dataset(args.out, args.images, seed=args.seed, cfg=cfg, progress=not args.quiet)
    print(f"wrote {args.images} images to {args.out / 'images'} and annotations to {ann}")
    return 0
