"""Time post-processing (rescoring + OKS-NMS -> COCO results) at COCO val scale, next to scoring.

The published protocol runs the pose network on every box of the person detection
file (``COCO_val2017_detections_AP_H_56_person.json``: 104,125 boxes on the 5,000
val2017 images, up to 100 per image) and post-processes all of them. This builds
predictions of that shape: ``--images`` images, a skewed number of boxes per image
(log-normal, 1..100, about ``--boxes`` in total), each box a noisy copy of one of the
image's persons (some near-duplicates that OKS-NMS removes, some far apart) with
random keypoint and box scores. It times
:func:`hsrpose.engine.evaluate.postprocess` (greedy OKS-NMS, the published setting;
``--soft`` adds soft-OKS-NMS) and, on the same data, scoring the results with the
default scorer against ground truth made of the persons, and prints the seconds per
100k boxes. A SHA-256 of the results JSON lets two versions of the code be compared.

    PYTHONPATH=src python benchmarks/postprocess_speed.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import time

import numpy as np

from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.engine.evaluate import EvalConfig, Predictions, postprocess
from hsrpose.evaluation.cocoeval import DEFAULT_BACKEND, score_results


def build(num_images: int, num_boxes: int, seed: int) -> tuple[Predictions, dict]:
    """Predictions (N boxes, COCO-17) and a ground truth with one annotation per person."""
    rng = np.random.default_rng(seed)
    k = 17
    counts = np.clip(np.round(rng.lognormal(0.0, 0.9, num_images) * 1.0), 1, None)
    counts = np.clip(np.round(counts * num_boxes / counts.sum()), 1, 100).astype(int)
    images, anns = [], []
    parts: dict[str, list[np.ndarray]] = {n: [] for n in ("image_id", "keypoints", "box_score", "area")}
    template = rng.uniform(-0.5, 0.5, (k, 2))  # a fixed "pose" in box units
    ann_id = 1
    for i, n in enumerate(counts):
        image_id = i + 1
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": 640, "height": 480})
        persons = max(1, n // 5)
        size = rng.uniform(30, 300, persons)  # person height in px
        center = rng.uniform([100, 100], [540, 380], (persons, 2))
        pose = center[:, None, :] + template[None] * size[:, None, None]  # (P,K,2)
        for p in range(persons):
            x0, y0 = pose[p].min(axis=0)
            x1, y1 = pose[p].max(axis=0)
            kp = np.concatenate([pose[p], np.full((k, 1), 2.0)], axis=1)
            anns.append({"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": k,
                         "keypoints": kp.ravel().tolist(), "bbox": [x0, y0, x1 - x0, y1 - y0],
                         "area": float(size[p] ** 2 * 0.5)})  # fmt: skip
            ann_id += 1
        who = rng.integers(persons, size=n)
        jitter = rng.choice([0.005, 0.03, 0.2], size=n, p=[0.3, 0.4, 0.3])  # near-duplicates .. far apart
        xy = pose[who] + rng.normal(0, 1, (n, k, 2)) * (jitter * size[who])[:, None, None]
        kp = np.concatenate([xy, rng.uniform(0, 1, (n, k, 1))], axis=2)
        parts["image_id"].append(np.full(n, image_id, np.int64))
        parts["keypoints"].append(kp)
        parts["box_score"].append(rng.beta(0.7, 2.0, n))
        parts["area"].append((size[who] * 1.25) ** 2 * 0.75)
    arrays = {name: np.concatenate(v) for name, v in parts.items()}
    n_all = len(arrays["image_id"])
    preds = Predictions(
        image_id=arrays["image_id"], ann_id=np.full(n_all, -1, np.int64), keypoints=arrays["keypoints"],
        box_score=arrays["box_score"], area=arrays["area"], index=np.arange(n_all, dtype=np.int64),
    )  # fmt: skip
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS.names), "skeleton": []}]}  # fmt: skip
    return preds, gt


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, repeat: int):  # type: ignore[no-untyped-def]
    """(result, best wall seconds, CPU seconds of that run) over ``repeat`` runs."""
    best = (None, float("inf"), 0.0)
    for _ in range(repeat):
        c0, t0 = cpu_seconds(), time.perf_counter()
        out = fn()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if wall < best[1]:
            best = (out, wall, cpu)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--boxes", type=int, default=104125, help="about this many boxes in total (the published file's count)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest is reported")
    ap.add_argument("--soft", action="store_true", help="also time soft-OKS-NMS")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    preds, gt = build(args.images, args.boxes, args.seed)
    n = len(preds)
    print(f"load {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs; {n} boxes on {args.images} images, "
          f"{len(gt['annotations'])} persons, at most {np.bincount(preds.image_id).max()} boxes per image")  # fmt: skip
    per100k = 100_000 / n
    modes = [("greedy OKS-NMS", EvalConfig())] + ([("soft-OKS-NMS", EvalConfig(soft_nms=True))] if args.soft else [])
    for name, cfg in modes:
        results, wall, cpu = timed(lambda: postprocess(preds, COCO_KEYPOINTS, cfg), args.repeat)
        digest = hashlib.sha256(json.dumps(results).encode()).hexdigest()[:16]
        print(f"postprocess ({name}): {len(results)} results, wall {wall:.2f} s, CPU {cpu:.2f} s; "
              f"per 100k boxes: wall {wall * per100k:.2f} s, CPU {cpu * per100k:.2f} s; results sha256 {digest}")  # fmt: skip
        if name == "greedy OKS-NMS":
            greedy = results
    metrics, wall, cpu = timed(lambda: score_results(gt, greedy, backend=DEFAULT_BACKEND), args.repeat)
    print(f"scoring those {len(greedy)} results ({DEFAULT_BACKEND}, in process): wall {wall:.2f} s, CPU {cpu:.2f} s; "
          f"AP {metrics['AP']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
