"""``hsrpose browse``: PNG images of augmented training samples, for a person to check the pipeline.

Each PNG shows one sample exactly as the training loop receives it: left, the
crop (de-normalised) with its keypoints and skeleton; right, the same crop with
the target heatmaps (maximum over joints) overlaid. The title line gives the
annotation id, rotation, scale, flip and half-body of the draw.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hsrpose.data.datasets import DATASET_CHOICES
from hsrpose.errors import HsrposeError

HELP = "draw augmented training samples with keypoints and heatmaps"


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 256x192, got {text!r}") from None
    if h <= 0 or w <= 0 or h % 4 or w % 4:
        raise argparse.ArgumentTypeError(f"input size {text!r}: height and width must be positive multiples of 4")
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.utils.argtypes import float_range, int_range

    parser.add_argument("--ann", required=True, help="COCO keypoint annotation JSON (or CrowdPose JSON, MPII json/.mat)")
    parser.add_argument("--dataset", choices=DATASET_CHOICES, default="auto", help="coco, mpii or crowdpose (default: from the file)")
    parser.add_argument("--images", required=True, help="folder of the images (file_name is relative to it)")
    parser.add_argument("--out", required=True, help="output folder for the PNGs")
    parser.add_argument("--num", type=int_range(1), default=8, help="number of samples to draw (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample choice and the augmentation")
    parser.add_argument("--epoch", type=int_range(0), default=0, help="epoch whose augmentation draws to show")
    parser.add_argument("--input-size", type=_hw, default=(256, 192), help="crop HxW (default 256x192); heatmaps are /4")
    parser.add_argument("--no-augment", action="store_true", help="plain evaluation crops")
    parser.add_argument("--half-body", action="store_true", help="enable HRNet's half-body augmentation")
    parser.add_argument("--sigma", type=float_range(1e-3), default=2.0, help="Gaussian sigma in heatmap px")
    parser.add_argument("--dark", action="store_true", help="DARK (sub-pixel) targets")


def render_sample(item: dict, keypoint_info, scale: int = 2) -> np.ndarray:  # type: ignore[no-untyped-def, type-arg]
    """One dataset item -> BGR uint8 panel (crop + skeleton | crop + heatmaps), upscaled by ``scale``."""
    import cv2

    from hsrpose.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from hsrpose.vis import draw_poses

    img = item["image"].numpy().transpose(1, 2, 0)
    rgb = img * np.asarray(IMAGENET_STD, np.float32) + np.asarray(IMAGENET_MEAN, np.float32)
    crop = np.clip(rgb[..., ::-1] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = crop.shape[:2]
    crop = cv2.resize(crop, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    kpts = item["keypoints_crop"].numpy().astype(np.float64)
    # pixel centres: crop px x -> (x + 0.5) * scale - 0.5 in the upscaled image
    pose = {
        "keypoints": (kpts[:, :2] + 0.5) * scale - 0.5,
        "keypoint_scores": (kpts[:, 2] > 0).astype(np.float64),
        "box_xywh": np.array([0.0, 0.0, 0.0, 0.0]),
        "score": 1.0,
    }
    left = draw_poses(crop, [pose], keypoint_info, kpt_thr=0.5, draw_boxes=False, draw_scores=False)
    target = item["target"].numpy()
    weight = item["target_weight"].numpy()
    heat = (target * weight[:, None, None]).max(axis=0) if len(target) else np.zeros(target.shape[1:])
    heat = cv2.resize(heat.astype(np.float32), (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)
    color = cv2.applyColorMap(np.clip(heat * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = np.clip(heat, 0, 1)[..., None] * 0.7
    right = (crop * (1 - alpha) + color * alpha).astype(np.uint8)
    panel = np.concatenate([left, np.full((h * scale, 4, 3), 255, np.uint8), right], axis=1)
    bar = np.full((28, panel.shape[1], 3), 32, np.uint8)
    size = item["size_wh"].numpy()
    title = (
        f"ann {int(item['ann_id'])}  rot {float(item['rotation']):+.1f}  size {size[0]:.0f}x{size[1]:.0f}px  "
        f"{'flip  ' if item['flipped'] else ''}joints {int((weight > 0).sum())}"
    )
    if not item["valid"]:
        title = "INVALID: " + item["error"][:80]
    cv2.putText(bar, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def run(args: argparse.Namespace) -> int:
    import cv2

    from hsrpose.codec import HeatmapCodec
    from hsrpose.data.datasets import load_dataset
    from hsrpose.data.config import AugmentConfig
    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.utils.io import atomic_write_bytes
    from hsrpose.utils.paths import check_output_dir

    out = check_output_dir(args.out)
    images = Path(args.images)
    if not images.is_dir():
        raise HsrposeError(f"{images}: image folder not found")
    _, res = load_dataset(args.dataset, args.ann, mode="train")
    if not res.instances:
        raise HsrposeError(f"{args.ann}: no training instances ({res.report.summary()})")
    input_hw = args.input_size
    codec = HeatmapCodec(input_hw, (input_hw[0] // 4, input_hw[1] // 4), sigma=args.sigma, dark=args.dark)
    augment = None if args.no_augment else AugmentConfig(half_body=args.half_body)
    ds = TopDownDataset(res.instances, images, input_hw, codec, augment, res.keypoint_info, seed=args.seed)
    ds.set_epoch(args.epoch)
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(ds), size=min(args.num, len(ds)), replace=False)
    scale = max(1, 384 // input_hw[0])
    for n, idx in enumerate(picks):
        item = ds[int(idx)]
        panel = render_sample(item, res.keypoint_info, scale)
        ok, png = cv2.imencode(".png", panel)
        if not ok:
            raise HsrposeError("could not encode a PNG")
        path = out / f"sample_{n:03d}_ann{int(item['ann_id'])}.png"
        atomic_write_bytes(path, png.tobytes())
        print(path)
    print(f"{len(picks)} samples written to {out} ({res.report.summary()})")
    return 0
