"""Person recall at IoU >= 0.5 of the person detectors on a COCO keypoint set (coco-mini).

Usage:
    python benchmarks/detector_recall.py --ann ANN.json --images DIR [--detector hog] [--detector yolo:yolo11n-pose.pt]

For each detector: recall over all non-crowd person boxes and over persons with
at least one labelled keypoint (the instances the pose protocol evaluates), the
mean number of boxes per image and the seconds per image. A ground-truth box is
found when some detection overlaps it with IoU >= 0.5 (each detection may match
one ground truth, greedy by score, as in COCO matching).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from hsrpose.inference.detectors import box_iou_xywh, build_detector


def match_count(gt: np.ndarray, det: np.ndarray, det_scores: np.ndarray, iou_thr: float = 0.5) -> np.ndarray:
    """Boolean (G,): ground truths matched by a detection (greedy by score, one-to-one)."""
    found = np.zeros(len(gt), dtype=bool)
    if len(gt) == 0 or len(det) == 0:
        return found
    iou = box_iou_xywh(det[np.argsort(-det_scores)], gt)
    for row in iou:
        row = np.where(found, -1.0, row)
        j = int(np.argmax(row))
        if row[j] >= iou_thr:
            found[j] = True
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ann", required=True, help="COCO person keypoints annotation file")
    ap.add_argument("--images", required=True, help="image folder")
    ap.add_argument("--detector", action="append", default=None, help="detector spec (repeatable); default: hog")
    ap.add_argument("--iou", type=float, default=0.5)
    args = ap.parse_args()

    data = json.loads(Path(args.ann).read_text())
    gts: dict[int, list[tuple[list[float], bool]]] = {}
    for a in data["annotations"]:
        if a.get("category_id", 1) == 1 and not a.get("iscrowd", 0):
            gts.setdefault(a["image_id"], []).append((a["bbox"], a.get("num_keypoints", 0) > 0))
    images = sorted(data["images"], key=lambda im: im["id"])

    for spec in args.detector or ["hog"]:
        detector = build_detector(spec)
        hit_all = hit_kp = n_all = n_kp = n_det = 0
        seconds = 0.0
        for im in images:
            image = cv2.imread(str(Path(args.images) / im["file_name"]), cv2.IMREAD_COLOR)
            if image is None:
                print(f"skip unreadable {im['file_name']}")
                continue
            t0 = time.perf_counter()
            boxes, scores = detector(image, im["id"])
            seconds += time.perf_counter() - t0
            n_det += len(boxes)
            entries = gts.get(im["id"], [])
            if not entries:
                continue
            gt = np.array([b for b, _ in entries], dtype=np.float64)
            has_kp = np.array([k for _, k in entries], dtype=bool)
            found = match_count(gt, boxes, scores, args.iou)
            hit_all += int(found.sum())
            n_all += len(gt)
            hit_kp += int(found[has_kp].sum())
            n_kp += int(has_kp.sum())
        print(
            f"{spec}: recall@IoU{args.iou:g} all persons {hit_all}/{n_all} = {hit_all / max(n_all, 1):.3f}; "
            f"persons with keypoints {hit_kp}/{n_kp} = {hit_kp / max(n_kp, 1):.3f}; "
            f"{n_det / len(images):.2f} boxes/image; {seconds / len(images):.3f} s/image"
        )


if __name__ == "__main__":
    main()
