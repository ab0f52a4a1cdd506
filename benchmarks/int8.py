"""INT8 vs fp32 on CPU with onnxruntime: speed, accuracy and size, side by side, in one run.

    PYTHONPATH=src python benchmarks/int8.py --demo hsrpose-demo            # full run (< 10 min, idle 2 cores)
    PYTHONPATH=src python benchmarks/int8.py --demo hsrpose-demo --quick    # fewer repetitions and crops

What it does, for every preset (default: HSR-MSNet-59, HSRNet-59, ResNet-50 at
256x192 and the tiny preset ``hsrnet_tiny_128x96``):

1. builds the model with random weights (seed 0) and sets its BatchNorm statistics
   on coco-mini crops (a train-mode pass with cumulative averages), so activations
   have the ranges of a network that sees real images; latency does not depend on
   the weights, and quantisation error depends on activation ranges;
2. exports fp32 ONNX (``hsrpose.export``) and quantises it with
   ``hsrpose.quantize.quantize_onnx`` (the defaults of ``hsrpose export --int8``),
   calibrating on the first coco-mini images' ground-truth person crops;
3. **size** of both files;
4. **speed**: ms per crop at batch 1 and 8 (median of ``--runs`` calls), and ms per
   image through ``PoseEstimator`` with the person boxes given (detector excluded):
   a one-person and a five-person coco-mini image, flip test off and on;
5. **heatmap agreement** on held-out coco-mini crops (images not used for
   calibration): mean / max distance between fp32 and INT8 decoded keypoints in
   crop pixels, and the largest heatmap difference relative to the fp32 heatmaps'
   peak-to-peak range. With untrained weights the heatmaps are nearly flat and the
   argmax jumps between near-equal maxima, so the pixel numbers are a pessimistic
   stress test; the AP below is the accuracy cost on a trained model.

With ``--demo DIR`` (the output folder of ``hsrpose demo``; trained hsrnet_tiny_128x96):

6. **AP** of fp32 and INT8 ONNX on the demo's held-out synthetic validation set
   (``PoseEstimator`` on ground-truth boxes, flip test, rescoring, OKS-NMS, COCOeval),
   calibrated on the demo's training images; and the **choice table**: AP and
   decoded-keypoint agreement for both calibration methods x the nodes kept in fp32
   (none / final conv / final conv + last deconv), plus int8 activations (S8S8) and
   full 8-bit weights (no reduce_range), which the defaults come from.
   ``--demo-weights`` takes another checkpoint of that run (e.g. an earlier epoch).

``--ablate PRESET`` (default HSR-MSNet-59) repeats speed and agreement for the same
variants on that 256x192 model. ``--clock cpu`` times CPU seconds instead of wall
seconds (on a loaded machine, with ``--threads 1``: the compute time of one core).
``--presets`` given alone runs only the demo part.

Threads: onnxruntime ``intra_op_num_threads=--threads`` (default 2), inter-op 1.
The load average is printed at start and end: on a shared machine the timings
are inflated and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

DEFAULT_PRESETS = ["hsr_msnet59_256x192", "hsrnet59_256x192", "simplebaseline_res50_256x192", "hsrnet_tiny_128x96"]
COCO_ANN = Path("annotations") / "person_keypoints_train2017.json"
REPO = Path(__file__).resolve().parents[1]
KEEP_CHOICES: list[tuple[str, tuple[str, ...]]] = [
    ("none", ()),
    ("final-conv", ("final-conv",)),
    ("final-conv+last-deconv", ("final-conv", "last-deconv")),
]


CLOCK: Callable[[], float] = time.perf_counter


def median_ms(fn: Callable[[], object], warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return statistics.median(times) * 1e3


def find_coco_mini(given: Path | None) -> Path:
    for root in [given, os.environ.get("HSRPOSE_COCO_MINI"), REPO.parent / "shared" / "data" / "coco-mini"]:
        if root and (Path(root) / COCO_ANN).is_file():
            return Path(root)
    sys.exit("coco-mini not found: pass --coco-mini DIR (with annotations/ and train2017/)")


def coco_people(root: Path) -> tuple[dict[str, np.ndarray], str, str]:
    """GT person boxes per file name; a file with exactly one and one with >= 5 annotated people."""
    data = json.loads((root / COCO_ANN).read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    boxes: dict[str, list[list[float]]] = {}
    for a in data["annotations"]:
        if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0:
            boxes.setdefault(files[a["image_id"]], []).append(a["bbox"])
    ordered = sorted(boxes)
    one = next(f for f in ordered if len(boxes[f]) == 1)
    five = next(f for f in ordered if len(boxes[f]) >= 5)
    return {f: np.asarray(b, dtype=np.float64) for f, b in boxes.items()}, one, five


def set_bn_statistics(model: Any, images: np.ndarray) -> None:
    """Running mean/var of every BatchNorm = statistics of ``images`` (one train-mode pass, cumulative average)."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(images))
    model.eval()


def agreement(fp32: Path, int8: Path, x: np.ndarray) -> dict[str, float]:
    """keypoint_agreement plus the heatmap difference relative to the fp32 heatmaps' range."""
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend
    from hsrpose.quantize import keypoint_agreement

    out = keypoint_agreement(fp32, int8, x)
    h = OnnxRuntimeBackend(fp32)(x)
    out["heatmap_rel"] = out["heatmap_max_abs"] / max(float(h.max() - h.min()), 1e-12)
    return out


def latency(path: Path, input_hw: tuple[int, int], args: argparse.Namespace, images: dict[str, Any]) -> dict[str, float]:
    """ms per crop (batch 1, 8) and ms per image (1 / 5 people, flip off / on) for one ONNX file."""
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend
    from hsrpose.inference.pipeline import PoseEstimator

    backend = OnnxRuntimeBackend(path, intra_op_threads=args.threads)
    rng = np.random.default_rng(0)
    row: dict[str, float] = {}
    for batch in (1, 8):
        x = rng.standard_normal((batch, 3, *input_hw)).astype(np.float32)
        row[f"crop_b{batch}"] = median_ms(lambda: backend(x), args.warmup, args.runs) / batch
    for flip in (False, True):
        est = PoseEstimator(backend, detector=None, flip_test=flip, batch_size=8)
        for key, (image, boxes) in images.items():
            row[f"{key}_{'flip' if flip else 'noflip'}"] = median_ms(
                lambda: est(image, boxes=boxes), args.warmup, args.image_runs
            )
    return row


def demo_ap(onnx_path: Path, val_ann: Path, val_images: Path) -> float:
    """COCO AP of an ONNX file on ground-truth boxes (flip test, rescoring, OKS-NMS), as the demo evaluates."""
    from hsrpose.data.coco import load_coco
    from hsrpose.data.imageio import read_image_bgr
    from hsrpose.evaluation.cocoeval import score_results
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend
    from hsrpose.inference.pipeline import PoseEstimator

    gt = load_coco(val_ann, mode="gt")
    by_image: dict[int, tuple[str, list[np.ndarray]]] = {}
    for inst in gt.instances:
        by_image.setdefault(inst.image_id, (inst.file_name, []))[1].append(np.asarray(inst.box_xywh))
    est = PoseEstimator(OnnxRuntimeBackend(onnx_path), detector=None, flip_test=True, batch_size=32)
    results = []
    for image_id, (file_name, boxes) in sorted(by_image.items()):
        for inst in est(read_image_bgr(val_images / file_name), boxes=np.stack(boxes)):
            results.append(inst.to_coco(image_id, gt.category_id))
    return float(score_results(str(val_ann), results, sigmas=gt.keypoint_info.sigmas_array)["AP"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="*", default=DEFAULT_PRESETS, help="give the flag alone for the demo part only")
    parser.add_argument("--demo", type=Path, default=None, help="output folder of 'hsrpose demo' (AP and choice table)")
    parser.add_argument(
        "--demo-weights", type=Path, default=None,
        help="weights or checkpoint to use instead of DEMO/train/last.pth (e.g. a copy taken after fewer epochs)",
    )  # fmt: skip
    parser.add_argument("--coco-mini", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and calibration crops")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="wall: elapsed time (what a user sees, default); cpu: CPU time of this process (all its threads), "
             "less inflated by other processes on a loaded machine; with --threads 1 it is the compute time",
    )  # fmt: skip
    parser.add_argument(
        "--ablate", default="hsr_msnet59_256x192",
        help="preset also quantised with the other fp32-node choices and int8 activations ('' to skip)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every number as JSON here")
    args = parser.parse_args(argv)
    args.warmup, args.runs, args.image_runs = (1, 3, 2) if args.quick else (2, 7, 3)
    args.calib_crops = 16 if args.quick else 64
    args.held_out = 8 if args.quick else 24
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time

    import onnxruntime as ort
    import torch

    from hsrpose.data.imageio import read_image_bgr
    from hsrpose.data.keypoints import COCO_KEYPOINTS
    from hsrpose.export import export_onnx
    from hsrpose.models import create_model, get_preset
    from hsrpose.quantize import DEFAULT_CALIB_METHOD, DEFAULT_KEEP_FP32, calibration_crops, quantize_onnx

    torch.set_num_threads(args.threads)
    coco = find_coco_mini(args.coco_mini)
    coco_ann, coco_images = coco / COCO_ANN, coco / "train2017"
    boxes, one, five = coco_people(coco)
    images = {
        "img1": (read_image_bgr(coco_images / one), boxes[one]),
        "img5": (read_image_bgr(coco_images / five), boxes[five][:5]),
    }
    t_start = time.perf_counter()
    print(
        f"# onnxruntime {ort.__version__}, torch {torch.__version__}, {args.threads} threads, {args.clock} clock, "
        f"{'quick' if args.quick else 'full'} (median of {args.runs} crop / {args.image_runs} image calls), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"# INT8: QDQ, per-channel int8 weights (7-bit range), uint8 activations, {DEFAULT_CALIB_METHOD} calibration on "
        f"{args.calib_crops} coco-mini crops, fp32 kept: {', '.join(DEFAULT_KEEP_FP32) or 'none'}"
    )
    print(f"# one-person image {one}, five-person image {five} (first 5 boxes); boxes given, no detector")
    report: dict[str, Any] = {"presets": [], "demo": None}
    cols = ["crop_b1", "crop_b8", "img1_noflip", "img1_flip", "img5_noflip", "img5_flip"]
    header = f"{'preset':<30} {'prec':<5} {'MB':>6} " + " ".join(f"{c:>11}" for c in cols)
    rows_txt = [header]
    ablate_txt: list[str] = []
    agree_txt = [f"{'preset':<30} {'mean px':>8} {'max px':>8} {'heatmap rel':>11}"]
    with tempfile.TemporaryDirectory(prefix="hsrpose-int8-bench-") as tmp:
        for name in args.presets:
            preset = get_preset(name)
            # Default preprocessing = the training normalisation, which export_onnx writes into the metadata.
            all_crops = list(calibration_crops(coco_images, preset.input_hw, None, 10**6, coco_ann))
            torch.manual_seed(0)
            model = create_model(name).eval()
            set_bn_statistics(model, np.concatenate([c for _, c in all_crops])[:32])
            fp32, int8 = Path(tmp) / f"{name}.onnx", Path(tmp) / f"{name}.int8.onnx"
            export_onnx(model, fp32, preset=name, input_hw=preset.input_hw, heatmap_hw=preset.heatmap_hw,
                        keypoint_info=COCO_KEYPOINTS)  # fmt: skip
            del model
            t0 = time.perf_counter()
            q = quantize_onnx(fp32, int8, coco_images, max_crops=args.calib_crops, ann_file=coco_ann)
            t_quant = time.perf_counter() - t0
            held = np.concatenate([c for _, c in all_crops[q.calib_images :]])[: args.held_out]
            agree = agreement(fp32, int8, held)
            entry: dict[str, Any] = {"preset": name, "quantize_s": round(t_quant, 1), "fp32_nodes": list(q.fp32_nodes)}
            for prec, path in (("fp32", fp32), ("int8", int8)):
                lat = latency(path, preset.input_hw, args, images)
                mb = path.stat().st_size / 2**20
                entry[prec] = {"size_mb": round(mb, 2), **{k: round(v, 2) for k, v in lat.items()}}
                rows_txt.append(f"{name:<30} {prec:<5} {mb:>6.1f} " + " ".join(f"{lat[c]:>11.1f}" for c in cols))
                print(rows_txt[-1], flush=True)
            entry["agreement"] = {k: round(v, 4) for k, v in agree.items()} | {"crops": len(held)}
            agree_txt.append(
                f"{name:<30} {agree['mean_px']:>8.2f} {agree['max_px']:>8.2f} {agree['heatmap_rel']:>11.3f}"
            )
            if name == args.ablate:
                entry["ablation"] = ablation(args, fp32, int8, preset.input_hw, held, coco_images, coco_ann, entry)
                ablate_txt = [f"{name}: variant, ms/crop b1, ms/crop b8, mean px, max px, heatmap rel"]
                for r in entry["ablation"]:
                    ablate_txt.append(
                        f"  {r['variant']:<44} {r['crop_b1']:>7.1f} {r['crop_b8']:>7.1f} {r['mean_px']:>7.2f} "
                        f"{r['max_px']:>7.2f} {r['heatmap_rel']:>7.3f}"
                    )
            report["presets"].append(entry)
        if args.demo is not None:
            report["demo"] = demo_table(args, Path(tmp))

    print("\n## speed (ms; crop_bN = per crop at batch N, imgN = per image with N people, flip off/on) and size")
    print("\n".join(rows_txt))
    print("\n## heatmap agreement fp32 vs INT8 on held-out coco-mini crops (random weights, BN set on crops)")
    print("\n".join(agree_txt))
    if ablate_txt:
        print("\n## INT8 variants (held-out coco-mini crops as above)")
        print("\n".join(ablate_txt))
    if report["demo"] is not None:
        d = report["demo"]
        print(f"\n## demo model ({d['weights']}) on its synthetic validation set, {d['val_images']} images, GT boxes")
        print(f"torch AP ({d['torch_ap'][1]}): {d['torch_ap'][0]}   fp32 ONNX AP: {d['fp32_ap']:.4f}")
        print(f"{'method':<8} {'fp32 nodes kept':<24} {'AP':>7} {'dAP':>8} {'mean px':>8} {'max px':>8} {'b1 ms':>6}")
        for r in d["choices"]:
            print(
                f"{r['method']:<8} {r['keep']:<24} {r['ap']:>7.4f} {r['ap'] - d['fp32_ap']:>+8.4f} "
                f"{r['mean_px']:>8.3f} {r['max_px']:>8.2f} {r['crop_b1']:>6.2f}"
            )
    print(f"\n# load average at end: {os.getloadavg()[0]:.1f}; wall time {time.perf_counter() - t_start:.0f} s")
    if args.json is not None:
        from hsrpose.utils.io import atomic_write_json

        atomic_write_json(args.json, report, indent=2)
    return 0


def ablation(
    args: argparse.Namespace, fp32: Path, int8: Path, input_hw: tuple[int, int], held: np.ndarray,
    coco_images: Path, coco_ann: Path, entry: dict[str, Any],
) -> list[dict[str, Any]]:
    """The default INT8 file against other fp32-node choices and int8 (instead of uint8) activations."""
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend
    from hsrpose.quantize import DEFAULT_KEEP_FP32, quantize_onnx

    variants: list[tuple[str, Path]] = [(f"default (fp32: {'+'.join(DEFAULT_KEEP_FP32)}, U8S8, 7-bit w.)", int8)]
    for label, keep in KEEP_CHOICES:
        if keep != DEFAULT_KEEP_FP32:
            path = fp32.with_suffix(f".{len(keep)}.onnx")
            quantize_onnx(fp32, path, coco_images, keep_fp32=keep, max_crops=args.calib_crops, ann_file=coco_ann)
            variants.append((f"fp32: {label}", path))
    path = fp32.with_suffix(".s8.onnx")
    quantize_onnx(fp32, path, coco_images, max_crops=args.calib_crops, ann_file=coco_ann, activations="int8")
    variants.append(("int8 activations (S8S8)", path))
    path = fp32.with_suffix(".w8.onnx")
    quantize_onnx(fp32, path, coco_images, max_crops=args.calib_crops, ann_file=coco_ann, reduce_range=False)
    variants.append(("8-bit weights (no reduce_range)", path))
    rng = np.random.default_rng(0)
    out = []
    for label, path in variants:
        b = OnnxRuntimeBackend(path, intra_op_threads=args.threads)
        x1, x8 = (rng.standard_normal((n, 3, *input_hw)).astype(np.float32) for n in (1, 8))
        agree = entry["agreement"] if path == int8 else agreement(fp32, path, held)
        out.append({
            "variant": label, "crop_b1": median_ms(lambda: b(x1), args.warmup, args.runs),
            "crop_b8": median_ms(lambda: b(x8), args.warmup, args.runs) / 8,
            "mean_px": agree["mean_px"], "max_px": agree["max_px"], "heatmap_rel": agree["heatmap_rel"],
        })  # fmt: skip
        print(f"ablation {label}: {out[-1]['crop_b1']:.1f} ms/crop", flush=True)
    return out


def demo_table(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """fp32 vs INT8 AP of the trained demo model; every calibration method x kept-node choice."""
    from hsrpose.export import export_onnx
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend
    from hsrpose.models.weights import load_pose_model
    from hsrpose.quantize import CALIB_METHODS, DEFAULT_CALIB_METHOD, DEFAULT_KEEP_FP32, calibration_crops, quantize_onnx

    demo = args.demo
    weights = args.demo_weights or demo / "train" / "last.pth"
    train_ann = demo / "data" / "train" / "annotations" / "person_keypoints.json"
    val_ann = demo / "data" / "val" / "annotations" / "person_keypoints.json"
    model, info = load_pose_model(weights)
    fp32 = tmp / "demo.onnx"
    export_onnx(model, fp32, preset=info.preset, input_hw=tuple(info.input_hw), heatmap_hw=tuple(info.heatmap_hw),
                keypoint_info=info.keypoint_info)  # fmt: skip
    torch_ap = _torch_ap(demo, weights)
    fp32_ap = demo_ap(fp32, val_ann, demo / "data" / "val" / "images")
    val_dir = demo / "data" / "val" / "images"
    val_crops = np.concatenate([c for _, c in calibration_crops(val_dir, tuple(info.input_hw), None, 64, val_ann)])
    choices = []
    # every method x kept-node choice with the default kernels, then the default with the other kernel choices
    variants = [(m, label, keep, "uint8", True) for m in CALIB_METHODS for label, keep in KEEP_CHOICES]
    variants += [(DEFAULT_CALIB_METHOD, "final-conv, S8S8", DEFAULT_KEEP_FP32, "int8", True)]
    variants += [(DEFAULT_CALIB_METHOD, "final-conv, 8-bit weights", DEFAULT_KEEP_FP32, "uint8", False)]
    for i, (method, label, keep, act, reduce_range) in enumerate(variants):
        int8 = tmp / f"demo.{i}.onnx"
        quantize_onnx(fp32, int8, demo / "data" / "train" / "images", method=method, keep_fp32=keep,
                      max_crops=args.calib_crops, ann_file=train_ann, activations=act,
                      reduce_range=reduce_range)  # fmt: skip
        agree = agreement(fp32, int8, val_crops)
        b = OnnxRuntimeBackend(int8, intra_op_threads=args.threads)
        x = np.zeros((1, 3, *info.input_hw), np.float32)
        choices.append({
            "method": method, "keep": label, "ap": demo_ap(int8, val_ann, demo / "data" / "val" / "images"),
            "mean_px": agree["mean_px"], "max_px": agree["max_px"],
            "crop_b1": median_ms(lambda: b(x), args.warmup, args.runs * 3),
        })  # fmt: skip
        print(f"demo {method} {label}: AP {choices[-1]['ap']:.4f} (fp32 {fp32_ap:.4f})", flush=True)
    n_val = len(json.loads(val_ann.read_text())["images"])
    return {"weights": str(weights), "torch_ap": torch_ap, "fp32_ap": fp32_ap, "val_images": n_val, "choices": choices}


def _torch_ap(demo: Path, weights: Path) -> tuple[float | None, str]:
    """The demo's own AP of these weights (PyTorch, engine.evaluate): metrics.json, else the training log."""
    import torch

    epoch = torch.load(weights, map_location="cpu", weights_only=False).get("epoch")
    metrics = demo / "metrics.json"
    if metrics.is_file() and weights == demo / "train" / "last.pth":
        return float(json.loads(metrics.read_text())["AP"]), "metrics.json of the demo"
    log = demo / "train" / "metrics.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "val" and rec.get("epoch") == epoch:
                return float(rec["AP"]), f"validation at epoch {epoch} in train/metrics.jsonl"
    return None, "not found"


if __name__ == "__main__":
    sys.exit(main())
