"""``hsrpose eval``: evaluate weights on COCO val with the published top-down protocol.

    hsrpose eval hsrnet59_256x192 --weights w.pth --data-root coco --boxes COCO_val2017_detections_AP_H_56_person.json
    hsrpose eval hsrnet59_256x192 --weights w.pth --data-root coco --gt-boxes flip_test=false

Writes the COCO keypoint results JSON (atomically) and prints the box source,
then the ten COCOeval numbers as ``NAME value`` lines. Lines that are not numbers
start with ``#`` so scripts can skip them.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from hsrpose.errors import CheckpointError, HsrposeError

HELP = "evaluate weights on COCO with the published top-down protocol"

DEFAULT_ANN = Path("annotations") / "person_keypoints_val2017.json"
DEFAULT_IMAGES = Path("val2017")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.utils.argtypes import int_range

    # KEY=VALUE overrides may follow the options, as in the examples above; plain parse_args
    # takes positionals only from the first group and rejects the rest.
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]
    parser.add_argument("preset", metavar="PRESET", help="model preset the weights belong to (see 'hsrpose models')")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="EvalConfig overrides, e.g. flip_test=false soft_nms=true oks_nms_thr=0.9 in_vis_thr=0.2",
    )
    parser.add_argument("--weights", required=True, help="hsrpose weights / training checkpoint, or a SimpleBaseline "
                        "pose_resnet checkpoint for the simplebaseline_* presets")  # fmt: skip
    parser.add_argument("--data-root", default=None, help="COCO folder with annotations/person_keypoints_val2017.json and val2017/")
    boxes = parser.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--boxes", metavar="DET.json", help="person detection results (COCO format): the published protocol")
    boxes.add_argument("--gt-boxes", action="store_true", help="crop from ground-truth boxes (about +2 AP: not comparable)")
    parser.add_argument("--ann", default=None, help="annotation file (overrides DATA_ROOT/annotations/person_keypoints_val2017.json)")
    parser.add_argument("--images", default=None, help="image folder (overrides DATA_ROOT/val2017)")
    parser.add_argument("--out", default=None, help="results JSON to write (default: <preset>_<boxes>_results.json)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default auto)")
    parser.add_argument("--batch-size", type=int_range(1), default=None, help="crops per batch (default 64)")
    parser.add_argument("--workers", type=int_range(0), default=None, help="data loader workers (default 2)")
    parser.add_argument("--det-score-thr", type=float, default=None, help="keep boxes with score >= this (default 0.0)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow full unpickling of a trusted checkpoint")


def _resolve_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.data_root is None and (args.ann is None or args.images is None):
        raise HsrposeError("give --data-root (COCO layout) or both --ann and --images")
    root = Path(args.data_root) if args.data_root else Path(".")
    ann = Path(args.ann) if args.ann else root / DEFAULT_ANN
    images = Path(args.images) if args.images else root / DEFAULT_IMAGES
    if not ann.is_file():
        raise HsrposeError(f"annotation file not found: {ann}")
    if not images.is_dir():
        raise HsrposeError(f"image folder not found: {images}")
    return ann, images


def load_model_for_preset(preset: str, weights: Path, device: str, trust_pickle: bool = False) -> tuple[Any, Any]:
    """``(model, ModelMeta or None)`` for ``preset`` from ``weights``.

    hsrpose files carry their preset: it must equal ``preset`` (a different preset means a
    different network or input size, so the numbers would not be what the user asked for).
    SimpleBaseline/HRNet-repo ``pose_resnet`` checkpoints carry none: they are loaded into
    ``preset`` and every model tensor must come from the file.
    """
    from hsrpose.models import create_model, get_preset
    from hsrpose.models.weights import detect_format, load_pose_model, load_weights, read_checkpoint_file

    get_preset(preset)  # unknown names fail here, with near misses
    obj, st_meta = read_checkpoint_file(weights, trust_pickle=trust_pickle)
    fmt = detect_format(obj, st_meta)
    del obj
    if fmt == "hsrpose":
        model, meta = load_pose_model(weights, device=device, trust_pickle=trust_pickle)
        if meta.preset != preset:
            raise HsrposeError(
                f"{weights} holds weights of preset {meta.preset!r} (input {meta.input_hw[0]}x{meta.input_hw[1]}), "
                f"not {preset!r}: run 'hsrpose eval {meta.preset} ...'"
            )
        return model, meta
    if fmt != "pose_resnet":
        raise CheckpointError(f"{weights}: a {fmt} backbone checkpoint, not a pose model (no heatmap head)")
    model = create_model(preset)
    report = load_weights(model, weights, format=fmt, trust_pickle=trust_pickle)
    if report.missing:
        raise CheckpointError(f"{weights}: does not fit preset {preset!r}: {report.summary()}")
    return model.to(device).eval(), None


def run(args: argparse.Namespace) -> int:
    import torch

    from hsrpose.codec import HeatmapCodec
    from hsrpose.config import apply_overrides
    from hsrpose.data.coco import load_coco
    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.engine.evaluate import EvalConfig, evaluate
    from hsrpose.evaluation.cocoeval import format_metrics
    from hsrpose.models import get_preset
    from hsrpose.utils.argtypes import check_device
    from hsrpose.utils.io import atomic_write_json
    from hsrpose.utils.paths import check_output_file

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # checked before the evaluation: a bad --out found after it would throw the work away
    out = check_output_file(args.out or f"{args.preset}_{'gtboxes' if args.gt_boxes else 'detboxes'}_results.json")
    check_device(args.device)
    # progress on stderr (a bar on a terminal, a line every 30 s in logs); progress=false turns it off
    cfg = apply_overrides(EvalConfig(progress=True), args.overrides)
    if args.batch_size is not None:
        cfg.batch_size = args.batch_size
    if args.workers is not None:
        cfg.num_workers = args.workers
    if args.det_score_thr is not None:
        cfg.det_score_thr = args.det_score_thr
    cfg.use_gt_boxes = bool(args.gt_boxes)
    ann, image_dir = _resolve_paths(args)
    weights = Path(args.weights)
    if not weights.is_file():
        raise HsrposeError(f"weights file not found: {weights}")
    if args.boxes is not None and not Path(args.boxes).is_file():
        raise HsrposeError(f"detection file not found: {args.boxes}")
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)

    model, meta = load_model_for_preset(args.preset, weights, device, trust_pickle=args.trust_pickle)
    preset = get_preset(args.preset)
    input_hw = tuple(meta.input_hw) if meta else preset.input_hw
    heatmap_hw = tuple(meta.heatmap_hw) if meta else preset.heatmap_hw
    if args.gt_boxes:
        coco = load_coco(ann, mode="gt")
        box_line = f"# boxes: ground truth of {ann} (NOT the published protocol: about +2 AP over detector boxes)"
    else:
        coco = load_coco(ann, mode="det", det_file=args.boxes, score_thr=cfg.det_score_thr)
        box_line = f"# boxes: detector file {args.boxes} (score >= {cfg.det_score_thr:g})"
    kinfo = meta.keypoint_info if meta else coco.keypoint_info
    if kinfo.num_keypoints != coco.keypoint_info.num_keypoints:
        raise HsrposeError(
            f"the model predicts {kinfo.num_keypoints} keypoints, {ann} has {coco.keypoint_info.num_keypoints}"
        )
    cfg.category_id = coco.category_id
    instances = coco.instances
    if not instances:
        raise HsrposeError(f"no boxes to evaluate ({coco.report.summary()})")
    n_images = len({i.image_id for i in instances})
    codec = HeatmapCodec(input_hw, heatmap_hw)
    dataset = TopDownDataset(instances, image_dir, input_hw, codec, augment=None, keypoint_info=kinfo)

    t0 = time.perf_counter()
    results, metrics = evaluate(model, dataset, codec, kinfo, cfg, device=device, gt=ann)
    seconds = time.perf_counter() - t0
    atomic_write_json(out, results)

    print(f"# model: {args.preset} ({input_hw[0]}x{input_hw[1]}) weights {weights}")
    print(box_line)
    print(f"# {len(instances)} boxes on {n_images} images; {coco.report.summary()}")
    print(
        f"# flip test {'on' if cfg.flip_test else 'off'}"
        f"{' (one-pixel shift)' if cfg.flip_test and cfg.shift_heatmap else ''}; rescoring in_vis_thr {cfg.in_vis_thr:g}; "
        f"{'soft-' if cfg.soft_nms else ''}OKS-NMS {cfg.oks_nms_thr:g}; scoring backend {cfg.backend}"
    )
    print(f"# results: {out} ({len(results)} instances); {seconds:.1f} s on {device}")
    print(format_metrics(metrics), flush=True)
    return 0
