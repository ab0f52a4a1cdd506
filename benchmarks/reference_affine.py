"""How far hsrpose's float64 crop affine is from HRNet's float32 three-point one, on real boxes.

HRNet (``lib/utils/transforms.py`` ``get_affine_transform``, with ``lib/dataset/coco.py``
``_xywh2cs``) turns a box into ``center``/``scale`` float32 arrays in ``pixel_std = 200``
units, builds three float32 points and solves ``cv2.getAffineTransform``; predictions go back
through a second such transform (``transform_preds``, ``inv=1``, heatmap size). hsrpose builds
the same matrices in float64 pixels (``hsrpose.data.geometry``). The two differ by float32
rounding only; this script measures what that changes on coco-mini:

* the matrices (largest entry difference) and the inverse mapping (image px);
* the crops: how many crops have any pixel that differs, and by how many grey levels;
* the keypoints: every crop pair goes through the same randomly initialised network (the
  heatmaps of an untrained net are flat, so near-ties of the argmax are *more* frequent than
  for a trained one) and is decoded with the standard decoder; counted are the keypoints whose
  two image positions differ by more than 0.5 px (the issue's measure).

    python benchmarks/reference_affine.py --ann ../shared/data/coco-mini/annotations/person_keypoints_train2017.json \\
        --images ../shared/data/coco-mini/train2017 [--boxes raw|clean] [--seeds 3]

Boxes: ``clean`` = the reference's ground-truth boxes (USE_GT_BBOX), ``raw`` = the annotation
boxes as a detection file would give them (cropped as they are).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from hsrpose.codec import HeatmapCodec
from hsrpose.data.coco import load_coco
from hsrpose.data.geometry import apply_affine, box_to_center_size, crop_affine, invert_affine, warp_crop
from hsrpose.data.imageio import read_image_bgr
from hsrpose.data.transforms import to_input_array

INPUT_HW = (256, 192)
HEATMAP_HW = (64, 48)


def hrnet_xywh2cs(box: np.ndarray, aspect_ratio: float, pixel_std: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """Transcription of HRNet ``COCODataset._xywh2cs`` (float32 center and scale, x1.25)."""
    x, y, w, h = (float(v) for v in box)
    center = np.zeros((2), dtype=np.float32)
    center[0] = x + w * 0.5
    center[1] = y + h * 0.5
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    if center[0] != -1:
        scale = scale * 1.25
    return center, scale


def hrnet_get_affine_transform(center: np.ndarray, scale: np.ndarray, rot: float, output_size: list[int], inv: int = 0) -> np.ndarray:
    """Transcription of HRNet ``lib/utils/transforms.py`` ``get_affine_transform`` (shift 0)."""
    scale_tmp = scale * 200.0
    src_w = scale_tmp[0]
    dst_w, dst_h = output_size[0], output_size[1]
    rot_rad = np.pi * rot / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    src_point = [0, src_w * -0.5]
    src_dir = [src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs]
    dst_dir = np.array([0, dst_w * -0.5], np.float32)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + src_dir
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir

    def third(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        direct = a - b
        return b + np.array([-direct[1], direct[0]], dtype=np.float32)

    src[2:, :] = third(src[0, :], src[1, :])
    dst[2:, :] = third(dst[0, :], dst[1, :])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ann", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--boxes", choices=("raw", "clean"), default="raw")
    ap.add_argument("--preset", default="hsrnet_tiny_128x96", help="network run on both crops (random init; fully convolutional)")
    ap.add_argument("--seeds", type=int, default=3, help="random initialisations to run")
    args = ap.parse_args(argv)

    import torch

    from hsrpose.models import create_model

    aspect = INPUT_HW[1] / INPUT_HW[0]
    if args.boxes == "clean":
        instances = [(i.file_name, i.image_hw, i.box_xywh) for i in load_coco(args.ann, mode="gt").instances]
    else:
        data = json.loads(Path(args.ann).read_text())
        names = {im["id"]: (im["file_name"], (im["height"], im["width"])) for im in data["images"]}
        instances = [
            (*names[a["image_id"]], np.asarray(a["bbox"], np.float64))
            for a in data["annotations"]
            if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0
        ]
    ours_in, ref_in, ours_inv, ref_inv = [], [], [], []
    max_m, crops_differ, max_grey, px_differ = 0.0, 0, 0, 0
    cache: dict[str, np.ndarray] = {}
    for file_name, hw, box in instances:
        image = cache.setdefault(file_name, read_image_bgr(Path(args.images) / file_name, hw))
        center, size = box_to_center_size(box, aspect, 1.25)
        m = crop_affine(center, size, 0.0, INPUT_HW)
        c32, s32 = hrnet_xywh2cs(box, aspect)
        m_ref = hrnet_get_affine_transform(c32, s32, 0, [INPUT_HW[1], INPUT_HW[0]])
        max_m = max(max_m, float(np.abs(m - m_ref).max()))
        a, b = warp_crop(image, m, INPUT_HW), warp_crop(image, m_ref, INPUT_HW)
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        crops_differ += int(diff.any())
        px_differ += int((diff.max(axis=2) > 0).sum())
        max_grey = max(max_grey, int(diff.max()))
        ours_in.append(a)
        ref_in.append(b)
        # heatmap px -> image px: ours = crop inverse x stride; HRNet = transform_preds (inv=1, heatmap size)
        stride = np.diag([INPUT_HW[1] / HEATMAP_HW[1], INPUT_HW[0] / HEATMAP_HW[0], 1.0])
        ours_inv.append(invert_affine(m) @ stride)
        ref_inv.append(hrnet_get_affine_transform(c32, s32, 0, [HEATMAP_HW[1], HEATMAP_HW[0]], inv=1))
    n = len(instances)
    grid = np.stack(np.meshgrid(np.arange(HEATMAP_HW[1]), np.arange(HEATMAP_HW[0])), -1).reshape(-1, 2).astype(np.float64)
    inv_err = max(float(np.abs(apply_affine(grid, a) - apply_affine(grid, b)).max()) for a, b in zip(ours_inv, ref_inv))
    print(f"instances {n} ({args.boxes} boxes), crop {INPUT_HW[0]}x{INPUT_HW[1]}")
    print(f"matrix max |ours - HRNet| {max_m:.3g}; inverse mapping max {inv_err:.3g} image px")
    print(f"crops with any different pixel {crops_differ}/{n}; different pixels {px_differ} of {n * INPUT_HW[0] * INPUT_HW[1]}; max {max_grey} grey levels")

    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW)
    moved, total = 0, 0
    x_ours = torch.from_numpy(to_input_array(np.stack(ours_in)))
    x_ref = torch.from_numpy(to_input_array(np.stack(ref_in)))
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        model = create_model(args.preset).eval()
        with torch.inference_mode():
            h1 = torch.cat([model(x_ours[i : i + 16]) for i in range(0, n, 16)]).numpy()
            h2 = torch.cat([model(x_ref[i : i + 16]) for i in range(0, n, 16)]).numpy()
        c1, _ = codec.decode(h1)
        c2, _ = codec.decode(h2)
        # both crops' keypoints into the image with ours / HRNet's inverse (crop px -> heatmap px first)
        k1 = np.stack([apply_affine(c / 4.0, m) for c, m in zip(c1, ours_inv)])
        k2 = np.stack([apply_affine(c / 4.0, m) for c, m in zip(c2, ref_inv)])
        d = np.linalg.norm(k1 - k2, axis=-1)
        moved += int((d > 0.5).sum())
        total += d.size
        print(f"seed {seed}: keypoints moved > 0.5 px {int((d > 0.5).sum())}/{d.size}")
    print(f"keypoints moved > 0.5 px {moved}/{total} = {100.0 * moved / total:.3f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
