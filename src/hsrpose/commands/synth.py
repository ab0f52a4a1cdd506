"""``hsrpose synth --out DIR --images N [--seed S]``: write a synthetic COCO-format keypoint dataset.

``hsrpose synth --video --out DIR --clips N [--frames F]``: write synthetic video clips with
identity and keypoint ground truth per frame (hsrpose.data.synthetic_video).
"""

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
    parser.add_argument("--images", type=int, default=None, help="number of images to generate (required without --video)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; the same seed gives the same files (default 0)")
    parser.add_argument("--size", type=_hw, default=(240, 320), metavar="HxW", help="image size, height x width (default 240x320)")
    parser.add_argument("--max-people", type=int_range(1, 254), default=4, help="at most this many figures per image (default 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--video", action="store_true", help="write video clips (videos/, annotations/ with track_id, boxes/) instead of images")
    parser.add_argument("--clips", type=int_range(1), default=4, help="--video: number of clips (default 4)")
    parser.add_argument("--frames", type=int_range(1), default=60, help="--video: frames per clip (default 60)")
    parser.add_argument("--fps", type=float, default=25.0, help="--video: frame rate (default 25)")


def run(args: argparse.Namespace) -> int:
    from hsrpose.data.synthetic import SynthConfig, generate_dataset
    from hsrpose.utils.paths import check_output_dir

    if args.video:
        return _run_video(args)
    if args.images is None:
        raise HsrposeError("--images N is required (or pass --video for clips)")
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


def _run_video(args: argparse.Namespace) -> int:
    from hsrpose.data.synthetic_video import ANN_DIR, VideoSynthConfig, generate_video_clips
    from hsrpose.utils.paths import check_output_dir

    if args.clips < 1:
        raise HsrposeError(f"--clips must be >= 1, got {args.clips}")
    try:
        cfg = VideoSynthConfig(image_hw=args.size, frames=args.frames, fps=args.fps, people=(2, max(2, args.max_people)))
    except ValueError as e:
        raise HsrposeError(str(e)) from e
    check_output_dir(args.out)
    videos = generate_video_clips(args.out, args.clips, seed=args.seed, cfg=cfg, progress=not args.quiet)
    print(f"wrote {len(videos)} clips of {args.frames} frames to {videos[0].parent}, annotations with track_id to {args.out / ANN_DIR}")
    return 0
