"""Video tracking and smoothing on synthetic clips with identity ground truth (issue 17).

    PYTHONPATH=src python benchmarks/tracking.py --weights W.pth [--clips 4 --frames 60]
        [--timing-frames 20] [--msnet-frames 10] [--out DIR]

1. Writes ``--clips`` synthetic clips (``hsrpose synth --video``: figures standing
   still, walking, crossing, occluded by a pillar, entering and leaving) of
   ``--frames`` frames each into ``--out``, as mp4 files that are decoded as a user's video.
2. For two pose sources runs five settings (tracking off / on, smoothing off / on,
   ``--det-interval`` 1 / 5) and prints ID switches, MOTA, IDF1 (motmetrics), HOTA
   (TrackEval), keypoint AP over all frames (COCOeval, each frame an image) and the
   jitter of still figures (px/frame^2, see ``hsrpose.evaluation.tracking``):

   - ``model``: ``--weights`` (e.g. the tiny model trained by ``hsrpose demo``) with the
     flip test, the person boxes of the ground truth on detection frames (an oracle
     detector; on other frames boxes come from the tracks);
   - ``oracle-pose``: no network: for each box, the ground-truth figure with the largest
     box IoU, its keypoints plus Gaussian noise (sigma ``--oracle-noise`` px, a new draw each
     frame), score 0.9 visible / 0.5 occluded / 0.02 outside, returned in score order (ties
     shuffled) as an estimator returns them. It isolates tracker and smoother.

   Tracking off gives each pose of a frame the id of its rank in that frame (what a
   per-frame estimator's output order means). Poses below instance score 0.1 (the
   tracker's low threshold) do not count in the MOT metrics, for every setting.
3. CPU frames/s (one torch / onnxruntime thread; the whole loop: decode, detector,
   crops, network with flip test, tracking, smoothing; no drawing) for the tiny model
   (torch) and HSR-MSNet-59 (onnxruntime, random weights exported to ONNX: speed does
   not depend on the weights) at det-interval 1 and 5, with the HOG person detector
   run on each detection frame for its cost (its boxes are discarded and the
   ground-truth boxes used, so every setting has the same people to estimate).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hsrpose.data.keypoints import COCO_KEYPOINTS  # noqa: E402
from hsrpose.data.synthetic_video import ANN_DIR, BOX_DIR, VideoSynthConfig, generate_video_clips  # noqa: E402
from hsrpose.evaluation.cocoeval import score_results  # noqa: E402
from hsrpose.evaluation.tracking import FramePred, frames_from_coco, jitter, tracking_metrics  # noqa: E402
from hsrpose.inference.detectors import CocoResultsDetector, box_iou_xywh  # noqa: E402
from hsrpose.inference.pipeline import PoseInstance  # noqa: E402
from hsrpose.inference.video import FrameResult, VideoOptions, VideoRun, open_video, read_frames, track_frames  # noqa: E402

SETTINGS = [  # (label, track, smooth, det_interval)
    ("tracking off", False, False, 1),
    ("track", True, False, 1),
    ("track + smooth", True, True, 1),
    ("track, det-interval 5", True, False, 5),
    ("track + smooth, det-interval 5", True, True, 5),
]
MOT_SCORE_THR = 0.1


class OraclePose:
    """A stand-in for PoseEstimator: poses from the ground truth of the box's figure, plus noise."""

    def __init__(self, ann: dict[str, Any], noise_px: float, seed: int) -> None:
        self.keypoint_info = COCO_KEYPOINTS
        self.rng = np.random.default_rng(seed)
        self.noise = noise_px
        self.by_frame: dict[int, list[dict[str, Any]]] = {}
        for a in ann["annotations"]:
            self.by_frame.setdefault(int(a["image_id"]), []).append(a)
        self.frame = -1

    def __call__(self, image: np.ndarray, boxes: Any = None, image_key: Any = None) -> list[PoseInstance]:
        if image_key is not None:
            self.frame = int(image_key)
            gt = self.by_frame.get(self.frame, [])
            boxes = (np.array([a["bbox"] for a in gt], dtype=np.float64).reshape(-1, 4), np.ones(len(gt)))
        else:
            self.frame += 1  # propagated boxes: the next decoded frame (no gaps in these clips)
            gt = self.by_frame.get(self.frame, [])
        b, s = boxes
        out = []
        gt_boxes = np.array([a["bbox"] for a in gt], dtype=np.float64).reshape(-1, 4)
        for box, score in zip(np.asarray(b).reshape(-1, 4), np.asarray(s).reshape(-1)):
            if not len(gt):
                continue
            iou = box_iou_xywh(np.asarray(box)[None], gt_boxes).reshape(-1)
            if iou.max() < 0.1:
                continue
            kp = np.array(gt[int(iou.argmax())]["keypoints"], dtype=np.float64).reshape(-1, 3)
            v = kp[:, 2]
            xy = kp[:, :2] + self.rng.normal(0.0, self.noise, size=(len(kp), 2))
            xy[v == 0] = [box[0] + box[2] / 2, box[1] + box[3] / 2]
            ks = np.where(v == 2, 0.9, np.where(v == 1, 0.5, 0.02))
            out.append(PoseInstance(np.asarray(box, np.float32), float(score), xy.astype(np.float32), ks.astype(np.float32),
                                    float(score) * float(ks[ks > 0.2].mean()) if (ks > 0.2).any() else 0.0))  # fmt: skip
        # A per-frame estimator orders its poses by score (PoseEstimator's OKS-NMS order), not by identity:
        # shuffle, then sort stably by score, so that equal scores come in no fixed order.
        out = [out[i] for i in self.rng.permutation(len(out))]
        return sorted(out, key=lambda p: -p.score)


def _to_preds(frames: list[FrameResult], n: int, tracked: bool) -> list[FramePred]:
    by_index = {f.index: f for f in frames}
    out = []
    for t in range(n):
        poses = [p for p in by_index[t].poses if p.instance.score >= MOT_SCORE_THR] if t in by_index else []
        ids = [p.track_id for p in poses] if tracked else list(range(1, len(poses) + 1))
        kps = np.array([p.instance.keypoints for p in poses], dtype=np.float64).reshape(-1, 17, 2)
        out.append(FramePred(np.array(ids, dtype=int), kps))
    return out


def evaluate_setting(clip_dir: Path, names: list[str], make_estimator: Any, opts: VideoOptions) -> dict[str, float]:
    clips, results, gt_images, gt_anns = [], [], [], []
    for c, name in enumerate(names):
        ann = json.loads((clip_dir / ANN_DIR / f"{name}.json").read_text())
        cap, fps, total = open_video(clip_dir / "videos" / f"{name}.mp4")
        try:
            frames = list(track_frames(read_frames(cap, total, lambda i: None), make_estimator(ann, c), opts, fps, VideoRun()))
        finally:
            cap.release()
        gts = frames_from_coco(ann)
        clips.append((gts, _to_preds(frames, len(gts), opts.track)))
        base = 10000 * (c + 1)  # one COCO image id space over all clips
        gt_images += [{**im, "id": base + im["id"]} for im in ann["images"]]
        gt_anns += [{**a, "id": base + a["id"], "image_id": base + a["image_id"]} for a in ann["annotations"]]
        results += [p.instance.to_coco(base + f.index) for f in frames for p in f.poses]
    metrics = tracking_metrics(clips, COCO_KEYPOINTS.sigmas_array)
    metrics["jitter"], metrics["jitter_n"] = jitter(clips, COCO_KEYPOINTS.sigmas_array)
    gt = {"images": gt_images, "annotations": gt_anns, "categories": ann["categories"]}
    metrics["AP"] = score_results(gt, results)["AP"] if results else 0.0
    return metrics


class HogCostOracleBoxes:
    """Runs OpenCV's HOG people detector on the frame (for its cost), returns the ground-truth boxes."""

    def __init__(self, boxes_file: Path) -> None:
        from hsrpose.inference.detectors import HogPersonDetector

        self.hog = HogPersonDetector()
        self.gt = CocoResultsDetector(boxes_file)

    def __call__(self, image_bgr: np.ndarray, image_key: Any = None) -> tuple[np.ndarray, np.ndarray]:
        self.hog(image_bgr, image_key)
        return self.gt(image_bgr, image_key)


def time_fps(weights: Any, backend: str, clip_dir: Path, name: str, det_interval: int, frames: int, hog: bool = True) -> float:
    from hsrpose.inference.pipeline import PoseEstimator

    boxes = clip_dir / BOX_DIR / f"{name}.json"
    est = PoseEstimator(weights, detector=HogCostOracleBoxes(boxes) if hog else CocoResultsDetector(boxes), backend=backend)
    cap, fps, total = open_video(clip_dir / "videos" / f"{name}.mp4")
    run = VideoRun()
    try:
        src = ((i, f) for i, f in read_frames(cap, total, lambda i: None) if i < frames)
        for _ in track_frames(src, est, VideoOptions(track=True, smooth=True, det_interval=det_interval), fps, run):
            pass
    finally:
        cap.release()
    return run.fps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="trained hsrpose weights for the 'model' rows and the tiny-model timing")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--oracle-noise", type=float, default=2.0, help="oracle-pose keypoint noise, px (default 2)")
    ap.add_argument("--timing-frames", type=int, default=20, help="frames timed for the tiny model (default 20)")
    ap.add_argument("--msnet-frames", type=int, default=10, help="frames timed for HSR-MSNet-59 (default 10; 0 skips it)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the clips and the JSON of the numbers (default: a temporary one)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from hsrpose.inference.pipeline import PoseEstimator

    out = args.out or Path(tempfile.mkdtemp(prefix="hsrpose-tracking-"))
    clip_dir = out / "clips"
    cfg = VideoSynthConfig(frames=args.frames)
    videos = generate_video_clips(clip_dir, args.clips, seed=args.seed, cfg=cfg)
    names = [v.stem for v in videos]
    print(f"{len(names)} synthetic clips x {args.frames} frames ({cfg.image_hw[0]}x{cfg.image_hw[1]}, seed {args.seed}) in {clip_dir}")

    model = PoseEstimator(args.weights, detector=None)

    def model_estimator(ann: dict[str, Any], c: int) -> Any:
        model.detector = CocoResultsDetector(clip_dir / BOX_DIR / f"{names[c]}.json")
        return model

    sources = {
        "model": model_estimator,
        "oracle-pose": lambda ann, c: OraclePose(ann, args.oracle_noise, seed=1000 + c),
    }
    table: dict[str, dict[str, dict[str, float]]] = {}
    header = f"{'poses':<12} {'setting':<31} {'IDsw':>5} {'MOTA':>6} {'IDF1':>6} {'HOTA':>6} {'AP':>6} {'jitter px/f^2':>13}"
    print(header)
    print("-" * len(header))
    for src_name, make in sources.items():
        for label, track, smooth, det in SETTINGS:
            m = evaluate_setting(clip_dir, names, make, VideoOptions(track=track, smooth=smooth, det_interval=det))
            table.setdefault(src_name, {})[label] = m
            print(f"{src_name:<12} {label:<31} {m['num_switches']:>5.0f} {m['mota']:>6.3f} {m['idf1']:>6.3f} {m['hota']:>6.3f} "
                  f"{m['AP']:>6.3f} {m['jitter']:>13.3f}", flush=True)  # fmt: skip

    speed: dict[str, float] = {}
    print("\nCPU frames/s, 1 thread, flip test, tracking + smoothing, HOG run on detection frames (machine shared: indicative)")
    for det in (1, 5):
        speed[f"tiny torch det{det}"] = time_fps(args.weights, "torch", clip_dir, names[0], det, args.timing_frames)
        print(f"  tiny model ({Path(args.weights).name}), torch, det-interval {det}: {speed[f'tiny torch det{det}']:.2f} frames/s", flush=True)
    for det in (1, 5):  # the pose side alone: ground-truth boxes cost nothing
        speed[f"tiny torch det{det} no detector cost"] = time_fps(args.weights, "torch", clip_dir, names[0], det, args.timing_frames, hog=False)
        print(f"  tiny model, torch, det-interval {det}, no detector cost (boxes read from a file): "
              f"{speed[f'tiny torch det{det} no detector cost']:.2f} frames/s", flush=True)  # fmt: skip
    if args.msnet_frames > 0:
        from hsrpose.export import export_onnx
        from hsrpose.models import create_model, get_preset

        preset = get_preset("hsr_msnet59_256x192")
        onnx_path = out / "hsr_msnet59_random.onnx"
        export_onnx(create_model(preset.name).eval(), onnx_path, preset=preset.name, input_hw=preset.input_hw,
                    heatmap_hw=preset.heatmap_hw, keypoint_info=COCO_KEYPOINTS)  # fmt: skip
        from hsrpose.inference.onnx_backend import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(onnx_path, intra_op_threads=1)
        for det in (1, 5):
            speed[f"msnet59 onnxruntime det{det}"] = time_fps(backend, "onnxruntime", clip_dir, names[0], det, args.msnet_frames)
            print(f"  HSR-MSNet-59 256x192, onnxruntime, det-interval {det}: {speed[f'msnet59 onnxruntime det{det}']:.2f} frames/s", flush=True)
    from hsrpose.utils.io import atomic_write_json

    atomic_write_json(out / "tracking.json", {"metrics": table, "fps": speed, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2)
    print(f"numbers: {out / 'tracking.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
