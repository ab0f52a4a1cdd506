"""``hsrpose demo``: the whole system on data it makes itself, in minutes on a CPU.

1. generate a synthetic training and a held-out validation set (hsrpose.data.synthetic);
2. train a small preset with the real training engine (hsrpose.engine.train);
3. evaluate the trained weights, reloaded from disk, with the published protocol
   (hsrpose.engine.evaluate: flip test, rescoring, OKS-NMS, COCOeval) on ground-truth
   boxes of the validation set, and print the ten numbers;
4. run the inference pipeline (hsrpose.inference.pipeline.PoseEstimator) on held-out
   images and draw the predictions (hsrpose.vis). Person boxes come from the validation
   annotations through the COCO-results detector: on drawn stick figures a photo person
   detector (HOG) finds little, and the point here is the pose network;
5. write a summary saying where everything is.

Everything goes under ``--out``. ``--quick`` is a seconds-long configuration for tests
and smoke checks (it does not learn much).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hsrpose.errors import HsrposeError

HELP = "generate a synthetic dataset, train, evaluate and draw a small model in minutes on CPU"


@dataclass(frozen=True)
class DemoSettings:
    """One demo configuration (the defaults of ``hsrpose demo``; ``--quick`` has its own)."""

    preset: str = "hsrnet_tiny_128x96"
    train_images: int = 1000
    val_images: int = 100
    image_hw: tuple[int, int] = (240, 320)
    epochs: int = 25
    milestones: tuple[int, ...] = (20,)
    lr: float = 2e-3
    batch_size: int = 32
    eval_interval: int = 5
    num_workers: int = 1
    threads: int = 2
    draw_images: int = 6
    draw_scale: int = 2


FULL = DemoSettings()
QUICK = DemoSettings(
    train_images=24, val_images=4, image_hw=(128, 160), epochs=1, milestones=(), batch_size=16,
    eval_interval=1, num_workers=0, threads=1, draw_images=2, draw_scale=1,
)  # fmt: skip

# What the demo creates under --out; --force removes exactly these, nothing else.
_OWNED = ("data", "train", "predictions.png", "metrics.json", "summary.txt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("hsrpose-demo"), help="output folder (default ./hsrpose-demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the datasets, model init and data order (default 0)")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration that runs in seconds (smoke test; learns little)")
    parser.add_argument("--force", action="store_true", help="replace the results of an earlier demo in --out")
    parser.add_argument("--preset", default=None, help=f"model preset (default {FULL.preset})")
    parser.add_argument("--epochs", type=int, default=None, help=f"training epochs (default {FULL.epochs}; lr x0.1 after epochs {list(FULL.milestones)})")
    parser.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {FULL.lr})")
    parser.add_argument("--train-images", type=int, default=None, help=f"synthetic training images (default {FULL.train_images})")
    parser.add_argument("--val-images", type=int, default=None, help=f"synthetic validation images (default {FULL.val_images})")
    parser.add_argument("--workers", type=int, default=None, help=f"data loader worker processes (default {FULL.num_workers})")
    parser.add_argument("--threads", type=int, default=None, help=f"torch CPU threads (default {FULL.threads})")
    parser.add_argument("--device", default="cpu", help="torch device for training and inference (default cpu)")
    parser.add_argument("--detector", choices=("annotations", "hog"), default="annotations",
                        help="person boxes for the drawn predictions: the validation annotations' boxes (default), "
                             "or OpenCV's HOG people detector (made for photos; finds few stick figures)")  # fmt: skip


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    """The base configuration (full or quick) with the options given on the command line."""
    s = QUICK if args.quick else FULL
    over: dict[str, Any] = {}
    for arg, name in (("preset", "preset"), ("epochs", "epochs"), ("lr", "lr"), ("train_images", "train_images"),
                      ("val_images", "val_images"), ("workers", "num_workers"), ("threads", "threads")):  # fmt: skip
        value = getattr(args, arg)
        if value is not None:
            over[name] = value
    s = replace(s, **over)
    if s.epochs < 1 or s.train_images < 1 or s.val_images < 1 or s.num_workers < 0 or s.threads < 1:
        raise HsrposeError("--epochs, --train-images, --val-images and --threads must be >= 1, --workers >= 0")
    if not s.lr > 0:
        raise HsrposeError(f"--lr must be > 0, got {s.lr}")
    if "epochs" in over:  # keep the lr drops at the same fractions of the run
        s = replace(s, milestones=tuple(sorted({max(1, round(m * s.epochs / FULL.epochs)) for m in FULL.milestones if s.epochs > 2})))
    return s


def _prepare_out(out: Path, force: bool) -> None:
    from hsrpose.utils.paths import check_output_dir

    if out.exists() and not out.is_dir():
        raise HsrposeError(f"--out {out} exists and is not a folder")
    existing = [name for name in _OWNED if (out / name).exists()]
    if existing and not force:
        raise HsrposeError(f"{out} already holds a demo ({', '.join(existing)}); pass --force to replace it or choose another --out")
    for name in existing:
        p = out / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    check_output_dir(out)


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def _gt_boxes_as_detections(ann_file: Path, out_file: Path) -> dict[str, int]:
    """Write the annotation boxes as a COCO detection results file (score 1); returns file name -> image id."""
    from hsrpose.utils.io import atomic_write_json

    data = json.loads(ann_file.read_text())
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0} for a in data["annotations"]]
    atomic_write_json(out_file, dets)
    return {im["file_name"]: int(im["id"]) for im in data["images"]}


def _draw_enlarged(image: Any, poses: list[Any], keypoint_info: Any, scale: int) -> Any:
    """Draw ``poses`` (image px) on ``image`` enlarged ``scale`` times, so that small synthetic
    images show readable skeletons; keypoints with a score below 0.2 are left out."""
    import cv2

    from hsrpose.vis import draw_poses

    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale != 1 else image
    # Pixel centres sit at integer coordinates: x -> scale * x + (scale - 1) / 2.
    shift = (scale - 1) / 2.0
    scaled = [
        {"keypoints": p.keypoints * scale + shift, "keypoint_scores": p.keypoint_scores,
         "box_xywh": p.box_xywh * scale + [shift, shift, 0, 0], "score": p.score}
        for p in poses
    ]  # fmt: skip
    return draw_poses(big, scaled, keypoint_info, kpt_thr=0.2)


def _tile(images: list[Any], cols: int) -> Any:
    """Images of equal size (H,W,3) -> one grid image, padded with black cells."""
    import numpy as np

    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    return grid


def run(args: argparse.Namespace) -> int:
    import cv2
    import torch

    from hsrpose.codec import HeatmapCodec
    from hsrpose.data.coco import load_coco
    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.data.synthetic import ANNOTATION_FILE, IMAGE_DIR, SynthConfig, generate_dataset
    from hsrpose.engine.config import TrainConfig
    from hsrpose.engine.eval_config import EvalConfig
    from hsrpose.engine.evaluate import evaluate
    from hsrpose.engine.train import train
    from hsrpose.evaluation.cocoeval import METRIC_NAMES
    from hsrpose.inference.detectors import CocoResultsDetector
    from hsrpose.inference.pipeline import PoseEstimator
    from hsrpose.models import get_preset
    from hsrpose.models.weights import load_pose_model
    from hsrpose.overrides import config_to_dict
    from hsrpose.utils.argtypes import check_device
    from hsrpose.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

    s = settings_from_args(args)
    # before any work: a preset or device that does not exist would fail only after the data is made
    get_preset(s.preset)
    check_device(args.device, allow_auto=False)
    out: Path = args.out
    _prepare_out(out, args.force)
    torch.set_num_threads(s.threads)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}

    # 1. data: two disjoint seeds per demo seed, so validation images are never trained on
    synth = SynthConfig(image_hw=s.image_hw)
    _log(f"generating {s.train_images} training and {s.val_images} validation images ({s.image_hw[0]}x{s.image_hw[1]})")
    t = time.perf_counter()
    train_ann = generate_dataset(out / "data" / "train", s.train_images, seed=2 * args.seed, cfg=synth, progress=True)
    val_ann = generate_dataset(out / "data" / "val", s.val_images, seed=2 * args.seed + 1, cfg=synth, progress=True)
    val_images = out / "data" / "val" / IMAGE_DIR
    timings["data_s"] = time.perf_counter() - t

    # 2. training with the real engine; it validates every eval_interval epochs (GT boxes)
    cfg = TrainConfig(preset=s.preset, seed=args.seed, output_dir=str(out / "train"), device=args.device,
                      eval_interval=s.eval_interval, log_interval=10, tensorboard=False, progress=True)  # fmt: skip
    cfg.data.train_ann, cfg.data.train_images = str(train_ann), str(out / "data" / "train" / IMAGE_DIR)
    cfg.data.val_ann, cfg.data.val_images = str(val_ann), str(val_images)
    cfg.data.num_workers, cfg.data.pin_memory = s.num_workers, False
    cfg.optim.lr, cfg.optim.epochs, cfg.optim.milestones, cfg.optim.batch_size = s.lr, s.epochs, s.milestones, s.batch_size
    cfg.eval.num_workers = 0  # a few hundred crops: worker start-up would cost more than it saves
    _log(f"training {s.preset} for {s.epochs} epochs (Adam lr {s.lr}, x0.1 after epochs {list(s.milestones)}) in {out / 'train'}")
    t = time.perf_counter()
    result = train(cfg)
    timings["train_s"] = time.perf_counter() - t

    # 3. evaluation of the saved weights with the published protocol (ground-truth boxes)
    t = time.perf_counter()
    weights = result.last_checkpoint
    model, meta = load_pose_model(weights, device=args.device)
    val = load_coco(val_ann, mode="gt")
    codec = HeatmapCodec(meta.input_hw, meta.heatmap_hw, sigma=cfg.data.sigma)
    val_set = TopDownDataset(val.instances, val_images, meta.input_hw, codec, augment=None, keypoint_info=val.keypoint_info)
    eval_cfg = EvalConfig(num_workers=0, use_gt_boxes=True)
    _, metrics = evaluate(model, val_set, codec, val.keypoint_info, cfg=eval_cfg, device=args.device, gt=str(val_ann))
    timings["eval_s"] = time.perf_counter() - t

    # 4. the inference pipeline on held-out images, boxes from the validation annotations
    t = time.perf_counter()
    det_file = out / "data" / "val" / "boxes_from_annotations.json"
    file_names = _gt_boxes_as_detections(val_ann, det_file)
    detector = CocoResultsDetector(det_file, file_names=file_names) if args.detector == "annotations" else "hog"
    estimator = PoseEstimator(weights, detector=detector, device=args.device)
    names = sorted(file_names)[: s.draw_images]
    poses = estimator.predict_batch([val_images / n for n in names], image_keys=names)
    drawn = [_draw_enlarged(cv2.imread(str(val_images / n)), p, estimator.keypoint_info, s.draw_scale) for n, p in zip(names, poses)]
    ok, png = cv2.imencode(".png", _tile(drawn, cols=min(3, len(drawn))))
    if not ok:
        raise HsrposeError("OpenCV could not encode the predictions image")
    atomic_write_bytes(out / "predictions.png", png.tobytes())
    timings["inference_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_start
    timings["cpu_s"] = time.process_time() - cpu_start  # this process only (data workers not counted)

    # 5. summary
    box_source = "boxes from the annotations" if args.detector == "annotations" else "boxes from the HOG detector"
    atomic_write_json(out / "metrics.json", {
        "boxes": "ground truth", "flip_test": True, "weights": str(weights), **metrics,
        "timings": timings, "settings": config_to_dict(s),
    }, indent=2)  # fmt: skip
    curves = result.run_dir / "curves.png"
    lines = [
        f"hsrpose demo: {s.preset} trained {s.epochs} epochs ({result.steps} steps) on {s.train_images} synthetic images",
        f"in {timings['total_s'] / 60:.1f} min (data {timings['data_s']:.0f} s, training {timings['train_s']:.0f} s, "
        f"evaluation {timings['eval_s']:.0f} s, drawing {timings['inference_s']:.0f} s; CPU time {timings['cpu_s']:.0f} s).",
        "",
        f"Validation on {s.val_images} held-out synthetic images, ground-truth boxes, flip test, OKS-NMS (COCOeval):",
        *(f"  {name:<5} {metrics.get(name, float('nan')):.3f}" for name in METRIC_NAMES),
        "",
        f"datasets (COCO format):  {out / 'data' / 'train' / ANNOTATION_FILE}",
        f"                         {val_ann}",
        f"trained weights:         {weights}  (best validation AP {result.best_ap:.3f} at epoch {result.best_epoch})",
        f"training curves:         {curves}",
        f"training log:            {result.run_dir / 'metrics.jsonl'}",
        f"predictions drawn:       {out / 'predictions.png'}  ({len(names)} validation images; {box_source})",
        f"metrics:                 {out / 'metrics.json'}",
        "",
        f"Next: hsrpose predict IMAGE_OR_FOLDER --weights {weights} --out OUT_DIR (your images; HOG person boxes),",
        "      hsrpose train --help (real data).",
    ]
    summary = "\n".join(lines) + "\n"
    atomic_write_text(out / "summary.txt", summary)
    print(summary, end="")
    return 0
