"""``hsrpose eval``: evaluate weights on COCO val with the published top-down protocol.

    hsrpose eval hsrnet59_256x192 --weights w.pth --data-root coco --boxes COCO_val2017_detections_AP_H_56_person.json
    hsrpose eval hsrnet59_256x192 --weights w.pth --data-root coco --gt-boxes flip_test=false

Writes the COCO keypoint results JSON (atomically) and prints the box source,
then the ten COCOeval numbers as ``NAME value`` lines. Lines that are not numbers
start with ``#`` so scripts can skip them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from hsrpose.data.datasets import DATASET_CHOICES, data_root_files
from hsrpose.errors import CheckpointError, HsrposeError

HELP = "evaluate weights on COCO with the published top-down protocol"

DEFAULT_ANN = Path("annotations") / "person_keypoints_val2017.json"
DEFAULT_IMAGES = Path("val2017")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.decode_settings import add_decode_arguments
    from hsrpose.utils.argtypes import int_range

    # ``key=value`` overrides may follow options, as in ``hsrpose train`` (plain parse_args
    # takes positionals only from the first group and rejects the rest).
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]
    parser.add_argument("preset", metavar="PRESET", nargs="?", default=None,
                        help="model preset the weights belong to (see 'hsrpose models'); optional for files that "
                        "name it (hsrpose weights) or show it (SimpleBaseline/mmpose shapes) and for .onnx files")  # fmt: skip
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="EvalConfig overrides, e.g. flip_test=false soft_nms=true oks_nms_thr=0.9 in_vis_thr=0.2; "
        "a custom keypoint set: oks_sigmas=[...] flip_pairs=[[1,2],...] (default: the category's 'sigmas')",
    )
    parser.add_argument("--weights", required=True, help="hsrpose weights / training checkpoint, a SimpleBaseline "
                        "pose_resnet or mmpose checkpoint, or an .onnx file (run with onnxruntime)")  # fmt: skip
    parser.add_argument("--data-root", default=None, help="COCO folder with annotations/person_keypoints_val2017.json and val2017/")
    boxes = parser.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--boxes", metavar="DET.json", help="person detection results (COCO format): the published protocol")
    boxes.add_argument("--gt-boxes", action="store_true", help="crop from ground-truth boxes (about +2 AP: not comparable)")
    parser.add_argument("--ann", default=None, help="annotation file (overrides DATA_ROOT/annotations/person_keypoints_val2017.json)")
    parser.add_argument("--dataset", choices=DATASET_CHOICES, default="auto", help="coco, mpii (PCKh; use --gt-boxes) or "
                        "crowdpose (default: from the files; --data-root then takes that dataset's layout)")  # fmt: skip
    parser.add_argument("--images", default=None, help="image folder (overrides DATA_ROOT/val2017)")
    parser.add_argument("--out", default=None, help="results JSON to write (default: <preset>_<boxes>_results.json)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default auto)")
    parser.add_argument("--batch-size", type=int_range(1), default=None, help="crops per batch (default 64)")
    parser.add_argument("--workers", type=int_range(0), default=None, help="data loader workers (default 2)")
    parser.add_argument("--det-score-thr", type=float, default=None, help="keep boxes with score >= this (default 0.0)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow full unpickling of a trusted checkpoint")
    add_decode_arguments(parser)
    from hsrpose.commands.model_options import add_onnx_options

    add_onnx_options(parser)


def _resolve_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.data_root is None and (args.ann is None or args.images is None):
        raise HsrposeError("give --data-root (COCO layout) or both --ann and --images")
    root = Path(args.data_root) if args.data_root else Path(".")
    files = data_root_files(root, getattr(args, "dataset", "auto"))[1] if args.data_root else {"val_ann": DEFAULT_ANN, "val_images": DEFAULT_IMAGES}
    ann = Path(args.ann) if args.ann else files["val_ann"]
    images = Path(args.images) if args.images else files["val_images"]
    if not ann.is_file():
        raise HsrposeError(f"annotation file not found: {ann}")
    if not images.is_dir():
        raise HsrposeError(f"image folder not found: {images}")
    return ann, images


def load_model_for_preset(
    preset: str | None, weights: Path, device: str, trust_pickle: bool = False, onnx_spec: Any = None,
    keypoint_info: Any = None,
) -> tuple[Any, Any]:  # fmt: skip
    """``(model, ModelMeta)`` of ``weights``: a torch model, or for ``.onnx`` a callable around onnxruntime.

    hsrpose files carry their preset: a given ``preset`` must equal it (a different preset means a
    different network or input size, so the numbers would not be what the user asked for).
    SimpleBaseline ``pose_resnet`` and mmpose checkpoints are built as ``preset`` or as the preset
    their tensor shapes show; every model tensor must come from the file.
    """
    from hsrpose.models.foreign import load_any_pose_model
    from hsrpose.models.weights import ModelMeta

    if weights.suffix.lower() == ".onnx":
        from hsrpose.inference.foreign_onnx import as_torch_model, open_onnx_backend

        backend = open_onnx_backend(weights, onnx_spec)
        meta = ModelMeta(preset=str(backend.preset), num_keypoints=backend.keypoint_info.num_keypoints,
                         input_hw=tuple(backend.input_hw), heatmap_hw=tuple(backend.heatmap_hw),  # type: ignore[arg-type]
                         keypoint_info=backend.keypoint_info, format="onnx",
                         decode=backend.decode_settings, decode_note=backend.decode_note)  # fmt: skip
        return as_torch_model(backend), meta
    if preset is not None:
        from hsrpose.models import get_preset

        get_preset(preset)  # unknown names fail here, with near misses
    hw = getattr(onnx_spec, "input_hw", None)
    try:
        return load_any_pose_model(weights, device=device, preset=preset, input_hw=hw, keypoint_info=keypoint_info,
                                   trust_pickle=trust_pickle)  # fmt: skip
    except CheckpointError as e:
        if "holds weights of preset" in str(e):
            raise HsrposeError(f"{e}: run 'hsrpose eval' without a preset or with that one") from None
        raise


def run(args: argparse.Namespace) -> int:
    import torch

    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.data.datasets import SCORING_NOTES, format_dataset_metrics, ground_truth, load_dataset
    from hsrpose.decode_settings import decode_overrides, resolve_decode
    from hsrpose.engine.eval_config import EvalConfig
    from hsrpose.engine.evaluate import evaluate
    from hsrpose.evaluation.cocoeval import format_metrics
    from hsrpose.evaluation.pckh import format_pckh
    from hsrpose.overrides import apply_overrides
    from hsrpose.utils.argtypes import check_device
    from hsrpose.utils.io import atomic_write_json
    from hsrpose.utils.paths import check_output_file

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.preset is not None and "=" in args.preset:  # an override in the optional preset's place
        args.overrides.insert(0, args.preset)
        args.preset = None
    # checked before the evaluation: a bad --out found after it would throw the work away
    # (the default name needs the model's preset: checked once the weights are read, below)
    out = check_output_file(args.out) if args.out else None
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

    from hsrpose.commands.model_options import keypoints_from_args, onnx_spec_from_args

    model, meta = load_model_for_preset(args.preset, weights, device, trust_pickle=args.trust_pickle,
                                        onnx_spec=onnx_spec_from_args(args), keypoint_info=keypoints_from_args(args))  # fmt: skip
    input_hw, heatmap_hw = tuple(meta.input_hw), tuple(meta.heatmap_hw)
    if out is None:
        name = args.preset or (weights.stem if meta.format == "onnx" else meta.preset)
        out = check_output_file(f"{name}_{'gtboxes' if args.gt_boxes else 'detboxes'}_results.json")

    # Decode settings: those stored with the weights; an explicit option (or a dotted
    # shift_heatmap=...) overrides one. Foreign and older files get the protocol defaults.
    overrides = decode_overrides(args)
    if any(o.split("=", 1)[0].strip() == "shift_heatmap" for o in args.overrides):
        overrides.setdefault("flip_shift", cfg.shift_heatmap)
    decode = resolve_decode(meta.decode, overrides)
    cfg.shift_heatmap = decode.flip_shift
    if meta.decode_note:
        print(f"# {meta.decode_note}")

    # Keypoint set: the weights' names and flip pairs (the model's channels); OKS sigmas of the
    # scored category: eval setting oks_sigmas, else the category's 'sigmas', else COCO's
    # (COCO person), else the weights'.
    kw: dict[str, Any] = {"oks_sigmas": cfg.oks_sigmas, "flip_pairs": cfg.flip_pairs,
                          "fallback_oks_sigmas": meta.keypoint_info.sigmas}  # fmt: skip
    if args.gt_boxes:
        dataset_name, coco = load_dataset(args.dataset, ann, mode="gt", **kw)
        box_line = f"# boxes: ground truth of {ann} (NOT the published protocol: about +2 AP over detector boxes)"
        if dataset_name == "mpii":
            box_line = f"# boxes: annotated center/scale of {ann} (the MPII single-person protocol)"
    else:
        dataset_name, coco = load_dataset(args.dataset, ann, mode="det", det_file=args.boxes, score_thr=cfg.det_score_thr, **kw)
        box_line = f"# boxes: detector file {args.boxes} (score >= {cfg.det_score_thr:g}), cropped as they are (reference rules)"
    # COCO: the checked ground truth; MPII / CrowdPose: their scorer. Records the loader warned
    # about are not warned about again.
    gt = ground_truth(dataset_name, ann, shown=coco.report.logged)
    model_kinfo = meta.keypoint_info
    if model_kinfo.num_keypoints != coco.keypoint_info.num_keypoints:
        raise HsrposeError(
            f"the model predicts {model_kinfo.num_keypoints} keypoints, {ann} has {coco.keypoint_info.num_keypoints}"
        )
    flip_pairs = coco.keypoint_info.flip_pairs if cfg.flip_pairs is not None else model_kinfo.flip_pairs
    kinfo = dataclasses.replace(model_kinfo, sigmas=coco.keypoint_info.sigmas, flip_pairs=flip_pairs)
    cfg.category_id = coco.category_id
    instances = coco.instances
    if not instances:
        raise HsrposeError(f"no boxes to evaluate ({coco.report.summary()})")
    n_images = len({i.image_id for i in instances})
    codec = decode.codec(input_hw, heatmap_hw)
    dataset = TopDownDataset(instances, image_dir, input_hw, codec, augment=None, keypoint_info=kinfo,
                             box_padding=decode.box_padding, aspect_wh=decode.aspect_for(input_hw))  # fmt: skip

    t0 = time.perf_counter()
    results, metrics = evaluate(model, dataset, codec, kinfo, cfg, device=device, gt=gt)
    seconds = time.perf_counter() - t0
    atomic_write_json(out, results)

    print(f"# model: {meta.preset} ({input_hw[0]}x{input_hw[1]}, {meta.format}) weights {weights}")
    print(box_line)
    print(f"# decode: {decode.describe(input_hw)}")
    print(f"# keypoints: {kinfo.num_keypoints} ({', '.join(kinfo.names[:3])}, ...); OKS sigmas {[round(v, 4) for v in kinfo.sigmas]}")
    print(f"# {len(instances)} boxes on {n_images} images; {coco.report.summary()}")
    print(
        f"# flip test {'on' if cfg.flip_test else 'off'}"
        f"{' (one-pixel shift)' if cfg.flip_test and cfg.shift_heatmap else ''}; rescoring in_vis_thr {cfg.in_vis_thr:g}; "
        f"{'soft-' if cfg.soft_nms else ''}OKS-NMS {cfg.oks_nms_thr:g}; scoring backend {cfg.backend}"
    )
    print(f"# results: {out} ({len(results)} instances); {seconds:.1f} s on {device}")
    if dataset_name != "coco":
        print(f"# {SCORING_NOTES[dataset_name]}")
    if dataset_name == "mpii":
        print("\n".join("# " + line for line in format_pckh(metrics).splitlines()))
    print(format_metrics(metrics) if dataset_name == "coco" else format_dataset_metrics(metrics), flush=True)
    return 0
