"""Heatmap codec round trip on real annotations, scored with COCOeval.

Every ground-truth instance with keypoints (the training filters of protocol.md)
is cropped exactly as for evaluation (box -> center/size, aspect of the input,
x1.25, no rotation), its keypoints are encoded into target heatmaps, decoded
back (argmax + quarter offset, or DARK), mapped into the image with the inverse
affine and scored against the same annotation file with pycocotools
(COCOeval, iouType="keypoints"). The loss measured is only the codec's
quantisation (and joints whose Gaussian falls off the heatmap).

    python benchmarks/codec_roundtrip.py --ann ../shared/data/coco-mini/annotations/person_keypoints_train2017.json
    ... --input-size 384x288          # 96x72 heatmaps
    ... --dark                        # DARK encoding + decoding

Prints the ten COCO numbers (``NAME value``); the last line is ``AP <value>``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from hsrpose.codec import HeatmapCodec
from hsrpose.data.coco import load_coco
from hsrpose.data.geometry import apply_affine, box_to_center_size, crop_affine, invert_affine
from hsrpose.evaluation.cocoeval import format_metrics, score_results


def parse_hw(text: str) -> tuple[int, int]:
    """``"256x192"`` -> (256, 192) (height x width, as the paper names sizes)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 256x192, got {text!r}") from None
    return h, w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ann", required=True, help="COCO keypoint annotation file")
    ap.add_argument("--input-size", type=parse_hw, default=(256, 192), help="crop HxW (heatmaps are /4); default 256x192")
    ap.add_argument("--stride", type=int, default=4, help="input / heatmap size (default 4)")
    ap.add_argument("--sigma", type=float, default=2.0, help="Gaussian sigma in heatmap px (default 2)")
    ap.add_argument("--dark", action="store_true", help="DARK: sub-pixel Gaussian targets + Taylor decoding")
    ap.add_argument("--decode", choices=("numpy", "torch"), default="numpy", help="decode path (same numbers)")
    ap.add_argument("--backend", choices=("pycocotools", "hotcoco"), default="pycocotools", help="COCOeval implementation")
    ap.add_argument(
        "--oracle-outside",
        action="store_true",
        help="diagnostic: give labelled joints that lie outside the crop their exact position, "
        "to separate the codec's quantisation from the crop's coverage",
    )
    ap.add_argument("--padding", type=float, default=1.25, help="box enlargement (protocol: 1.25)")
    ap.add_argument("--batch", type=int, default=256, help="instances decoded per batch")
    args = ap.parse_args(argv)
    if args.padding <= 0:
        ap.error("--padding must be > 0")

    input_hw = args.input_size
    heatmap_hw = (input_hw[0] // args.stride, input_hw[1] // args.stride)
    codec = HeatmapCodec(input_hw, heatmap_hw, sigma=args.sigma, dark=args.dark)
    res = load_coco(args.ann, mode="gt")
    instances = res.instances
    cat_id = res.category_id
    aspect = input_hw[1] / input_hw[0]
    t0 = time.perf_counter()
    results = []
    n_labelled = n_outside = n_inst_outside = n_dropped = 0
    for start in range(0, len(instances), args.batch):
        chunk = instances[start : start + args.batch]
        maps, m_invs, outside_masks = [], [], []
        for inst in chunk:
            center, size_wh = box_to_center_size(inst.box_xywh, aspect, args.padding)
            m = crop_affine(center, size_wh, 0.0, input_hw)
            kp = inst.keypoints
            kp_crop = apply_affine(kp[:, :2], m)
            hm, weight = codec.encode(kp_crop, kp[:, 2])
            labelled = kp[:, 2] > 0
            outside = labelled & np.any((kp_crop < -0.5) | (kp_crop > [input_hw[1] - 0.5, input_hw[0] - 0.5]), axis=1)
            n_labelled += int(labelled.sum())
            n_outside += int(outside.sum())
            n_inst_outside += int(outside.any())
            n_dropped += int((labelled & (weight == 0)).sum())
            maps.append(hm)
            m_invs.append(invert_affine(m))
            outside_masks.append(outside)
        batch = np.stack(maps)
        if args.decode == "torch":
            import torch

            coords_t, scores_t = codec.decode(torch.from_numpy(batch))
            coords, scores = coords_t.numpy(), scores_t.numpy()
        else:
            coords, scores = codec.decode(batch)
        image_xy = apply_affine(coords.astype(np.float64), np.stack(m_invs))
        for inst, xy, sc, outside in zip(chunk, image_xy, scores, outside_masks):
            if args.oracle_outside:
                xy = xy.copy()
                xy[outside] = inst.keypoints[outside, :2]
            kpts = np.concatenate([xy, sc[:, None]], axis=1)
            good = sc > 0.2  # protocol rescoring with box score 1
            score = float(sc[good].mean()) if good.any() else 0.0
            results.append({"image_id": inst.image_id, "category_id": cat_id, "keypoints": kpts.reshape(-1).tolist(), "score": score})
    elapsed = time.perf_counter() - t0
    metrics = score_results(args.ann, results, sigmas=res.keypoint_info.sigmas, backend=args.backend)
    print(
        f"# {len(results)} instances, input {input_hw[0]}x{input_hw[1]}, heatmap {heatmap_hw[0]}x{heatmap_hw[1]}, "
        f"sigma {args.sigma}, padding {args.padding}, dark={args.dark}, oracle_outside={args.oracle_outside}, "
        f"decode={args.decode}, scorer={args.backend}, "
        f"encode+decode {elapsed:.2f}s",
        file=sys.stderr,
    )
    # Joints outside the crop cannot round-trip: the codec only sees the crop.
    print(
        f"# labelled joints {n_labelled}; outside the crop {n_outside} (in {n_inst_outside} instances), "
        f"of which {n_dropped} get target weight 0 (Gaussian off the heatmap)",
        file=sys.stderr,
    )
    print(format_metrics(metrics, digits=4))
    print(f"AP {metrics['AP']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
